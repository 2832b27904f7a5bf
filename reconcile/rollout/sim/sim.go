// Package sim runs the real rollout state machine (package rollout) of
// hundreds of hosts over a simulated network with virtual time and seeded
// faults, and checks the properties of DESIGN.md §8 while it runs: P1 and P3
// at every start, P2 (completion) at the end.
//
// Each host runs the agent's own reconcile loop (reconcile.Loop: the same
// ordered step — calls, membership, messages, timers, persist, send,
// decide — and the same rules the agent follows: the batch order, persist
// before send, the fan-out of significant own rows, the verdict asked of
// membership for an unknown row author). Only the network, membership
// detection and the hook runner are simulated, behind the Loop's Transport
// and Deployer (simLink), and they follow what ships (gossip.Endpoint):
//
//   - Delivery is one Loop step per arrival: a
//     direct message, a gossip packet's worth of broadcasts, a push-pull
//     state, or everything an agent found queued when it resumed from a
//     pause (shuffled: memberlist hands a backlog over in any order).
//   - Direct messages are datagrams. Messages that Message.Reliable
//     reports (roster and Paxos) also go over a stream (TCP), and those
//     larger than a datagram go over a stream only. Streams are sent one at
//     a time per host as gossip's stream sender goroutine does: one to a host
//     that cannot be reached blocks the sender for memberlist's TCPTimeout
//     (10 s), and more than 256 waiting are dropped. Streams lose nothing.
//   - The Endpoint sends only to hosts memberlist calls alive, and sends its
//     own significant rows directly to every alive peer in groups of up to
//     128 hosts (gossip's fan-out), besides gossiping them.
//   - Broadcasts are memberlist's piggybacking: broadcasts piggybacked on
//     gossip rounds (GossipNodes peers every GossipInterval) with a
//     retransmit limit of RetransmitMult·⌈log10(n+1)⌉, plus periodic
//     push-pull (a stream) with one random alive peer.
//
// Membership is memberlist's verdict, computed per pair of hosts from the
// links: memberlist probes a peer with a UDP ping and ack, falls back to a
// TCP ping, and asks k=3 other members to ping it indirectly (UDP on every
// leg); the peer stays alive while one of those works, and a peer nobody
// can probe is declared dead one probe interval plus the suspicion timeout
// after it became unreachable (the Endpoint does not report suspicion, so a
// Node sees alive, then dead). What that means for each cut:
//
//   - partition (sides): dead across, nothing passes.
//   - UDP-only cut between two groups: alive (TCP fallback ping); push-pull
//     and the stream copies of reliable messages pass; every datagram
//     (claims, grants, releases, gossip, fan-out, datagram copies) between
//     the groups is dropped.
//   - TCP-only cut between two groups: alive (UDP probes); datagrams pass;
//     push-pull and streams between the groups fail, and each failed stream
//     send blocks its sender for the TCP timeout.
//   - one-way cut A→B: every packet from A to B is dropped (a route or
//     filter failure), so streams fail both ways (a handshake needs both)
//     while B's datagrams still reach A. Between two hosts with others
//     connected both stay alive through indirect probes; between two groups
//     that make up the cluster there is no intermediary and each side sees
//     the other dead (A hears B's gossip but cannot ack, B hears nothing).
//   - pairwise cut: a host is cut off (both protocols, both ways) from a
//     random subset of its peers; it and they stay alive to each other
//     through indirect probes via the rest.
//
// Not modelled: suspicion flapping when only some indirect probes succeed,
// and whether the intermediaries are up (a crashed or paused member still
// counts as one).
//
// Agent pauses (SIGSTOP, a frozen cgroup, a stalled VM) stop the agent —
// its Node gets no Tick and no input, it sends nothing, its memberlist does
// not answer (others declare it dead) — while its running hook goes on.
// Arrivals during a pause are dropped, or, for about half the pauses, up to
// a bound (8 to 256 packets: a socket buffer) are kept and delivered on
// resume. The hook is bounded by a supervisor independent of the agent:
// when the Node gives a run a Fence deadline (the start decision,
// DecideFence while the agent runs), the supervisor sends TERM at that
// instant of the host's clock and the hook is gone within FenceGrace
// (uniform in [0, FenceGrace]). An abort by the agent stops the hook the
// same way. A hook that ends during a pause is reported to the Node only
// after the resume; on resume the agent ticks first, then takes its
// backlog and the hook reports (in a seeded order). NoSupervisorFence is the
// behaviour before the supervisor fence: only the agent enforces it, so a
// paused agent's hook runs to its natural end.
//
// Clocks: every host's clock runs at its own rate in [1−ρ, 1+ρ]
// (Timing.DriftRate, A1), drawn uniformly, or at exactly 1−ρ or 1+ρ with
// DriftExtremes. The protocol reads only monotonic clocks, so the sim has
// no wall clock: a wall-clock step changes nothing and is not modelled.
//
// A crash loses the node's memory except the last Persisted state, exactly
// what the agent stores; a crashed agent's slot lifecycle counts as running
// until its fence plus the stop grace, or its restart.
//
// Fleet pauses (FleetPauses) are the operator's `drover pause`: set at one
// host, gossiped, stored with the rest of the state (the flag is part of
// Persisted), with crashes and a restart of the whole fleet while it holds,
// and a `drover resume` at another host, possibly while some are still
// down. A host that knew of the pause must not start anything under it, and
// a restarted host must come back with the flag it held.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Config describes one simulated rollout.
type Config struct {
	Hosts        int
	Deployment   manifest.Deployment
	HookTime     time.Duration // mean lifecycle duration
	HookFailRate float64       // probability that a lifecycle fails
	// SlowHooks is the probability that a lifecycle runs 1 to 4 leases
	// instead of about HookTime (a long AfterInstall).
	SlowHooks float64
	Loss      float64 // probability that a datagram is lost
	// Duplicate is the probability that a datagram (a direct message or a
	// gossip packet) is delivered twice, the copy with its own delay.
	Duplicate  float64
	Partitions bool // healing partitions (majority/minority and symmetric)
	// GrayCuts: healing partial cuts (UDP only, TCP only, one way, pairwise;
	// see the package comment for what membership says in each).
	GrayCuts bool
	// Permanent: one partition (and, with GrayCuts, one gray cut) never
	// heals; completion is not expected.
	Permanent bool
	Crashes   bool // crashes and restarts, some longer than the lease
	// Pauses: agents stop (SIGSTOP, frozen cgroup, stalled VM) for 0.05 to
	// 5 leases, most of them slot holders, while their hooks go on.
	Pauses bool
	// NoSupervisorFence is a mutation: the supervisor does not enforce the
	// fence, only the agent does, so a paused agent's hook runs to its
	// natural end (the behaviour issue 9 reports).
	NoSupervisorFence bool
	// FleetPauses: the operator pauses the rollout fleet-wide (drover pause
	// at a random host) a while into it; while it is paused hosts crash and
	// restart, and the whole fleet restarts together (a package upgrade
	// everywhere, a power cut); then the operator resumes it at another
	// random host, possibly while some hosts are still down.
	FleetPauses bool
	// ForgetPause is a mutation: a restarted node loses the pause flag, as
	// before the flag was part of Persisted.
	ForgetPause bool
	Joins       bool // fresh hosts join, some hosts leave gracefully
	// FreshGroup starts every host with nothing installed (a new group
	// whose roster formed, A4): each installs r2 without a slot when its
	// poll sees it, whatever the others are doing.
	FreshGroup bool
	// DriftExtremes: every host's clock runs at exactly 1−ρ or 1+ρ, the
	// bound of A1, instead of a rate drawn from [1−ρ, 1+ρ].
	DriftExtremes bool
	Params        rollout.MemberlistParams
	MaxTime       time.Duration // give up after this much virtual time (default 4h)
	// Gates, when set, gives the rollout health gates sampled by a script
	// (gates.go): checks G1 (no step starts before the gates of the steps
	// before it passed), G2 (a failed gate halts everyone, an inconclusive
	// one pauses) and the evaluator's bound (GateMaxGap ≤ GateBound).
	Gates *GateScript
	// Debug, when set, receives message counts of every run and the state of
	// every host of a run that did not complete.
	Debug func(string)
	// Trace, when set, receives a line per start, hook end, abort, fence
	// kill, pause, resume, crash, restart and cut.
	Trace func(string)
}

// Result is the outcome of one seeded run.
type Result struct {
	Seed          uint64
	Violations    []string
	MaxConcurrent int
	Window        int
	Completed     bool
	Expected      bool          // completion was expected (no permanent partition or cut)
	Halted        bool          // some host saw the rollout halt
	RolloutTime   time.Duration // virtual time until every live host settled
	GossipBytes   float64       // bytes sent per host per virtual second
	Messages      int64
	Events        int64
	Faults        map[string]int
	// GateMaxGap is the longest time between two samples of one gate of one
	// step (any host) while only crashes and loss disturbed the fleet;
	// GateBound is what it may be (gates.go). Zero without Config.Gates.
	GateMaxGap, GateBound time.Duration
}

const (
	evWake = iota
	evDeliver
	evGossip
	evPushPull
	evHookEnd
	evMembership
	evCrash
	evRestart
	evPartition
	evHeal
	evGrayCut
	evGrayHeal
	evPause
	evResume
	evJoin
	evLeave
	evDesired
	evFleetPause
	evFleetResume
	evFleetRestart
	evGateSample
	evGateResume
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
	dep  string
	d    time.Duration
}

type report struct {
	dep    string
	ok     bool
	result string
}

type host struct {
	id          int
	name        string
	loop        *reconcile.Loop // the agent's reconcile loop, over this host's simLink
	node        *rollout.Node   // loop.Node(), for reading
	link        *simLink
	persist     rollout.Persisted
	up          bool
	joined      bool // part of the cluster (false before a join, after a leave)
	gen         uint64
	wakeAt      time.Duration
	wakeGen     uint64
	drift       float64
	offset      time.Duration
	side        int
	told        []rollout.Reach // what this host's Node was last told of each host id
	queue       []*bcItem
	qidx        map[bcKey]*bcItem // queued broadcasts by key, except rows of known hosts:
	rowq        []*bcItem         // queued row by author id
	bytes       int64
	gossipArmed bool
	streamFree  time.Duration   // the stream sender is busy until then
	streamQ     []time.Duration // start times of stream sends not started yet

	// The hook process (it outlives a pause and, until its fence, a crash).
	running  string // deployment id; "" when no hook runs
	runSlot  bool
	runGen   uint64
	natEnd   time.Duration // natural end
	natOK    bool
	fence    time.Duration // virtual instant of the supervisor's TERM (0: none)
	killEnd  time.Duration // the supervisor's kill has it gone by then (0: none)
	abortEnd time.Duration // the agent's abort has it gone by then (0: none)
	hookEnd  time.Duration // min of the above: when it exits

	// Pause state.
	paused      bool
	heldCap     int // packets kept while paused (0: dropped)
	heldPackets int
	held        []*rollout.Message
	reports     []report // hook ends the Node learns of on resume
	wantDesired bool     // a poll came while paused

	skipped uint64 // Node.Stats().Skipped last traced

	// knew is the newest pause flag this host's Node has held, across its
	// restarts (what it must come back with).
	knew rollout.Flag
}

type ghost struct {
	host  int
	until time.Duration
}

// Sim is one run.
type Sim struct {
	cfg          Config
	rng          *rand.Rand
	now          time.Duration
	seq          uint64
	ev           evQueue
	free         []*event // recycled events
	hosts        []*host
	byName       map[string]int
	timing       rollout.Timing
	ghosts       []ghost
	res          Result
	desired      rollout.Desired
	buf          []byte
	tsusp        time.Duration
	limit        int
	relayLimit   int
	kinds        map[string]int
	ppEvery      time.Duration
	partitioned  bool
	permanent    bool
	cuts         []*cut
	grayGroups   int
	topo         *topo
	minItem      int // smallest broadcast size seen: bounds what still fits a packet
	one          [1]*rollout.Message
	departed     int // hosts that left
	groupAlive   int // hosts the fan-out goes to, recounted lazily
	groupAliveAt time.Duration
	op           rollout.Flag // the operator's last pause or resume (Clock 0: none yet)
	gates        *gateState   // nil without Config.Gates
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

// virtual is the first virtual instant at which h's clock reads l or later
// (not before now). Rounding must not give an instant whose local time is
// still short of l: a Node woken then finds nothing due and asks for the
// same wake-up again, for ever.
func (s *Sim) virtual(h *host, l time.Duration) time.Duration {
	v := time.Duration(math.Ceil(float64(l-h.offset) / (1 + h.drift)))
	for h.offset+time.Duration(float64(v)*(1+h.drift)) < l {
		v++
	}
	return max(v, s.now)
}

func (s *Sim) trace(f string, a ...any) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(fmt.Sprintf("%12s ", s.now.Round(time.Millisecond)) + fmt.Sprintf(f, a...))
	}
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
	if cfg.Debug != nil {
		s.kinds = map[string]int{}
		defer func() { cfg.Debug(fmt.Sprint(s.kinds)) }()
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
	if cfg.Gates != nil {
		s.initGates()
		cfg = s.cfg
		s.res.GateBound = s.gates.bound
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
	if s.gates != nil {
		s.checkGatesEnd()
		if s.res.GateMaxGap > s.gates.bound {
			s.violation("gates: %s between two samples of one gate, bound %s", s.res.GateMaxGap, s.gates.bound)
		}
	}
	if !s.res.Completed && cfg.Debug != nil {
		cfg.Debug(s.Dump())
	}
	return s.res
}

func hostName(i int) string { return "h" + strconv.Itoa(i) }

func (s *Sim) addHost(name string, st rollout.Persisted) *host {
	h := &host{id: len(s.hosts), name: name, persist: st, qidx: map[bcKey]*bcItem{}}
	rho := s.timing.DriftRate
	if s.cfg.DriftExtremes {
		h.drift = rho
		if s.rng.IntN(2) == 0 {
			h.drift = -rho
		}
	} else {
		h.drift = (2*s.rng.Float64() - 1) * rho
	}
	h.offset = time.Duration(s.rng.Int64N(int64(time.Hour)))
	s.hosts = append(s.hosts, h)
	s.byName[name] = h.id
	s.topo = nil
	return h
}

// startHost (re)creates the node from its persisted state.
func (s *Sim) startHost(h *host, initial bool) {
	h.up, h.joined = true, true
	h.gen++
	if s.cfg.ForgetPause {
		h.persist.Flag = rollout.Flag{}
	}
	lk := &simLink{s: s, h: h}
	h.link = lk
	h.loop = reconcile.NewLoop(reconcile.LoopConfig{
		Node:      rollout.Config{Host: h.name, App: "app", Group: "g", Timing: s.timing},
		Transport: lk, Deployer: lk, Eager: true,
		Persist: func(p rollout.Persisted) error { h.persist = p; return nil },
	}, h.persist, s.local(h))
	h.node = h.loop.Node()
	h.told, h.skipped = nil, 0
	if !initial {
		s.checkRestoredFlag(h)
	}
	// its view of the others
	var dead []string
	for _, o := range s.hosts {
		if o != h && o.joined && !s.seesAlive(h, o) {
			h.setTold(o.id, rollout.ReachDead)
			dead = append(dead, o.name)
		}
	}
	s.run(h, &reconcile.Input{Members: dead})
	h.gossipArmed = false
	s.push(event{at: s.now + s.jitter(s.ppEvery), kind: evPushPull, host: h.id, gen: h.gen})
	if !initial {
		s.pushPull(h) // memberlist's join does a push-pull
	}
}

func (s *Sim) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(s.rng.Int64N(int64(d)))
}

// run runs one step of h's reconcile loop with what arrived (the same
// Loop.Step the agent runs: inputs, timers due, persist, send, decide) and
// reschedules its wake-up.
func (s *Sim) run(h *host, in *reconcile.Input) { s.runThen(h, in, nil) }

// runThen is run with a look at the node after the step and before its
// decisions go to the hook runner (the Loop hands them over last in its
// step, after what it sent).
func (s *Sim) runThen(h *host, in *reconcile.Input, then func()) {
	if !h.up || h.paused {
		return
	}
	lk := h.link
	w := s.virtual(h, h.loop.Step(s.local(h), in))
	if then != nil {
		then()
	}
	ds := lk.decided
	lk.decided = lk.decided[:0]
	for _, d := range ds {
		s.decide(h, d)
	}
	if s.cfg.Trace != nil {
		if st := h.node.Stats(); st.Skipped != h.skipped {
			s.trace("%s passes over %d host(s) ahead of it in the order (%d so far)", h.name, st.Skipped-h.skipped, st.Skipped)
			h.skipped = st.Skipped
		}
	}
	if f := h.node.Flag(); flagNewer(f, h.knew) {
		h.knew = f
		s.trace("%s takes the pause flag %+v", h.name, f)
	}
	if s.gates != nil {
		s.scheduleGates(h)
	}
	if w != h.wakeAt || h.wakeGen != h.gen {
		h.wakeAt, h.wakeGen = w, h.gen
		s.push(event{at: w, kind: evWake, host: h.id, gen: h.gen})
	}
}

// call runs one step of h's loop with one local call.
func (s *Sim) call(h *host, c reconcile.Call) {
	s.run(h, &reconcile.Input{Calls: []reconcile.Call{c}})
}

// simLink is one host's reconcile.Transport over the simulated network
// (what gossip.Endpoint is over memberlist) and its Deployer (the hook
// runner's start, abort and fence).
type simLink struct {
	s       *Sim
	h       *host
	decided []rollout.Decision // handed to the hook runner after the step
}

func (l *simLink) Send(env *rollout.Envelope)   { l.s.sendDirect(l.h, env) }
func (l *simLink) Broadcast(m *rollout.Message) { l.s.broadcast(l.h, m) }
func (l *simLink) FanOut(m *rollout.Message)    { l.s.fanOut(l.h, m, l.s.size(m)) }
func (l *simLink) Decide(d rollout.Decision)    { l.decided = append(l.decided, d) }
func (l *simLink) Reach(host string) (rollout.Reach, bool) {
	id, ok := l.s.byName[host]
	if !ok {
		return rollout.ReachDead, false
	}
	return l.h.toldOf(id), true
}

func (s *Sim) size(m *rollout.Message) int {
	s.buf = rollout.AppendEncode(s.buf[:0], m)
	return len(s.buf) + 8 // + memberlist framing
}

// sendDirect sends as gossip.Endpoint's Send does: only to a host
// memberlist calls alive; as a datagram, and also over a stream when the
// message is Reliable; over a stream only when it is too large.
func (s *Sim) sendDirect(h *host, env *rollout.Envelope) {
	to, ok := s.byName[env.To]
	if !ok || h.toldOf(to) != rollout.ReachAlive {
		return
	}
	o := s.hosts[to]
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
	size := s.size(m)
	h.bytes += int64(size)
	s.res.Messages++
	if size > udpLimit {
		s.stream(h, o, m)
		return
	}
	s.datagram(h, o, m, nil)
	if m.Reliable() {
		h.bytes += int64(size)
		s.res.Messages++
		s.stream(h, o, m)
	}
}

func (s *Sim) delay() time.Duration {
	d := 200*time.Microsecond + time.Duration(s.rng.Int64N(int64(2*time.Millisecond)))
	if s.rng.Float64() < 0.02 {
		d += time.Duration(s.rng.Int64N(int64(500 * time.Millisecond))) // reordering
	}
	return d
}

// broadcast queues m for gossip (gossip.Endpoint's Broadcast); the Loop
// decides what also goes to every peer at once (FanOut).
func (s *Sim) broadcast(h *host, m *rollout.Message) {
	if size := s.size(m); size-8 <= maxBroadcast {
		s.enqueue(h, m, size)
	}
}

// fanOut sends m directly to every peer h's memberlist calls alive, in a
// group of up to eagerMaxGroup hosts (gossip.Endpoint's FanOut).
func (s *Sim) fanOut(h *host, m *rollout.Message, size int) {
	if size > udpLimit || s.aliveGroup() > eagerMaxGroup {
		return
	}
	for _, o := range s.hosts {
		if o != h && o.joined && h.toldOf(o.id) == rollout.ReachAlive {
			h.bytes += int64(size)
			s.res.Messages++
			s.datagram(h, o, m, nil)
		}
	}
}

// eagerMaxGroup is gossip's: own rows go directly to the group's members
// only in groups up to this size.
const eagerMaxGroup = 128

// aliveGroup approximates the number of hosts a fan-out would go to (the
// joined hosts), recounted at most once per virtual second.
func (s *Sim) aliveGroup() int {
	if s.groupAliveAt == 0 || s.now-s.groupAliveAt >= time.Second {
		s.groupAlive, s.groupAliveAt = 0, max(s.now, 1)
		for _, o := range s.hosts {
			if o.joined {
				s.groupAlive++
			}
		}
		s.groupAlive-- // not to itself
	}
	return s.groupAlive
}

func (s *Sim) enqueue(h *host, m *rollout.Message, size int) {
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
	it := &bcItem{key: key, author: author, msg: m, size: size, relay: m.From != h.name}
	s.minItem = min(s.minItem, it.size)
	if author >= 0 {
		h.rowq[author] = it
	} else {
		h.qidx[key] = it
	}
	h.queue = append(h.queue, it)
	s.armGossip(h)
}

func (s *Sim) armGossip(h *host) {
	if !h.gossipArmed && len(h.queue) > 0 {
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
		if to == h || !to.joined || h.toldOf(to.id) != rollout.ReachAlive {
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
		if len(batch) > 0 {
			h.bytes += int64(size + 20)
			s.res.Messages++
			s.datagram(h, to, nil, batch)
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

// pushPull exchanges full states with one random peer memberlist calls
// alive, over a stream. A paused peer's kernel takes the state (kept for its
// resume like any arrival) but the peer never answers.
func (s *Sim) pushPull(h *host) {
	var cands []*host
	for _, o := range s.hosts {
		if o != h && o.joined && h.toldOf(o.id) == rollout.ReachAlive {
			cands = append(cands, o)
		}
	}
	if len(cands) == 0 {
		return
	}
	o := cands[s.rng.IntN(len(cands))]
	if !o.up || !s.tcpPass(h, o) {
		return
	}
	// The state is read from the Node at the instant; the agent's
	// (Loop.View, sent to the Endpoint) is at most ViewEvery old.
	a := sortedPtrs(h.node.LocalState())
	for _, m := range a {
		h.bytes += int64(s.size(m))
	}
	s.res.Messages++
	d := s.delay()
	s.push(event{at: s.now + d, kind: evDeliver, host: o.id, msgs: a, gen: o.gen})
	if o.paused {
		return
	}
	b := sortedPtrs(o.node.LocalState())
	for _, m := range b {
		o.bytes += int64(s.size(m))
	}
	s.res.Messages++
	s.push(event{at: s.now + 2*d, kind: evDeliver, host: h.id, msgs: b, gen: h.gen})
}

func (s *Sim) receive(h *host, e *event) {
	in := &reconcile.Input{Msgs: e.msgs}
	if e.msg != nil {
		s.one[0] = e.msg
		in.Msgs = s.one[:]
	}
	if s.departed > 0 {
		for _, m := range in.Msgs {
			in.Members = s.routeRow(h, m, in.Members)
		}
	}
	s.run(h, in)
	s.one[0] = nil
}

// routeRow models memberlist for a row whose author it no longer knows (it
// left, and the row came from a host that outlived it, e.g. in a restarted
// agent's first push-pull): the author is dead, and the loop hears so
// before the row. Without it a restarted host would count a host that left
// mid-lifecycle as running for good.
func (s *Sim) routeRow(h *host, m *rollout.Message, members []string) []string {
	if m.Kind != rollout.KindRow {
		return members
	}
	id, ok := s.byName[m.Row.Host]
	if !ok || s.hosts[id].joined || h.toldOf(id) != rollout.ReachAlive {
		return members
	}
	h.setTold(id, rollout.ReachDead)
	return append(members, m.Row.Host)
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
		var who []string
		for _, o := range s.hosts {
			if o.up && o.running != "" && o.runSlot {
				w := o.name
				if o.paused {
					w += "(agent paused)"
				}
				who = append(who, w)
			}
		}
		for _, g := range s.ghosts {
			if g.until > s.now {
				who = append(who, s.hosts[g.host].name+"(crashed agent)")
			}
		}
		s.violation("P1: %d hosts run lifecycle events, window %d (at %s, started %s; running %v)", count, window, s.now, h.name, who)
	}
}

func (s *Sim) violation(f string, a ...any) {
	s.trace("VIOLATION "+f, a...)
	if len(s.res.Violations) < 20 {
		s.res.Violations = append(s.res.Violations, fmt.Sprintf(f, a...))
	}
}

// ---- main loop ----

func (s *Sim) loop() {
	lastCheck := time.Duration(0)
	same := 0 // events in a row at one instant
	for len(s.ev) > 0 {
		e := s.ev.pop()
		if e.at > s.cfg.MaxTime {
			break
		}
		if e.at == s.now {
			same++
			if same > 5_000_000 {
				s.violation("sim: more than %d events at %s; virtual time stands still", same-1, s.now)
				break
			}
		} else {
			same = 0
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

// settled: every host of the cluster is up, running and has nothing left to
// do, and no fault is pending that must heal first.
func (s *Sim) settled() bool {
	if s.partitioned || len(s.cuts) > 0 {
		return false
	}
	for _, h := range s.hosts {
		if !h.joined {
			continue
		}
		if !h.up || h.paused || !h.node.Settled() || h.node.Row().Revision != "r2" {
			return false
		}
		if s.gates != nil && s.gates.failed && !h.node.Row().Halted {
			return false // a failed gate halts every host: wait until it has (G2)
		}
	}
	for _, r := range s.ev {
		switch r.e.kind {
		case evCrash, evRestart, evJoin, evLeave, evPartition, evHeal, evGrayCut, evGrayHeal, evPause, evResume, evDesired,
			evFleetPause, evFleetResume, evFleetRestart, evGateResume:
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
		if h.paused {
			return // the resume ticks
		}
		s.run(h, nil)
	case evDeliver:
		h := s.hosts[e.host]
		if !h.up || e.gen != h.gen {
			return
		}
		if h.paused {
			s.hold(h, e)
			return
		}
		s.receive(h, e)
	case evGossip:
		s.gossipTimer(s.hosts[e.host], e)
	case evPushPull:
		s.pushPullTimer(s.hosts[e.host], e)
	case evHookEnd:
		s.hookEnd(e)
	case evMembership:
		s.deliverMembership(e)
	case evCrash:
		s.crashSome()
	case evRestart:
		s.restart(s.hosts[e.host])
	case evPartition:
		if e.host < 0 && s.partitioned {
			s.heal()
		}
		if !s.partitioned {
			s.partition(e.host)
		}
	case evHeal:
		s.heal()
	case evGrayCut:
		s.grayCut(e.host)
	case evGrayHeal:
		s.grayHeal(int(e.gen))
	case evPause:
		s.pause()
	case evResume:
		h := s.hosts[e.host]
		if h.up && h.paused && e.gen == h.gen {
			s.resume(h)
		}
	case evJoin:
		s.join()
	case evLeave:
		s.leave()
	case evDesired:
		h := s.hosts[e.host]
		if !h.up {
			return
		}
		if h.paused {
			h.wantDesired = true
			return
		}
		s.call(h, reconcile.Call{Kind: reconcile.CallDesired, Desired: s.desired})
	case evFleetPause, evFleetResume:
		s.operatorSets(e.kind == evFleetPause)
	case evFleetRestart:
		s.fleetRestart()
	case evGateSample:
		s.gateSample(e)
	case evGateResume:
		s.gateResume()
	}
}

// gossipTimer is one of h's gossip rounds, re-armed while it has queued
// broadcasts.
func (s *Sim) gossipTimer(h *host, e *event) {
	if !h.up || e.gen != h.gen {
		return
	}
	if h.paused {
		h.gossipArmed = false // the resume re-arms
		return
	}
	s.gossipRound(h)
	if len(h.queue) > 0 {
		s.push(event{at: s.now + s.cfg.Params.GossipInterval, kind: evGossip, host: h.id, gen: h.gen})
	} else {
		h.gossipArmed = false
	}
}

// pushPullTimer is h's periodic push-pull with a random peer.
func (s *Sim) pushPullTimer(h *host, e *event) {
	if !h.up || e.gen != h.gen {
		return
	}
	if !h.paused {
		s.pushPull(h)
	}
	s.push(event{at: s.now + s.jitter(s.ppEvery), kind: evPushPull, host: h.id, gen: h.gen})
}

// Dump describes every host's state (for debugging a stuck run).
func (s *Sim) Dump() string {
	var b []byte
	for _, h := range s.hosts {
		if !h.joined {
			continue
		}
		var stale []string
		for _, o := range s.hosts {
			if o != h && o.joined && h.up && (h.toldOf(o.id) == rollout.ReachAlive) != s.seesAlive(h, o) {
				stale = append(stale, fmt.Sprintf("%s(told %s)", o.name, h.toldOf(o.id)))
			}
		}
		if len(stale) > 0 {
			b = fmt.Appendf(b, "%s's membership view differs from the links: %v\n", h.name, stale)
		}
		var old []string
		for _, st := range h.node.Status() {
			if id, ok := s.byName[st.Host]; ok && st.Host != h.name && s.hosts[id].joined && s.hosts[id].up {
				if cur := s.hosts[id].node.Row(); cur.Seq > st.Seq && (cur.Phase != st.Phase || cur.Claim != st.Claim) {
					old = append(old, fmt.Sprintf("%s(%s/%d, is %s/%d, reach %s)", st.Host, st.Phase, st.Claim, cur.Phase, cur.Claim, st.Reach))
				}
			}
		}
		if len(old) > 0 {
			b = fmt.Appendf(b, "%s holds old rows of %v\n", h.name, old)
		}
		var runs []string
		for _, st := range h.node.Status() {
			if st.Host != h.name && st.Phase.Running() {
				id := s.byName[st.Host]
				runs = append(runs, fmt.Sprintf("%s(slot %d claim %d, reach %s, joined %v, hook %q)", st.Host, st.Slot, st.Claim, st.Reach, s.hosts[id].joined, s.hosts[id].running))
			}
		}
		if len(runs) > 0 {
			b = fmt.Appendf(b, "%s holds running rows of %v\n", h.name, runs)
		}
		r := h.node.Row()
		b = fmt.Appendf(b, "%s up=%v paused=%v side=%d running=%q settled=%v roster=%d/%d member=%v phase=%s rev=%s inst=%s res=%q acc=%v drained=%v paused=%v stats=%+v\n   %s\n",
			h.name, h.up, h.paused, h.side, h.running, h.node.Settled(), r.Epoch, len(h.node.Roster().Members), slices.Contains(h.node.Roster().Members, h.name), r.Phase, r.Revision, r.Installed, r.Result, r.AccBallot, r.Drained, h.node.Paused(), h.node.Stats(), h.node.Debug())
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
