// Package sim runs the real rollout state machine (package rollout) of
// hundreds of hosts over a simulated network with virtual time and seeded
// faults, and checks the properties of DESIGN.md §8 while it runs: P1 and P3
// at every start, P2 (completion) at the end.
//
// Only the network, membership detection and the hook runner are simulated.
// Gossip is modelled as memberlist does it: broadcasts piggybacked on gossip
// rounds (GossipNodes peers every GossipInterval) with a retransmit limit of
// RetransmitMult·⌈log10(n+1)⌉, plus periodic push-pull anti-entropy with one
// random peer. Membership is modelled by its timing: a crashed or partitioned
// host is suspect after one probe interval and dead after the suspicion
// timeout. A crash loses the node's memory except the last Persisted state,
// exactly what the agent stores.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Config describes one simulated rollout.
type Config struct {
	Hosts        int
	Deployment   manifest.Deployment
	HookTime     time.Duration // mean lifecycle duration
	HookFailRate float64       // probability that a lifecycle fails
	Loss         float64       // probability that a packet is lost
	Partitions   bool          // healing partitions (majority/minority and symmetric)
	Permanent    bool          // one partition never heals (completion not expected)
	Crashes      bool          // crashes and restarts, some longer than the lease
	Joins        bool          // fresh hosts join, some hosts leave gracefully
	// FreshGroup starts every host with nothing installed (a new group
	// whose roster formed, A4): each installs r2 without a slot when its
	// poll sees it, whatever the others are doing.
	FreshGroup bool
	Params     rollout.MemberlistParams
	MaxTime    time.Duration // give up after this much virtual time (default 4h)
}

// Result is the outcome of one seeded run.
type Result struct {
	Seed          uint64
	Violations    []string
	MaxConcurrent int
	Window        int
	Completed     bool
	Expected      bool          // completion was expected (no permanent partition)
	Halted        bool          // some host saw the rollout halt
	RolloutTime   time.Duration // virtual time until every live host settled
	GossipBytes   float64       // bytes sent per host per virtual second
	Messages      int64
	Events        int64
	Faults        map[string]int
}

const (
	evWake = iota
	evDeliver
	evGossip
	evPushPull
	evFinish
	evAbortDone
	evMembership
	evCrash
	evRestart
	evPartition
	evHeal
	evJoin
	evLeave
	evDesired
	evGhostEnd
)

type event struct {
	at   time.Duration
	kind int
	host int
	gen  uint64
	msg  *rollout.Message
	msgs []*rollout.Message
	obs  []int
	tgts []int
	r    rollout.Reach
	ok   bool
	dep  string
}

// evRef is a queue entry: the ordering key is kept inline so that sifting
// never dereferences an event.
type evRef struct {
	at  time.Duration
	seq uint64
	e   *event
}

func (a evRef) before(b evRef) bool {
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

// evQueue is a binary min-heap of events by (at, seq).
type evQueue []evRef

func (q *evQueue) push(r evRef) {
	h := append(*q, r)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

func (q *evQueue) pop() *event {
	h := *q
	top := h[0].e
	last := len(h) - 1
	h[0] = h[last]
	h[last] = evRef{}
	h = h[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// bcKey names a broadcast: a newer one of the same kind and author
// replaces the older in the queue.
type bcKey struct {
	kind rollout.Kind
	from string
}

type bcItem struct {
	key      bcKey
	author   int              // host id of a row's author (index in rowq); -1: indexed in qidx
	msg      *rollout.Message // points into a node's Output, never modified
	size     int
	sends    int
	dead     bool
	replaced bool // a newer item took its place in the index
	relay    bool // relayed, not originated here
}

type host struct {
	id          int
	name        string
	node        *rollout.Node
	persist     rollout.Persisted
	up          bool
	joined      bool // part of the cluster (false before a join, after a leave)
	gen         uint64
	wakeAt      time.Duration
	wakeGen     uint64
	drift       float64
	offset      time.Duration
	side        int
	queue       []*bcItem
	qidx        map[bcKey]*bcItem // queued broadcasts by key, except rows of known hosts:
	rowq        []*bcItem         // queued row by author id
	running     string            // deployment id
	runSlot     bool
	fence       time.Duration // virtual
	runGen      uint64
	bytes       int64
	gossipArmed bool
}

type ghost struct {
	host  int
	until time.Duration
}

// debugDump, when set by a test, receives the state of runs that did not complete.
var debugDump func(string)

// Sim is one run.
type Sim struct {
	cfg         Config
	rng         *rand.Rand
	now         time.Duration
	seq         uint64
	ev          evQueue
	free        []*event // recycled events
	hosts       []*host
	byName      map[string]int
	timing      rollout.Timing
	ghosts      []ghost
	res         Result
	desired     rollout.Desired
	buf         []byte
	tsusp       time.Duration
	limit       int
	relayLimit  int
	kinds       map[string]int
	ppEvery     time.Duration
	partitioned bool
	permanent   bool
	done        time.Duration
	minItem     int // smallest broadcast size seen: bounds what still fits a packet
}

func (s *Sim) push(e event) {
	s.seq++
	var p *event
	if k := len(s.free); k > 0 {
		p, s.free = s.free[k-1], s.free[:k-1]
	} else {
		p = new(event)
	}
	*p = e
	s.ev.push(evRef{at: e.at, seq: s.seq, e: p})
}

func (s *Sim) local(h *host) time.Duration {
	return h.offset + time.Duration(float64(s.now)*(1+h.drift))
}

func (s *Sim) virtual(h *host, l time.Duration) time.Duration {
	v := time.Duration(math.Ceil(float64(l-h.offset) / (1 + h.drift)))
	return max(v, s.now)
}

// Run simulates one seed.
func Run(cfg Config, seed uint64) Result {
	if cfg.MaxTime == 0 {
		cfg.MaxTime = 4 * time.Hour
	}
	if cfg.Params.ProbeInterval == 0 {
		cfg.Params = rollout.LANParams
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), byName: map[string]int{}}
	s.res.Seed = seed
	s.minItem = 1400
	if debugDump != nil {
		s.kinds = map[string]int{}
		defer func() { debugDump(fmt.Sprint(s.kinds)) }()
	}
	s.res.Faults = map[string]int{}
	s.res.Expected = !cfg.Permanent
	n := cfg.Hosts
	s.timing = rollout.TimingFor(cfg.Params, n)
	s.tsusp = rollout.SuspicionTimeout(cfg.Params, n)
	s.limit = 4 * int(math.Ceil(math.Log10(float64(n+1))))
	s.relayLimit = int(math.Ceil(math.Log10(float64(n + 1))))
	// memberlist scales push-pull with the cluster size
	s.ppEvery = 30 * time.Second
	if n > 32 {
		s.ppEvery *= time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32)) + 1)
	}
	s.desired = rollout.Desired{Revision: "r2", ManifestID: "m2", Deployment: cfg.Deployment}
	pol := rollout.Resolve(cfg.Deployment, n)
	s.res.Window = pol.MaxWindow()

	var names []string
	for i := 0; i < n; i++ {
		names = append(names, hostName(i))
	}
	slices.Sort(names)
	for i := 0; i < n; i++ {
		st := rollout.Persisted{
			Roster:  rollout.Roster{Epoch: 1, Members: names},
			Row:     rollout.Row{Installed: "r1", Revision: "r1", Phase: rollout.PhaseSucceeded},
			Desired: rollout.Desired{Revision: "r1", ManifestID: "m1", Deployment: cfg.Deployment}, HaveDesired: true,
		}
		if cfg.FreshGroup {
			st = rollout.Persisted{Roster: rollout.Roster{Epoch: 1, Members: names}}
		}
		h := s.addHost(hostName(i), st)
		s.startHost(h, true)
	}
	// The new manifest reaches hosts within a poll interval.
	for _, h := range s.hosts {
		s.push(event{at: time.Duration(s.rng.Int64N(int64(5 * time.Second))), kind: evDesired, host: h.id})
	}
	s.scheduleFaults()
	s.loop()
	if !s.res.Completed && debugDump != nil {
		debugDump(s.Dump())
	}
	return s.res
}

func hostName(i int) string { return "h" + strconv.Itoa(i) }

func (s *Sim) addHost(name string, st rollout.Persisted) *host {
	h := &host{id: len(s.hosts), name: name, persist: st, qidx: map[bcKey]*bcItem{}}
	h.drift = (s.rng.Float64() - 0.5) * s.timing.DriftRate
	h.offset = time.Duration(s.rng.Int64N(int64(time.Hour)))
	s.hosts = append(s.hosts, h)
	s.byName[name] = h.id
	return h
}

// startHost (re)creates the node from its persisted state.
func (s *Sim) startHost(h *host, initial bool) {
	h.up, h.joined = true, true
	h.gen++
	h.node = rollout.NewNode(rollout.Config{Host: h.name, App: "app", Group: "g", Timing: s.timing}, h.persist, s.local(h))
	// its view of the others
	for _, o := range s.hosts {
		if o != h && o.joined && !s.reachable(h, o) {
			h.node.PeerChanged(s.local(h), o.name, rollout.ReachDead)
		}
	}
	s.flush(h)
	h.gossipArmed = false
	s.push(event{at: s.now + s.jitter(s.ppEvery), kind: evPushPull, host: h.id, gen: h.gen})
	if !initial {
		s.pushPull(h) // memberlist's join does a push-pull
	}
}

func (s *Sim) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(s.rng.Int64N(int64(d)))
}

func (s *Sim) reachable(a, b *host) bool {
	return a.up && b.up && a.joined && b.joined && a.side == b.side
}

// flush handles a node's output and reschedules its wake-up.
func (s *Sim) flush(h *host) {
	if !h.up {
		return
	}
	o := h.node.TakeOutput()
	if o.Persist != nil {
		h.persist = *o.Persist
	}
	// Events and queued broadcasts point into the output's arrays, which
	// the node no longer touches: no per-message copy.
	for i := range o.Send {
		s.sendDirect(h, &o.Send[i])
	}
	for i := range o.Broadcast {
		s.enqueue(h, &o.Broadcast[i])
	}
	for _, d := range o.Decisions {
		s.decide(h, d)
	}
	w := s.virtual(h, h.node.NextWake())
	if w != h.wakeAt || h.wakeGen != h.gen {
		h.wakeAt, h.wakeGen = w, h.gen
		s.push(event{at: w, kind: evWake, host: h.id, gen: h.gen})
	}
}

func (s *Sim) size(m *rollout.Message) int {
	s.buf = rollout.AppendEncode(s.buf[:0], m)
	return len(s.buf) + 8 // + memberlist framing
}

func (s *Sim) sendDirect(h *host, env *rollout.Envelope) {
	to, ok := s.byName[env.To]
	if !ok {
		return
	}
	m := &env.Msg
	if s.kinds != nil {
		k := m.Kind.String()
		if m.Kind == rollout.KindGrant && !m.OK {
			k += "-refused"
			if m.Holder != "" {
				k += "-held"
			}
		}
		s.kinds[k]++
	}
	h.bytes += int64(s.size(m))
	s.res.Messages++
	if s.rng.Float64() < s.cfg.Loss || !s.reachable(h, s.hosts[to]) {
		return
	}
	s.push(event{at: s.now + s.delay(), kind: evDeliver, host: to, msg: m, gen: s.hosts[to].gen})
}

func (s *Sim) delay() time.Duration {
	d := 200*time.Microsecond + time.Duration(s.rng.Int64N(int64(2*time.Millisecond)))
	if s.rng.Float64() < 0.02 {
		d += time.Duration(s.rng.Int64N(int64(500 * time.Millisecond))) // reordering
	}
	return d
}

func (s *Sim) enqueue(h *host, m *rollout.Message) {
	key := bcKey{m.Kind, m.From}
	author := -1
	if m.Kind == rollout.KindRow {
		if id, ok := s.byName[m.From]; ok {
			author = id
		}
	}
	var old *bcItem
	if author >= 0 {
		if author >= len(h.rowq) {
			h.rowq = append(h.rowq, make([]*bcItem, len(s.hosts)-len(h.rowq))...)
		}
		old = h.rowq[author]
	} else {
		old = h.qidx[key]
	}
	if old != nil {
		old.dead, old.replaced = true, true // packets in flight keep the old message
	}
	it := &bcItem{key: key, author: author, msg: m, size: s.size(m), relay: m.From != h.name}
	s.minItem = min(s.minItem, it.size)
	if author >= 0 {
		h.rowq[author] = it
	} else {
		h.qidx[key] = it
	}
	h.queue = append(h.queue, it)
	if !h.gossipArmed {
		h.gossipArmed = true
		s.push(event{at: s.now + time.Duration(s.rng.Int64N(int64(s.cfg.Params.GossipInterval))), kind: evGossip, host: h.id, gen: h.gen})
	}
}

// gossipRound sends up to one UDP packet of queued broadcasts to GossipNodes
// random peers, as memberlist does.
func (s *Sim) gossipRound(h *host) {
	if len(h.queue) == 0 {
		return
	}
	for k := 0; k < 3; k++ {
		to := s.hosts[s.rng.IntN(len(s.hosts))]
		if to == h || !to.joined {
			continue
		}
		var batch []*rollout.Message
		size := 0
		for _, it := range h.queue {
			if size+s.minItem > 1400 {
				break // no item fits any more
			}
			if it.dead || size+it.size > 1400 {
				continue
			}
			size += it.size
			it.sends++
			if it.relay && it.sends >= s.relayLimit {
				it.dead = true
			}
			batch = append(batch, it.msg)
		}
		h.bytes += int64(size + 20)
		s.res.Messages++
		if len(batch) > 0 && s.rng.Float64() >= s.cfg.Loss && s.reachable(h, to) {
			s.push(event{at: s.now + s.delay(), kind: evDeliver, host: to.id, msgs: batch, gen: to.gen})
		}
	}
	rest := h.queue[:0]
	for _, it := range h.queue {
		if it.sends < s.limit && !it.dead {
			rest = append(rest, it)
		} else if !it.replaced {
			if it.author >= 0 {
				h.rowq[it.author] = nil
			} else {
				delete(h.qidx, it.key)
			}
		}
	}
	h.queue = rest
}

func (s *Sim) pushPull(h *host) {
	var cands []*host
	for _, o := range s.hosts {
		if o != h && s.reachable(h, o) {
			cands = append(cands, o)
		}
	}
	if len(cands) == 0 {
		return
	}
	o := cands[s.rng.IntN(len(cands))]
	a, b := sortedPtrs(h.node.LocalState()), sortedPtrs(o.node.LocalState())
	for _, m := range a {
		h.bytes += int64(s.size(m))
	}
	for _, m := range b {
		o.bytes += int64(s.size(m))
	}
	s.res.Messages += 2
	if s.rng.Float64() >= s.cfg.Loss {
		d := s.delay()
		s.push(event{at: s.now + d, kind: evDeliver, host: o.id, msgs: a, gen: o.gen})
		s.push(event{at: s.now + 2*d, kind: evDeliver, host: h.id, msgs: b, gen: h.gen})
	}
}

// ---- decisions and the fake hook runner ----

func (s *Sim) decide(h *host, d rollout.Decision) {
	switch d.Kind {
	case rollout.DecideStart:
		if h.running != "" {
			s.violation("P3: %s started %s while %s runs", h.name, d.Deployment, h.running)
		}
		for _, g := range s.ghosts {
			if g.host == h.id && g.until > s.now {
				s.violation("P3: %s started %s while its interrupted lifecycle still runs", h.name, d.Deployment)
			}
		}
		h.running, h.runSlot = d.Deployment, !d.Slotless
		h.fence = 0
		if d.Fence > 0 {
			h.fence = s.virtual(h, d.Fence)
		}
		h.runGen++
		if h.runSlot {
			s.checkP1(h)
		}
		dur := time.Duration(float64(s.cfg.HookTime) * (0.8 + 0.4*s.rng.Float64()))
		ok := s.rng.Float64() >= s.cfg.HookFailRate
		s.push(event{at: s.now + dur, kind: evFinish, host: h.id, gen: h.runGen, ok: ok, dep: d.Deployment})
	case rollout.DecideFence:
		if h.running == d.Deployment {
			h.fence = s.virtual(h, d.Fence)
		}
	case rollout.DecideAbort:
		if h.running == d.Deployment {
			h.running = ""
			h.runGen++
			s.push(event{at: s.now, kind: evAbortDone, host: h.id, gen: h.gen, dep: d.Deployment})
		}
	}
}

func (s *Sim) checkP1(h *host) {
	count := 0
	slots := map[uint32]string{}
	window := 0
	for _, o := range s.hosts {
		if o.up && o.running != "" && o.runSlot {
			count++
			r := o.node.Row()
			if r.Claim != 0 {
				if other, dup := slots[r.Slot]; dup {
					s.violation("P1: %s and %s both run in slot %d", other, o.name, r.Slot)
				}
				slots[r.Slot] = o.name
			}
		}
		if o.up {
			window = max(window, rollout.Resolve(s.cfg.Deployment, len(o.node.Roster().Members)).MaxWindow())
		}
	}
	for _, g := range s.ghosts {
		if g.until > s.now {
			count++
		}
	}
	s.res.MaxConcurrent = max(s.res.MaxConcurrent, count)
	s.res.Window = max(s.res.Window, window)
	if count > window {
		s.violation("P1: %d hosts run lifecycle events, window %d (at %s, started %s)", count, window, s.now, h.name)
	}
}

func (s *Sim) violation(f string, a ...any) {
	if len(s.res.Violations) < 20 {
		s.res.Violations = append(s.res.Violations, fmt.Sprintf(f, a...))
	}
}

// ---- faults ----

func (s *Sim) scheduleFaults() {
	n := s.cfg.Hosts
	pol := rollout.Resolve(s.cfg.Deployment, n)
	w := pol.Window
	if w == 0 {
		w = n
	}
	est := time.Duration(float64(s.cfg.HookTime+2*time.Second) * math.Ceil(float64(n)/float64(w)))
	if s.cfg.Deployment.Strategy == manifest.Canary {
		est += s.cfg.Deployment.Bake + s.cfg.HookTime
	}
	at := func() time.Duration { return 5*time.Second + time.Duration(s.rng.Int64N(int64(est))) }
	if s.cfg.Crashes {
		for i, k := 0, max(2, n/25); i < k; i++ {
			s.push(event{at: at(), kind: evCrash, host: -1})
		}
	}
	if s.cfg.Partitions {
		for i, k := 0, 1+s.rng.IntN(2); i < k; i++ {
			s.push(event{at: at(), kind: evPartition, host: i})
		}
	}
	if s.cfg.Permanent {
		s.push(event{at: at(), kind: evPartition, host: -1})
	}
	if s.cfg.Joins {
		for i, k := 0, max(1, n/30); i < k; i++ {
			s.push(event{at: at(), kind: evJoin, host: -1})
		}
		for i, k := 0, max(1, n/50); i < k; i++ {
			s.push(event{at: at(), kind: evLeave, host: -1})
		}
	}
}

// membership tells observers, after detection delays, what became of targets.
func (s *Sim) membership(targets, observers []int, down bool) {
	if down {
		s.push(event{at: s.now + s.cfg.Params.ProbeInterval, kind: evMembership, obs: observers, tgts: targets, r: rollout.ReachSuspect})
		s.push(event{at: s.now + s.cfg.Params.ProbeInterval + s.tsusp, kind: evMembership, obs: observers, tgts: targets, r: rollout.ReachDead})
		return
	}
	s.push(event{at: s.now + s.jitter(2*s.cfg.Params.ProbeInterval), kind: evMembership, obs: observers, tgts: targets, r: rollout.ReachAlive})
}

func (s *Sim) others(h *host) []int {
	var out []int
	for _, o := range s.hosts {
		if o != h && o.joined {
			out = append(out, o.id)
		}
	}
	return out
}

func (s *Sim) crash(h *host) {
	s.res.Faults["crash"]++
	if h.running != "" && h.runSlot {
		// The lifecycle keeps running until the fence (A3) or the restart.
		until := h.fence
		if until == 0 || until < s.now {
			until = s.now
		}
		s.ghosts = append(s.ghosts, ghost{host: h.id, until: until})
	}
	h.running = ""
	h.runGen++
	h.up = false
	h.gen++
	h.queue, h.qidx, h.rowq = nil, map[bcKey]*bcItem{}, nil
	s.membership([]int{h.id}, s.others(h), true)
	// restart after a short or a long outage (longer than the lease)
	d := time.Second + time.Duration(s.rng.Int64N(int64(3*s.timing.Lease)))
	s.push(event{at: s.now + d, kind: evRestart, host: h.id})
}

func (s *Sim) partition(idx int) {
	var live []*host
	for _, h := range s.hosts {
		if h.joined {
			live = append(live, h)
		}
	}
	s.rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	var cut int
	kind := "partition-minority"
	if s.rng.IntN(3) == 0 {
		cut, kind = len(live)/2, "partition-symmetric"
	} else {
		cut = max(1, len(live)*(10+s.rng.IntN(35))/100)
	}
	s.res.Faults[kind]++
	var a, b []int
	for i, h := range live {
		if i < cut {
			h.side = 1
			b = append(b, h.id)
		} else {
			h.side = 0
			a = append(a, h.id)
		}
	}
	s.partitioned = true
	s.membership(b, a, true)
	s.membership(a, b, true)
	if idx >= 0 {
		d := 5*time.Second + time.Duration(s.rng.Int64N(int64(60*time.Second)))
		s.push(event{at: s.now + d, kind: evHeal})
	} else {
		s.permanent = true
		s.res.Faults["partition-permanent"]++
	}
}

func (s *Sim) heal() {
	if s.permanent {
		return
	}
	var a, b []int
	for _, h := range s.hosts {
		if !h.joined {
			continue
		}
		if h.side == 1 {
			b = append(b, h.id)
		} else {
			a = append(a, h.id)
		}
		h.side = 0
	}
	s.partitioned = false
	s.membership(b, a, false)
	s.membership(a, b, false)
}

// ---- main loop ----

func (s *Sim) loop() {
	lastCheck := time.Duration(0)
	for len(s.ev) > 0 {
		e := s.ev.pop()
		if e.at > s.cfg.MaxTime {
			break
		}
		s.now = e.at
		s.res.Events++
		s.step(e)
		*e = event{}
		s.free = append(s.free, e)
		if s.now-lastCheck >= time.Second {
			lastCheck = s.now
			if s.settled() {
				s.res.Completed = true
				s.res.RolloutTime = s.now
				break
			}
		}
	}
	for _, h := range s.hosts {
		if h.joined && h.up && h.node.Row().Phase == rollout.PhaseRolledBack {
			s.res.Halted = true
		}
	}
	var total int64
	for _, h := range s.hosts {
		total += h.bytes
	}
	if s.now > 0 {
		s.res.GossipBytes = float64(total) / float64(len(s.hosts)) / s.now.Seconds()
	}
	if s.res.RolloutTime == 0 {
		s.res.RolloutTime = s.now
	}
}

// settled: every host of the cluster is up and has nothing left to do, and
// no fault is pending that must heal first.
func (s *Sim) settled() bool {
	if s.partitioned {
		return false
	}
	for _, h := range s.hosts {
		if !h.joined {
			continue
		}
		if !h.up || !h.node.Settled() || h.node.Row().Revision != "r2" {
			return false
		}
	}
	for _, r := range s.ev {
		if e := r.e; e.kind == evCrash || e.kind == evRestart || e.kind == evJoin || e.kind == evLeave || e.kind == evPartition || e.kind == evHeal || e.kind == evDesired {
			return false
		}
	}
	return true
}

func (s *Sim) step(e *event) {
	switch e.kind {
	case evWake:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen || h.wakeAt != e.at {
			return
		}
		h.wakeAt = -1
		h.node.Tick(s.local(h))
		s.flush(h)
	case evDeliver:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen {
			return
		}
		now := s.local(h)
		if e.msg != nil {
			h.node.ReceiveRef(now, e.msg)
		}
		for _, m := range e.msgs {
			h.node.ReceiveRef(now, m)
		}
		s.flush(h)
	case evGossip:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen {
			return
		}
		s.gossipRound(h)
		if len(h.queue) > 0 {
			s.push(event{at: s.now + s.cfg.Params.GossipInterval, kind: evGossip, host: h.id, gen: h.gen})
		} else {
			h.gossipArmed = false
		}
	case evPushPull:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen {
			return
		}
		s.pushPull(h)
		s.flush(h)
		s.push(event{at: s.now + s.jitter(s.ppEvery), kind: evPushPull, host: h.id, gen: h.gen})
	case evFinish:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.runGen || h.running != e.dep {
			return
		}
		h.running = ""
		res := "ok"
		if !e.ok {
			res = "hook failed"
		}
		h.node.Finished(s.local(h), e.dep, e.ok, res)
		s.flush(h)
	case evAbortDone:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen {
			return
		}
		h.node.Finished(s.local(h), e.dep, false, "aborted")
		s.flush(h)
	case evMembership:
		for _, o := range e.obs {
			ob := s.hosts[o]
			if !ob.up {
				continue
			}
			for _, t := range e.tgts {
				tg := s.hosts[t]
				if !tg.joined && e.r != rollout.ReachLeft {
					continue
				}
				truth := s.reachable(ob, tg)
				if truth != (e.r == rollout.ReachAlive) && e.r != rollout.ReachLeft {
					continue // stale news
				}
				ob.node.PeerChanged(s.local(ob), tg.name, e.r)
			}
			s.flush(ob)
		}
	case evCrash:
		var cands []*host
		for _, h := range s.hosts {
			if h.up && h.joined && (h.running != "" || s.rng.IntN(4) == 0) {
				cands = append(cands, h)
			}
		}
		if len(cands) > 0 {
			s.crash(cands[s.rng.IntN(len(cands))])
		}
	case evRestart:
		h := s.hosts[e.host]
		if h.up || !h.joined {
			return
		}
		s.res.Faults["restart"]++
		// the restarted agent kills what is left of the interrupted lifecycle
		s.ghosts = slices.DeleteFunc(s.ghosts, func(g ghost) bool { return g.host == h.id })
		s.startHost(h, false)
		if h.node.Row().Revision != s.desired.Revision {
			s.push(event{at: s.now + time.Second, kind: evDesired, host: h.id})
		}
		s.membership([]int{h.id}, s.others(h), false)
	case evPartition:
		if e.host < 0 && s.partitioned {
			s.heal()
		}
		if !s.partitioned {
			s.partition(e.host)
		}
	case evHeal:
		s.heal()
	case evJoin:
		s.res.Faults["join"]++
		h := s.addHost(hostName(len(s.hosts)), rollout.Persisted{})
		if s.permanent {
			h.side = s.rng.IntN(2)
		}
		s.startHost(h, false)
		s.push(event{at: s.now + time.Second, kind: evDesired, host: h.id})
		s.membership([]int{h.id}, s.others(h), false)
	case evLeave:
		var cands []*host
		for _, h := range s.hosts {
			if h.up && h.joined && h.running == "" && h.node.Settled() {
				cands = append(cands, h)
			}
		}
		if len(cands) == 0 {
			return
		}
		h := cands[s.rng.IntN(len(cands))]
		s.res.Faults["leave"]++
		obs := s.others(h)
		h.up, h.joined = false, false
		h.gen++
		s.push(event{at: s.now + s.jitter(2*s.cfg.Params.GossipInterval), kind: evMembership, obs: obs, tgts: []int{h.id}, r: rollout.ReachLeft})
	case evDesired:
		h := s.hosts[e.host]
		if !h.up {
			return
		}
		h.node.SetDesired(s.local(h), s.desired)
		s.flush(h)
	case evGhostEnd:
	}
}

// Dump describes every host's state (for debugging a stuck run).
func (s *Sim) Dump() string {
	var b []byte
	for _, h := range s.hosts {
		if !h.joined {
			continue
		}
		r := h.node.Row()
		b = fmt.Appendf(b, "%s up=%v side=%d running=%q settled=%v roster=%d/%d member=%v phase=%s rev=%s inst=%s res=%q acc=%v drained=%v paused=%v\n   %s\n",
			h.name, h.up, h.side, h.running, h.node.Settled(), r.Epoch, len(h.node.Roster().Members), slices.Contains(h.node.Roster().Members, h.name), r.Phase, r.Revision, r.Installed, r.Result, r.AccBallot, r.Drained, h.node.Paused(), h.node.Debug())
	}
	return string(b)
}

// sortedPtrs orders a push-pull state by author (the node produces it in map
// order), so that a seed always replays the same run.
func sortedPtrs(ms []rollout.Message) []*rollout.Message {
	out := make([]*rollout.Message, len(ms))
	for i := range ms {
		out[i] = &ms[i]
	}
	slices.SortFunc(out, func(a, b *rollout.Message) int {
		if c := cmp.Compare(a.From, b.From); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	return out
}
