package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// Link is an App's connection to its group: the Transport, the timing the
// transport's failure detection allows, and the full state it serves to
// peers for anti-entropy (push-pull), which the App refreshes as it
// changes.
type Link interface {
	Transport
	Timing() rollout.Timing
	SetState(ms []rollout.Message)
}

// AppConfig configures an App.
type AppConfig struct {
	Name, Group, Host string
	// State is what was stored (zero for a new host); Persist stores it
	// (LoopConfig.Persist).
	State   rollout.Persisted
	Persist func(rollout.Persisted) error
	// BootstrapExpect and Nonce: rollout.Config's.
	BootstrapExpect int
	Nonce           string
	// Eager: LoopConfig.Eager. Dropped: LoopConfig.Dropped, and
	// DropOverflow for inbound messages beyond the inbox's bound.
	Eager   bool
	Dropped func(reason string)
	// ViewEvery bounds how often the status snapshot and the push-pull
	// state are rebuilt while they change; 100 ms.
	ViewEvery time.Duration
	Log       *slog.Logger

	// Poller, when set, is the application's source: the App runs it and
	// its desired revisions become the rollout's (Deploy needs it to fetch
	// a new revision). Nil: desired state comes from SetDesired only.
	Poller *source.Poller
	// Deploy runs what the protocol decides on this host (deploy.go).
	// Nil: decisions go to OnDecision instead (tests of the protocol).
	Deploy     *Deploy
	OnDecision func(Decision)
}

// DropOverflow: an inbound message dropped because the inbox was full (the
// protocol tolerates loss).
const DropOverflow = "overflow"

// maxInbox bounds the inbound messages waiting for the loop.
const maxInbox = 1 << 16

// Decision is a rollout.Decision with its fence as a time.Time.
type Decision struct {
	rollout.Decision
	// FenceAt is Fence as a time.Time carrying a monotonic reading (use
	// time.Until); zero when Fence is 0.
	FenceAt time.Time
}

// App is the reconcile loop of one application on this host, on a
// goroutine of its own: it owns the source poller, the rollout Node (in a
// Loop) and the deployments it decides. One deployment's path, in order:
//
//  1. poll: the Poller finds a new revision and calls onDesired (its own
//     goroutine: polling is I/O), which queues it as a Call;
//  2. set desired, receive, tick: run takes the queued input (calls,
//     membership, the peers' messages from the transport) and Loop.Step
//     feeds it to the Node in that order, then runs the timers due;
//  3. persist, send: Loop.Step stores the Node's state, then sends its
//     messages over the Link (gossip.Endpoint);
//  4. run: Loop.Step hands each decision to Decide; a start runs the
//     lifecycle (Deploy.run, hooks.Engine) on a goroutine of its own,
//     which queues Progress and Finished back;
//  5. record: run refreshes the status snapshot and the push-pull state.
type App struct {
	cfg    AppConfig
	log    *slog.Logger
	origin time.Time // the local clock's origin (now)

	mu   sync.Mutex        // guards in and the fields below
	in   Input             // calls and members; Msgs unused (msgs holds them)
	msgs []rollout.Message // delivered, for the next step (values: one allocation per burst, not per message)
	// the snapshot of the last View
	view  View
	timng rollout.Timing

	poke    chan struct{} // buffered 1: input is waiting
	stop    chan struct{} // closed by Close once deployments ended
	cancel  context.CancelFunc
	polling sync.WaitGroup // the poller
	wg      sync.WaitGroup // the loop
	once    sync.Once

	loop *Loop // only run's goroutine touches it after Start
	link Link
	last struct { // run's: when the view was last built, and what of it
		at    time.Duration
		bake  time.Duration
		poked time.Time      // the last poke of the poller for a peer ahead
		pokes map[string]int // pokes per revision a peer targets that the source has not shown
	}
}

// NewApp builds the App; it runs from Start. Messages delivered before
// Start wait for it.
func NewApp(cfg AppConfig) *App {
	if cfg.ViewEvery <= 0 {
		cfg.ViewEvery = 100 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &App{
		cfg: cfg, log: cfg.Log, origin: time.Now(),
		poke: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	// Until the first snapshot, status tells what was stored: an agent
	// restarted under a pause says paused at once.
	a.view.Paused, a.view.Flag = cfg.State.Flag.Paused, cfg.State.Flag
	if cfg.Deploy != nil {
		cfg.Deploy.app = a
	}
	return a
}

// Start runs the App over link: the poller until ctx ends or Close, the
// loop until Close. Deployments run under deployCtx, which outlives ctx on a
// reload, so that a reload never kills a hook.
func (a *App) Start(ctx, deployCtx context.Context, link Link) {
	a.link = link
	t := link.Timing()
	now := a.now()
	a.loop = NewLoop(LoopConfig{
		Node: rollout.Config{Host: a.cfg.Host, App: a.cfg.Name, Group: a.cfg.Group, Timing: t,
			BootstrapExpect: a.cfg.BootstrapExpect, Nonce: a.cfg.Nonce},
		Transport: link, Deployer: a, Persist: a.cfg.Persist, Eager: a.cfg.Eager,
		Dropped: a.cfg.Dropped, Log: a.log,
	}, a.cfg.State, now)
	a.mu.Lock()
	a.timng = t
	a.mu.Unlock()
	if d := a.cfg.Deploy; d != nil {
		d.start(deployCtx)
	}
	pctx, cancel := context.WithCancel(ctx)
	a.cancel = cancel
	if p := a.cfg.Poller; p != nil {
		a.polling.Go(func() { p.Run(pctx, a.onDesired) })
	}
	a.wg.Go(a.run)
}

// Close stops the poller, waits for a running deployment (its end is
// still recorded and sent: a reload must not turn it into an interrupted
// one), then stops the loop. Decisions that come after are dropped.
func (a *App) Close() {
	a.once.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.polling.Wait()
		if d := a.cfg.Deploy; d != nil {
			d.close()
		}
		close(a.stop)
	})
	a.wg.Wait()
}

// now is the Loop's local time: a monotonic duration since the App's
// origin. It starts at one hour, so that no real instant is ever 0 (the
// Node uses zero durations as "unset").
func (a *App) now() time.Duration { return time.Since(a.origin) + timeOffset }

const timeOffset = time.Hour

// TimeAt converts a time of the Node's clock (rollout.HostStatus.Since, a
// fence, a gate's Due) to wall-clock time with a monotonic reading; zero
// stays zero.
func (a *App) TimeAt(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return a.origin.Add(d - timeOffset)
}

// run is the App's goroutine: one Loop step per wake-up.
func (a *App) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var in Input
	var msgs []rollout.Message
	var ptrs []*rollout.Message
	stopped := false
	for {
		a.mu.Lock()
		in, a.in = a.in, Input{Calls: in.Calls[:0], Members: in.Members[:0]}
		msgs, a.msgs = a.msgs, msgs[:0]
		a.mu.Unlock()
		ptrs = ptrs[:0]
		for i := range msgs {
			ptrs = append(ptrs, &msgs[i])
		}
		in.Msgs = ptrs
		now := a.now()
		wake := a.loop.Step(now, &in)
		clear(ptrs) // the Node keeps none of them
		clear(msgs)
		wake = min(wake, a.record(now))
		if stopped {
			return // after a last step: what was queued before Close is stored and sent
		}
		t.Reset(max(wake-a.now(), time.Millisecond))
		select {
		case <-a.stop:
			stopped = true
		case <-a.poke:
		case <-t.C:
		}
	}
}

// record rebuilds the status snapshot and the push-pull state at most every
// ViewEvery while they change, and returns when it wants to run next. A
// group without a roster has a reason that changes with time alone (a
// bootstrap wait passing), and a bake ends with time: both are rebuilt too.
func (a *App) record(now time.Duration) time.Duration {
	l := a.loop
	n := l.Node()
	if !l.Changed() && n.Roster().Epoch != 0 && n.BakeUntil() == a.last.bake {
		return now + time.Hour
	}
	if next := a.last.at + a.cfg.ViewEvery; now < next && a.last.at != 0 {
		return next
	}
	v := l.View(now)
	a.last.at, a.last.bake = now, v.BakeUntil
	if v.State != nil {
		a.link.SetState(v.State)
	}
	v.State = nil // the transport's now
	a.mu.Lock()
	a.view = v
	a.mu.Unlock()
	if rev := a.peerAhead(v.Status); rev != "" && time.Since(a.last.poked) > 2*time.Second {
		// A peer that already targets a revision this host has not seen
		// means the source moved: poll now rather than at the next
		// interval, so the fleet reacts within a second or two of the
		// first host noticing. A few times per revision, not for ever: a
		// peer whose row names a revision the source no longer shows (a
		// dead host's last target) must not make this host poll every
		// two seconds.
		a.pokeFor(rev)
	}
	if n.Roster().Epoch == 0 {
		return now + a.cfg.ViewEvery
	}
	return now + time.Hour
}

// pokeFor has the poller poll now, for the revision rev a peer targets.
func (a *App) pokeFor(rev string) {
	if a.last.pokes == nil || len(a.last.pokes) > 64 {
		a.last.pokes = map[string]int{} // bounded: start over
	}
	a.last.pokes[rev]++
	a.last.poked = time.Now()
	a.cfg.Poller.Poke()
}

// maxPokes is how many times a revision a peer targets makes this host
// poll its source out of turn.
const maxPokes = 3

// peerAhead returns a revision some peer targets that this host's source
// has not shown it yet (and that has not made it poll maxPokes times), ""
// when there is none.
func (a *App) peerAhead(rows []rollout.HostStatus) string {
	d := a.cfg.Deploy
	if d == nil || a.cfg.Poller == nil {
		return ""
	}
	for _, h := range rows {
		if h.Revision == "" || h.Host == a.cfg.Host || a.last.pokes[h.Revision] >= maxPokes {
			continue
		}
		if _, ok := d.Known(h.Revision); !ok {
			return h.Revision
		}
	}
	return ""
}

func (a *App) enqueue(k Call) {
	a.mu.Lock()
	a.in.Calls = append(a.in.Calls, k)
	a.mu.Unlock()
	a.kick()
}

func (a *App) kick() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Deliver queues messages from peers for the loop and returns how many it
// took: beyond the inbox's bound the rest are dropped, counted. It never
// blocks (the transport calls it from memberlist's goroutines).
func (a *App) Deliver(ms []rollout.Message) int {
	a.mu.Lock()
	keep := min(len(ms), max(maxInbox-len(a.msgs), 0))
	a.msgs = append(a.msgs, ms[:keep]...)
	a.mu.Unlock()
	if a.cfg.Dropped != nil {
		for range len(ms) - keep {
			a.cfg.Dropped(DropOverflow)
		}
	}
	if keep > 0 {
		a.kick()
	}
	return keep
}

// MemberChanged tells the loop that host's membership changed; the loop
// asks the transport's Reach. It never blocks.
func (a *App) MemberChanged(host string) {
	a.mu.Lock()
	if !slices.Contains(a.in.Members, host) {
		a.in.Members = append(a.in.Members, host)
	}
	a.mu.Unlock()
	a.kick()
}

// Decide is the Loop's Deployer: it runs on the loop's goroutine.
func (a *App) Decide(d rollout.Decision) {
	dec := Decision{Decision: d}
	if d.Fence > 0 {
		dec.FenceAt = a.TimeAt(d.Fence)
	}
	switch {
	case a.cfg.Deploy != nil:
		a.cfg.Deploy.decide(dec)
	case a.cfg.OnDecision != nil:
		a.cfg.OnDecision(dec)
	}
}

// onDesired is called by the poller with each new desired revision.
func (a *App) onDesired(rev source.Revision) {
	if d := a.cfg.Deploy; d != nil {
		d.Desire(rev)
	}
	d := rollout.Desired{Revision: rev.ID, ManifestID: manifestID(rev)}
	if rev.Manifest != nil {
		d.Deployment = rev.Manifest.Deployment
	}
	a.log.Info("desired revision", "revision", rev.Label, "id", rev.ID, "strategy", d.Deployment.Strategy, "paused", d.Deployment.Paused)
	a.SetDesired(d)
}

// manifestID changes whenever the manifest or the revision changes: a
// halted revision is retried only under a new manifest.
func manifestID(rev source.Revision) string {
	h := sha256.New()
	h.Write([]byte(rev.ID))
	h.Write([]byte{0})
	if rev.Manifest != nil {
		h.Write(manifest.Format(rev.Manifest))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ---- calls (queued to the loop, never blocking) ----

// SetDesired feeds the manifest's desired state.
func (a *App) SetDesired(d rollout.Desired) { a.enqueue(Call{Kind: CallDesired, Desired: d}) }

// SetPaused sets the fleet-wide pause flag of the application.
func (a *App) SetPaused(paused bool) { a.enqueue(Call{Kind: CallPaused, Paused: paused}) }

// ForceRemove asks this host's Node to propose a roster without host
// (rollout.Node.ForceRemove): the operator's removal of a voter, for
// `drover members remove`. The change goes through the same Paxos round and
// drain as any roster change (PROTOCOL.md §4.1), so it completes only with
// a majority of the current roster reachable, and only if this host is a
// voter; Voters shows when it is in force. The request lives in this
// host's memory: an agent restarted before then forgets it.
func (a *App) ForceRemove(host string) { a.enqueue(Call{Kind: CallForceRemove, Host: host}) }

// GateSample hands one sample of a gate this host evaluates (a job of
// Evaluating) to the Node, which decides the gate's verdict.
func (a *App) GateSample(name string, step int, s gate.Sample) {
	a.enqueue(Call{Kind: CallGateSample, Gate: name, Step: step, Sample: s})
}

// Progress reports the lifecycle event now running.
func (a *App) Progress(deployment, event string) {
	a.enqueue(Call{Kind: CallProgress, Deployment: deployment, Event: event})
}

// Finished reports the end of a lifecycle (after an Abort too, with ok=false).
func (a *App) Finished(deployment string, ok bool, result string) {
	a.enqueue(Call{Kind: CallFinished, Deployment: deployment, OK: ok, Result: result})
}

// ---- the snapshot (lags the loop by at most ViewEvery) ----

// Timing returns the protocol timeouts the App runs with (zero before
// Start).
func (a *App) Timing() rollout.Timing {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.timng
}

// read returns f of the snapshot, under the lock.
func read[T any](a *App, f func(v *View) T) T {
	a.mu.Lock()
	defer a.mu.Unlock()
	return f(&a.view)
}

// Status returns every host's row as this host sees it, sorted by host.
func (a *App) Status() []rollout.HostStatus {
	return read(a, func(v *View) []rollout.HostStatus { return slices.Clone(v.Status) })
}

// Roster returns the group's roster as this host holds it and, while it has
// none, why (rollout.Node.RosterState).
func (a *App) Roster() rollout.RosterState {
	return read(a, func(v *View) rollout.RosterState { return v.Roster })
}

// Voters returns the roster this host holds, with its members.
func (a *App) Voters() rollout.Roster {
	return read(a, func(v *View) rollout.Roster {
		r := v.Voters
		r.Members = slices.Clone(r.Members)
		return r
	})
}

// Paused reports the fleet-wide pause flag as this host sees it.
func (a *App) Paused() bool { return read(a, func(v *View) bool { return v.Paused }) }

// Flag returns the fleet-wide pause flag as this host sees it, with the
// reason a gate gave when it paused the rollout.
func (a *App) Flag() rollout.Flag { return read(a, func(v *View) rollout.Flag { return v.Flag }) }

// BakeUntil is when the canary's bake ends while the rollout waits for it
// (rollout.Node.BakeUntil), zero otherwise.
func (a *App) BakeUntil() time.Time {
	return a.TimeAt(read(a, func(v *View) time.Duration { return v.BakeUntil }))
}

// Evaluating returns the gates this host samples now
// (rollout.Node.Evaluating; Due is on the Node's clock, see TimeAt).
func (a *App) Evaluating() []rollout.GateJob {
	return read(a, func(v *View) []rollout.GateJob { return slices.Clone(v.Jobs) })
}

// StoreError is why this host cannot store its rollout state ("" while it
// can) and since when: meanwhile it holds its messages and decisions.
func (a *App) StoreError() (string, time.Time) {
	var since time.Duration
	err := read(a, func(v *View) string { since = v.StoreFailingSince; return v.StoreError })
	return err, a.TimeAt(since)
}

// Gates returns every declared gate's merged verdict as this host sees it.
func (a *App) Gates() []rollout.GateStatus {
	return read(a, func(v *View) []rollout.GateStatus { return slices.Clone(v.Gates) })
}
