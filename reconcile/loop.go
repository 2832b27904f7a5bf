package reconcile

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Transport carries one application's protocol messages to the other hosts
// of its group and says who they are. Package gossip implements it over
// memberlist (gossip.Endpoint); the simulator over its simulated network.
// Its methods are called from the Loop's goroutine and never block.
type Transport interface {
	// Send sends a direct message, best effort, to a host the transport
	// calls alive (others: dropped, the protocol treats it as lost).
	Send(env *rollout.Envelope)
	// Broadcast queues a row or flag for epidemic gossip.
	Broadcast(m *rollout.Message)
	// FanOut sends m at once to every peer of the group the transport calls
	// alive (it may decline in a group too large for it).
	FanOut(m *rollout.Message)
	// Reach is the transport's membership verdict on host, for this
	// application's group: ReachLeft for a host that is not in the group,
	// ReachDead for one it does not know. peer reports whether the
	// transport knows host as a member of the group, in any state.
	Reach(host string) (r rollout.Reach, peer bool)
}

// Deployer receives the protocol's decisions, in order, once the state they
// follow from is stored (PROTOCOL.md A2). It must not block: a start runs
// on a goroutine of its own and reports back through Input.Calls (Progress,
// Finished).
type Deployer interface {
	Decide(d rollout.Decision)
}

// LoopConfig configures a Loop.
type LoopConfig struct {
	Node      rollout.Config
	Transport Transport
	Deployer  Deployer
	// Persist stores the state durably. The Loop calls it before it sends
	// the messages of the same step (A2). On an error it logs, sends none of
	// that step's messages, holds the step's decisions and retries with
	// backoff before anything else is sent. Nil: nothing is stored (tests,
	// the simulator keeps the value itself).
	Persist func(rollout.Persisted) error
	// Eager sends a host's own row directly to every alive peer when it
	// changed in a way they act on, and a pause or resume set here, besides
	// gossiping them: the next host learns of a released slot in one
	// packet rather than a gossip round.
	Eager bool
	// Dropped counts what the Loop dropped: DropStale (a claim its sender
	// had already released), DropUnsent (messages of a step whose state
	// could not be stored). Nil: not counted.
	Dropped func(reason string)
	Log     *slog.Logger
}

// Reasons passed to LoopConfig.Dropped; the agent counts them with
// gossip's in drover_gossip_messages_dropped_total{reason} (DropUnsent is
// gossip's word too).
const (
	DropStale  = "stale"
	DropUnsent = "unsent"
)

// persist retries back off from the first to the last delay.
const (
	persistRetryFirst = 50 * time.Millisecond
	persistRetryMax   = 5 * time.Second
)

// Input is what arrived since the last step, applied in this order.
type Input struct {
	// Calls: the poller's desired revision, the operator's pause, the
	// deployer's progress and results, gate samples, member removals.
	Calls []Call
	// Members are hosts whose membership changed (the Loop asks Reach).
	Members []string
	// Msgs arrived from peers: one batch, ordered by the Node
	// (rollout.Node.ReceiveBatch).
	Msgs []*rollout.Message
}

// CallKind says what a Call is.
type CallKind uint8

// Call kinds.
const (
	CallDesired CallKind = iota + 1
	CallPaused
	CallProgress
	CallFinished
	CallForceRemove
	CallGateSample
)

// Call is one input of the local host, applied in order.
type Call struct {
	Kind       CallKind
	Desired    rollout.Desired // CallDesired
	Paused     bool            // CallPaused
	Deployment string          // CallProgress, CallFinished
	Event      string          // CallProgress
	OK         bool            // CallFinished
	Result     string          // CallFinished
	Host       string          // CallForceRemove
	Gate       string          // CallGateSample: the gate, its step and the sample
	Step       int
	Sample     gate.Sample
}

// Loop is the reconcile loop of one application on one host, without
// goroutines, I/O or a clock: each Step takes what arrived and runs the
// ordered steps of one round — apply the local calls (the desired revision
// among them), membership, the peers' messages, the timers that are due;
// then persist, send, and hand the decisions to the deployer. App runs a
// Loop on a goroutine of its own with the real clock and gossip; the
// simulator runs the same Loop with virtual time over a simulated network,
// so what it verifies is what ships.
type Loop struct {
	cfg  LoopConfig
	node *rollout.Node
	log  *slog.Logger
	told map[string]rollout.Reach // what the Node was last told per host

	pending    *rollout.Persisted // not yet stored
	held       []rollout.Decision // waiting for pending to be stored
	retryAt    time.Duration      // next Persist attempt while pending (0: now)
	retryDelay time.Duration
	failures   int
	storeErr   error         // the last failed store, nil once stored again
	failSince  time.Duration // when the failures began

	lastOwn rollout.Row // the own row last fanned out
	hasOwn  bool
	flag    rollout.Flag // the pause flag last logged

	// changed: what status shows may have changed since Changed was last
	// cleared; stateChanged: the rows or flag (push-pull) did.
	changed, stateChanged bool
}

// NewLoop creates the Loop and its Node from the stored state (zero for a
// new host) at the local time now.
func NewLoop(cfg LoopConfig, st rollout.Persisted, now time.Duration) *Loop {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loop{cfg: cfg, log: log, told: map[string]rollout.Reach{}, changed: true, stateChanged: true}
	l.node = rollout.NewNode(cfg.Node, st, now)
	l.flag = l.node.Flag()
	if l.flag.Paused {
		log.Info(fmt.Sprintf("restored fleet-wide pause of %s (set by %s); no host starts it until drover resume %s", cfg.Node.App, l.flag.Node, cfg.Node.App),
			"app", cfg.Node.App, "set_by", l.flag.Node, "flag_clock", l.flag.Clock)
	}
	return l
}

// Node is the Loop's rollout state machine, for reading (status, the
// simulator's checks). Feed it only through Step.
func (l *Loop) Node() *rollout.Node { return l.node }

// Step runs one round at the local time now and returns when the next is
// due (NextWake).
func (l *Loop) Step(now time.Duration, in *Input) time.Duration {
	if in != nil {
		for i := range in.Calls {
			l.call(now, &in.Calls[i])
		}
		for _, h := range in.Members {
			l.member(now, h)
		}
		l.receive(now, in.Msgs)
	}
	if l.node.NextWake() <= now {
		l.node.Tick(now)
	}
	l.flush(now)
	return l.NextWake()
}

// NextWake is the local time the next Step is due without input.
func (l *Loop) NextWake() time.Duration {
	w := l.node.NextWake()
	if l.pending != nil {
		w = min(w, l.retryAt)
	}
	return w
}

func (l *Loop) call(now time.Duration, k *Call) {
	l.changed = true
	n := l.node
	switch k.Kind {
	case CallDesired:
		n.SetDesired(now, k.Desired)
	case CallPaused:
		n.SetPaused(now, k.Paused)
	case CallProgress:
		n.Progress(now, k.Deployment, k.Event)
	case CallFinished:
		n.Finished(now, k.Deployment, k.OK, k.Result)
	case CallForceRemove:
		n.ForceRemove(now, k.Host)
	case CallGateSample:
		n.GateSample(now, k.Gate, k.Step, k.Sample)
	}
}

// member feeds a membership change to the Node, for a host that is (or
// was) a peer: one the Node was never told of and the transport does not
// know in the group is none of its business.
func (l *Loop) member(now time.Duration, host string) {
	r, peer := l.cfg.Transport.Reach(host)
	if _, known := l.told[host]; !known && !peer {
		return
	}
	l.setReach(now, host, r)
}

func (l *Loop) setReach(now time.Duration, host string, r rollout.Reach) {
	if host == l.cfg.Node.Host {
		return
	}
	if old, known := l.told[host]; known && old == r {
		return
	}
	l.told[host] = r
	l.node.PeerChanged(now, host, r)
	l.changed = true
}

// receive feeds one batch of messages. A row whose author the Node was
// never told of gets the transport's verdict first: a host memberlist does
// not know is dead to the protocol (its row may come by gossip from a host
// that outlived it), so that a host that left mid-lifecycle is not counted
// as running for good.
func (l *Loop) receive(now time.Duration, msgs []*rollout.Message) {
	if len(msgs) == 0 {
		return
	}
	self := l.cfg.Node.Host
	for _, m := range msgs {
		if m.Kind != rollout.KindRow || m.Row.Host == self { // own rows come back by gossip; self is never told
			continue
		}
		if _, known := l.told[m.Row.Host]; !known {
			r, _ := l.cfg.Transport.Reach(m.Row.Host)
			l.setReach(now, m.Row.Host, r)
		}
	}
	before := l.node.Stats().StaleClaims
	l.node.ReceiveBatch(now, msgs)
	l.count(DropStale, int(l.node.Stats().StaleClaims-before))
	l.changed = true
}

func (l *Loop) count(reason string, n int) {
	if l.cfg.Dropped != nil {
		for range n {
			l.cfg.Dropped(reason)
		}
	}
}

// flush handles the Node's output: persist first; only once that
// succeeded, send and broadcast the messages and hand over the decisions
// (A2).
func (l *Loop) flush(now time.Duration) {
	n := l.node
	o := n.TakeOutput()
	if f := n.Flag(); f != l.flag {
		l.flag = f
		what := "resumed"
		if f.Paused {
			what = "paused"
		}
		l.log.Info(fmt.Sprintf("%s %s fleet-wide by %s", l.cfg.Node.App, what, f.Node), "app", l.cfg.Node.App, "set_by", f.Node, "flag_clock", f.Clock)
	}
	if o.Persist != nil {
		l.pending = o.Persist
	}
	l.held = append(l.held, o.Decisions...)
	if len(o.Broadcast) > 0 || o.Persist != nil || len(o.Decisions) > 0 {
		l.changed = true
	}
	if len(o.Broadcast) > 0 {
		l.stateChanged = true
	}
	if l.pending != nil && !l.persist(now) {
		l.count(DropUnsent, len(o.Send)+len(o.Broadcast))
		return
	}
	tr := l.cfg.Transport
	for i := range o.Send {
		tr.Send(&o.Send[i])
	}
	for i := range o.Broadcast {
		m := &o.Broadcast[i]
		tr.Broadcast(m)
		if l.cfg.Eager && l.eager(m) {
			tr.FanOut(m)
		}
	}
	if len(l.held) > 0 {
		held := l.held
		l.held = nil
		for _, d := range held {
			l.cfg.Deployer.Decide(d)
		}
	}
}

// persist stores l.pending, reporting whether it is stored.
func (l *Loop) persist(now time.Duration) bool {
	if now < l.retryAt {
		return false
	}
	if l.cfg.Persist != nil {
		if err := l.cfg.Persist(*l.pending); err != nil {
			if l.failures == 0 {
				l.failSince = now
			}
			l.failures++
			l.storeErr = err
			l.changed = true
			l.retryDelay = min(max(2*l.retryDelay, persistRetryFirst), persistRetryMax)
			l.retryAt = now + l.retryDelay
			if l.failures == 1 || l.failures%20 == 0 {
				l.log.Error("cannot store rollout state; holding this host's messages and decisions until it is stored",
					"app", l.cfg.Node.App, "attempts", l.failures, "retry_in", l.retryDelay, "err", err)
			}
			return false
		}
		if l.failures > 0 {
			l.log.Info("rollout state stored again", "app", l.cfg.Node.App, "after_attempts", l.failures)
			l.storeErr, l.changed = nil, true
		}
	}
	l.pending, l.retryAt, l.retryDelay, l.failures = nil, 0, 0, 0
	return true
}

// eager reports whether a broadcast also goes directly to every peer: a
// pause or resume set here (an operator's stop should stop at once), and
// this host's own row when it changed in a way its peers act on.
func (l *Loop) eager(m *rollout.Message) bool {
	self := l.cfg.Node.Host
	switch {
	case m.Kind == rollout.KindFlag:
		return m.From == self
	case m.Kind != rollout.KindRow || m.Row.Host != self:
		return false
	case l.hasOwn && !significant(&l.lastOwn, &m.Row):
		return false
	}
	l.lastOwn, l.hasOwn = m.Row, true
	return true
}

// significant reports whether a host's own row changed in a way its peers
// act on (a slot freed, a phase reached, a roster step, a gate's verdict),
// as opposed to progress reports.
func significant(old, r *rollout.Row) bool {
	return old.Phase != r.Phase || old.Revision != r.Revision || old.Attempt != r.Attempt ||
		old.Claim != r.Claim || old.Released != r.Released || old.Installed != r.Installed ||
		old.Epoch != r.Epoch || old.RosterHash != r.RosterHash || old.AccBallot != r.AccBallot || old.Drained != r.Drained ||
		len(r.Gates)+len(old.Gates) > 0 && rollout.VerdictsChanged(old.Gates, r.Gates)
}

// Changed reports whether what View shows may have changed since the last
// View (a roster wait or a bake reads the clock too: see View).
func (l *Loop) Changed() bool { return l.changed }

// View is a snapshot of what the Loop shows: every host's row, the
// roster, the pause flag, the gates. State is the full state for
// anti-entropy (push-pull), nil when it did not change since the last View.
type View struct {
	Status    []rollout.HostStatus
	Roster    rollout.RosterState
	Voters    rollout.Roster // Members not shared with the Node
	Paused    bool
	Flag      rollout.Flag
	BakeUntil time.Duration
	Jobs      []rollout.GateJob
	Gates     []rollout.GateStatus
	// StoreError is why the rollout state cannot be stored ("" while it
	// can), since StoreFailingSince: this host holds its messages and
	// decisions meanwhile (A2), so the fleet sees it as silent.
	StoreError        string
	StoreFailingSince time.Duration
	State             []rollout.Message
}

// View builds the snapshot at now and clears Changed.
func (l *Loop) View(now time.Duration) View {
	n := l.node
	v := View{
		Status: n.Status(), Roster: n.RosterState(now), Voters: n.Roster(), Paused: n.Paused(), Flag: n.Flag(),
		BakeUntil: n.BakeUntil(), Jobs: n.Evaluating(), Gates: n.Gates(),
	}
	v.Voters.Members = slices.Clone(v.Voters.Members)
	if l.storeErr != nil {
		v.StoreError, v.StoreFailingSince = l.storeErr.Error(), l.failSince
	}
	if l.stateChanged {
		v.State = n.LocalState()
	}
	l.changed, l.stateChanged = false, false
	return v
}
