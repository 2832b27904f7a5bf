package sim

import (
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
)

const (
	// udpLimit is the largest message the Endpoint sends as a datagram
	// (memberlist's UDPBufferSize 1400 less gossip's udpOverhead 128);
	// larger ones go over a stream only.
	udpLimit = 1400 - 128
	// maxBroadcast is gossip's limit on a queued broadcast; a larger row
	// travels by push-pull only.
	maxBroadcast = 1 << 10
	// tcpTimeout is memberlist's DefaultLANConfig TCPTimeout: a stream send
	// to a host that cannot be reached blocks the sender this long.
	tcpTimeout = 10 * time.Second
	// maxStreamQueue is gossip's maxReliable: stream sends waiting for the
	// one sender goroutine; more are dropped.
	maxStreamQueue = 256
)

// cut is one gray (partial) cut between host sets a and b.
type cut struct {
	group int  // the cuts of one fault heal together
	udp   bool // datagrams between a and b are dropped, both ways
	tcp   bool // streams between a and b fail, both ways
	// oneWay: every packet from a to b is dropped (a route or filter
	// failure); b's datagrams still reach a, and streams fail both ways
	// (a TCP handshake needs both directions).
	oneWay bool
	a, b   []bool // by host id
}

func in(set []bool, id int) bool { return id < len(set) && set[id] }

// udpPass reports whether a datagram from a gets to b (topology only: the
// receiver's state is checked on arrival).
func (s *Sim) udpPass(a, b *host) bool {
	if a.side != b.side {
		return false
	}
	for _, c := range s.cuts {
		if in(c.a, a.id) && in(c.b, b.id) && (c.udp || c.oneWay) || in(c.b, a.id) && in(c.a, b.id) && c.udp {
			return false
		}
	}
	return true
}

// tcpPass reports whether a stream between a and b can be set up (either
// direction).
func (s *Sim) tcpPass(a, b *host) bool {
	if a.side != b.side {
		return false
	}
	for _, c := range s.cuts {
		if (c.tcp || c.oneWay) && (in(c.a, a.id) && in(c.b, b.id) || in(c.b, a.id) && in(c.a, b.id)) {
			return false
		}
	}
	return true
}

func (s *Sim) udpRT(a, b *host) bool { return s.udpPass(a, b) && s.udpPass(b, a) }

// topo is memberlist's verdict between classes of hosts: hosts of one class
// (same partition side, same place in every cut) see the same links.
type topo struct {
	cls   []int    // class of each host id
	alive [][]bool // alive[x][y]: a host of class x sees a host of class y alive
}

// classes returns the current topology, computing it when it changed. The
// slices are never modified afterwards (retopo compares two of them).
func (s *Sim) classes() *topo {
	if s.topo != nil && len(s.topo.cls) == len(s.hosts) {
		return s.topo
	}
	t := &topo{cls: make([]int, len(s.hosts))}
	type key struct {
		side int
		mask uint64
	}
	idx := map[key]int{}
	var reps []*host
	var count []int
	for _, h := range s.hosts {
		k := key{side: h.side}
		for i, c := range s.cuts {
			if i >= 32 {
				break
			}
			if in(c.a, h.id) {
				k.mask |= 1 << (2 * i)
			}
			if in(c.b, h.id) {
				k.mask |= 1 << (2*i + 1)
			}
		}
		x, ok := idx[k]
		if !ok {
			x = len(reps)
			idx[k] = x
			reps = append(reps, h)
			count = append(count, 0)
		}
		t.cls[h.id] = x
		if h.joined {
			count[x]++
		}
	}
	n := len(reps)
	t.alive = make([][]bool, n)
	for x := range n {
		t.alive[x] = make([]bool, n)
		for y := range n {
			a, b := reps[x], reps[y]
			// memberlist's probe: a UDP ping and its ack, else a TCP
			// fallback ping, and k indirect pings through other members.
			ok := s.udpRT(a, b) || s.tcpPass(a, b)
			for z := 0; !ok && z < n; z++ {
				need := 1
				if z == x {
					need++
				}
				if z == y {
					need++
				}
				ok = count[z] >= need && s.udpRT(a, reps[z]) && s.udpRT(reps[z], b)
			}
			t.alive[x][y] = ok
		}
	}
	s.topo = t
	return t
}

// seesAlive is memberlist's view at a of b as the sim models it (the
// package comment says what it means for each kind of cut).
func (s *Sim) seesAlive(a, b *host) bool {
	if !a.up || !b.up || !a.joined || !b.joined || b.paused {
		return false
	}
	t := s.classes()
	return t.alive[t.cls[a.id]][t.cls[b.id]]
}

// retopo applies a change of the links or of the members (a member is an
// intermediary for indirect probes) and tells every host, after
// memberlist's detection delays, about the peers whose verdict changed.
func (s *Sim) retopo(change func()) {
	old := s.classes()
	change()
	s.topo = nil
	cur := s.classes()
	type joint struct{ o, n int }
	groups := map[joint][]int{}
	var order []joint
	for _, h := range s.hosts {
		if !h.joined || h.id >= len(old.cls) {
			continue // a joiner is announced by its join
		}
		k := joint{old.cls[h.id], cur.cls[h.id]}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], h.id)
	}
	for _, g := range order {
		for _, o := range order {
			was, is := old.alive[g.o][o.o], cur.alive[g.n][o.n]
			if was != is {
				s.trace("membership: %d hosts will see %d hosts alive=%v", len(groups[g]), len(groups[o]), is)
				s.membership(groups[o], groups[g], !is)
			}
		}
	}
}

// told is what host h's Node was last told about host id.
func (h *host) toldOf(id int) rollout.Reach {
	if id < len(h.told) {
		return h.told[id]
	}
	return rollout.ReachAlive
}

func (h *host) setTold(id int, r rollout.Reach) {
	for id >= len(h.told) {
		h.told = append(h.told, rollout.ReachAlive)
	}
	h.told[id] = r
}

// datagram sends one direct message (msg) or a gossip packet (msgs) from h
// to o over UDP: lost with probability Loss, dropped by a cut, and
// delivered twice with probability Duplicate (the copy with its own delay,
// so possibly first).
func (s *Sim) datagram(h, o *host, msg *rollout.Message, msgs []*rollout.Message) {
	if s.rng.Float64() < s.cfg.Loss || !o.up || !s.udpPass(h, o) {
		return
	}
	s.push(event{at: s.now + s.delay(), kind: evDeliver, host: o.id, msg: msg, msgs: msgs, gen: o.gen})
	if s.cfg.Duplicate > 0 && s.rng.Float64() < s.cfg.Duplicate {
		s.res.Faults["duplicate"]++
		d := s.delay() + time.Duration(s.rng.Int64N(int64(20*time.Millisecond)))
		s.push(event{at: s.now + d, kind: evDeliver, host: o.id, msg: msg, msgs: msgs, gen: o.gen})
	}
}

// stream sends m from h to o over TCP as gossip's stream sender does:
// one send at a time (a send to a host it cannot reach blocks the sender
// for tcpTimeout), at most maxStreamQueue waiting, no loss.
func (s *Sim) stream(h, o *host, m *rollout.Message) {
	q := h.streamQ
	for len(q) > 0 && q[0] <= s.now {
		q = q[1:]
	}
	if len(q) >= maxStreamQueue {
		h.streamQ = q
		s.res.Faults["stream-queue-full"]++
		return
	}
	start := max(s.now, h.streamFree)
	h.streamQ = append(q, start)
	if !o.up || !s.tcpPass(h, o) {
		h.streamFree = start + tcpTimeout
		return
	}
	d := 2 * s.delay() // handshake, then the message
	h.streamFree = start + d
	s.push(event{at: start + d, kind: evDeliver, host: o.id, msg: m, gen: o.gen})
}
