package gossip

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// AppConfig registers one application of this host.
type AppConfig struct {
	Name, Group string
	// State is what the daemon loaded (zero for a new host).
	State rollout.Persisted
	// Persist stores the state durably. The driver calls it before it sends
	// the messages of the same step (PROTOCOL.md A2). On an error it logs,
	// sends none of that step's messages, holds the step's decisions, and
	// retries (with backoff) before anything else is sent. Nil: nothing is
	// stored (tests).
	Persist func(rollout.Persisted) error
	// Timing: nil derives it once, at registration, with
	// rollout.TimingFor(Params, n), n = GroupSize or, when that is 0, the
	// number of hosts memberlist shows in the group at that moment (this one
	// included). It is fixed for the App's life: n only scales memberlist's
	// suspicion timeout (log10 n), and every host honours the lease its
	// claimant asks for.
	Timing    *rollout.Timing
	GroupSize int
}

// Decision is a rollout.Decision with its fence as a time.Time.
type Decision struct {
	rollout.Decision
	// FenceAt is Fence as a time.Time carrying a monotonic reading (use
	// time.Until); zero when Fence is 0.
	FenceAt time.Time
}

// App is one application's handle on the cluster.
type App struct {
	c      *Cluster
	name   string
	group  string
	timing rollout.Timing
	cfg    AppConfig

	out  chan Decision // Decisions; unbuffered, fed by the pump
	kick chan struct{} // buffered 1: the pump has decisions
	done chan struct{} // closed by Close
	pump sync.WaitGroup

	closeOnce sync.Once

	mu     sync.Mutex // guards the fields below
	queue  []Decision // not yet taken from out
	status []rollout.HostStatus
	roster rollout.RosterState
	voters rollout.Roster // the roster this host holds (Members not shared with the Node)
	paused bool
	bake   time.Duration // Node.BakeUntil at the snapshot
	flag   rollout.Flag
	jobs   []rollout.GateJob    // Node.Evaluating at the snapshot
	gates  []rollout.GateStatus // Node.Gates at the snapshot
	closed bool
}

// App registers an application. Its Node is created by the driver, at the
// driver's local time, from cfg.State. The App's group must be one of the
// Config's Groups (peers find this host through them).
func (c *Cluster) App(cfg AppConfig) (*App, error) {
	if cfg.Name == "" || len(cfg.Name) > rollout.MaxString {
		return nil, fmt.Errorf("register app %q: name must be 1..%d bytes", cfg.Name, rollout.MaxString)
	}
	if !slices.Contains(c.cfg.Groups, cfg.Group) {
		return nil, fmt.Errorf("register app %q: group %q is not one of this host's groups %q", cfg.Name, cfg.Group, c.cfg.Groups)
	}
	a := &App{
		c: c, name: cfg.Name, group: cfg.Group, cfg: cfg,
		out: make(chan Decision), kick: make(chan struct{}, 1), done: make(chan struct{}),
		// Until the driver's first snapshot, status tells what was
		// stored: an agent restarted under a pause says paused at once.
		paused: cfg.State.Flag.Paused,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if _, dup := c.apps[cfg.Name]; dup {
		return nil, fmt.Errorf("register app %q: %w", cfg.Name, errDuplicateApp)
	}
	if cfg.Timing != nil {
		a.timing = *cfg.Timing
	} else {
		n := cfg.GroupSize
		if n <= 0 {
			n = 1 // this host
			for _, m := range c.members {
				if m.name != c.cfg.NodeName && m.hasGroup(cfg.Group) && m.state == memberlist.StateAlive {
					n++
				}
			}
		}
		a.timing = rollout.TimingFor(c.cfg.Params, n)
	}
	c.apps[cfg.Name] = a
	c.calls = append(c.calls, call{app: a, kind: callRegister})
	a.pump.Add(1)
	go a.runPump()
	c.kick()
	return a, nil
}

var errDuplicateApp = errors.New("already registered")

// Timing returns the protocol timeouts the App runs with.
func (a *App) Timing() rollout.Timing { return a.timing }

// SetDesired feeds the manifest's desired state.
func (a *App) SetDesired(d rollout.Desired) { a.enqueue(call{kind: callDesired, desired: d}) }

// SetPaused sets the fleet-wide pause flag of the application.
func (a *App) SetPaused(paused bool) { a.enqueue(call{kind: callPaused, paused: paused}) }

// ForceRemove asks this host's Node to propose a roster without host
// (rollout.Node.ForceRemove): the operator's removal of a voter, for
// `drover members remove`. The change goes through the same Paxos round and
// drain as any roster change (PROTOCOL.md §4.1), so it completes only with
// a majority of the current roster reachable, and only if this host is a
// voter; Voters shows when it is in force. The request lives in this
// host's memory: an agent restarted before then forgets it.
func (a *App) ForceRemove(host string) { a.enqueue(call{kind: callForceRemove, host: host}) }

// GateSample hands one sample of a gate this host evaluates (a job of
// Evaluating) to the Node, which decides the gate's verdict
// (rollout.Node.GateSample); like SetPaused it is queued to the driver.
func (a *App) GateSample(name string, step int, s gate.Sample) {
	a.enqueue(call{kind: callGateSample, gate: name, step: step, sample: s})
}

// Evaluating returns the gates this host samples now
// (rollout.Node.Evaluating; Due is on the Node's clock, see TimeAt). Same
// lag as Status.
func (a *App) Evaluating() []rollout.GateJob {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.jobs)
}

// Gates returns every declared gate's merged verdict as this host sees it
// (rollout.Node.Gates). Same lag as Status.
func (a *App) Gates() []rollout.GateStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.gates)
}

// Flag returns the fleet-wide pause flag as this host sees it, with the
// reason a gate gave when it paused the rollout. Same lag as Status.
func (a *App) Flag() rollout.Flag {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flag
}

// Voters returns the roster this host holds, with its members, as of the
// last snapshot (same lag as Status).
func (a *App) Voters() rollout.Roster {
	a.mu.Lock()
	defer a.mu.Unlock()
	return rollout.Roster{Epoch: a.voters.Epoch, Members: slices.Clone(a.voters.Members)}
}

// Progress reports the lifecycle event now running.
func (a *App) Progress(deployment, event string) {
	a.enqueue(call{kind: callProgress, deployment: deployment, event: event})
}

// Finished reports the end of a lifecycle (after an Abort too, with ok=false).
func (a *App) Finished(deployment string, ok bool, result string) {
	a.enqueue(call{kind: callFinished, deployment: deployment, ok: ok, result: result})
}

// Decisions delivers what the protocol decided, in order. A queue without
// bound sits in front of it, so the driver never waits for the reader. The
// channel is never closed: stop reading on your own context.
func (a *App) Decisions() <-chan Decision { return a.out }

// Status returns a snapshot of every host's row as this host sees it,
// sorted by host. It lags the driver by at most a few tens of milliseconds.
func (a *App) Status() []rollout.HostStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.status)
}

// Roster returns the group's roster as this host holds it and, while it has
// none, why (rollout.Node.RosterState). Same lag as Status.
func (a *App) Roster() rollout.RosterState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.roster
}

// TimeAt converts a time of the Node's clock (rollout.HostStatus.Since) to
// wall-clock time; zero stays zero.
func (a *App) TimeAt(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return a.c.timeAt(d)
}

// BakeUntil is when the canary's bake ends while the rollout waits for it
// (rollout.Node.BakeUntil), zero otherwise. Same lag as Status.
func (a *App) BakeUntil() time.Time {
	a.mu.Lock()
	d := a.bake
	a.mu.Unlock()
	return a.TimeAt(d)
}

// Paused reports the fleet-wide pause flag as this host sees it.
func (a *App) Paused() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paused
}

// Close unregisters the application: its Node stops, its pending decisions
// are discarded.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		a.enqueue(call{kind: callUnregister})
		a.c.mu.Lock()
		if a.c.apps[a.name] == a {
			delete(a.c.apps, a.name)
		}
		a.c.mu.Unlock()
	})
	a.stopPump()
}

func (a *App) stopPump() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	a.mu.Unlock()
	a.pump.Wait()
}

func (a *App) enqueue(k call) {
	k.app = a
	c := a.c
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.calls = append(c.calls, k)
	c.mu.Unlock()
	c.kick()
}

// deliver queues decisions for the reader (driver side; never blocks).
func (a *App) deliver(ds []Decision) {
	if len(ds) == 0 {
		return
	}
	a.mu.Lock()
	a.queue = append(a.queue, ds...)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// runPump moves queued decisions to the channel, one at a time.
func (a *App) runPump() {
	defer a.pump.Done()
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.mu.Unlock()
			select {
			case <-a.kick:
				continue
			case <-a.done:
				return
			}
		}
		d := a.queue[0]
		a.queue[0] = Decision{}
		a.queue = a.queue[1:]
		a.mu.Unlock()
		select {
		case a.out <- d:
		case <-a.done:
			return
		}
	}
}

type callKind uint8

const (
	callRegister callKind = iota + 1
	callUnregister
	callDesired
	callPaused
	callProgress
	callFinished
	callForceRemove
	callGateSample
)

// call is an App method call, applied by the driver in order.
type call struct {
	app        *App
	kind       callKind
	desired    rollout.Desired
	paused     bool
	deployment string
	event      string
	ok         bool
	result     string
	host       string // callForceRemove
	gate       string // callGateSample: the gate, its step and the sample
	step       int
	sample     gate.Sample
}
