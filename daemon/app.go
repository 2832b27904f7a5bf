package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/gossip"
	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/hooks/proc"
	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// fleet is the rollout side of one application: the gossip cluster's
// handle, which drives the rollout protocol with the other hosts.
type fleet interface {
	SetDesired(d rollout.Desired)
	SetPaused(paused bool)
	Progress(deployment, event string)
	Finished(deployment string, ok bool, result string)
	Decisions() <-chan gossip.Decision
	Status() []rollout.HostStatus
	Paused() bool
	Timing() rollout.Timing
	// Voters and ForceRemove serve `drover members` and member removal.
	Voters() rollout.Roster
	ForceRemove(host string)
	// Roster, TimeAt and BakeUntil serve `drover status`.
	Roster() rollout.RosterState
	TimeAt(d time.Duration) time.Time
	BakeUntil() time.Time
	// Evaluating, GateSample, Gates and Flag serve the health gates
	// (gates.go): which this host samples, its samples, the fleet's
	// verdicts, and the reason a gate paused the rollout.
	Evaluating() []rollout.GateJob
	GateSample(name string, step int, s gate.Sample)
	Gates() []rollout.GateStatus
	Flag() rollout.Flag
	Close()
}

var _ fleet = (*gossip.App)(nil)

// deployer runs one lifecycle on this host.
type deployer interface {
	Deploy(ctx context.Context, req hooks.Request) (*hooks.Record, error)
}

// app is the reconcile loop of one application on this host: poll the
// source, tell the fleet what is desired, run what the fleet decides, report
// back. Data flows one way: source → manifest → rollout → hooks → state and
// gossip.
type app struct {
	cfg     AppConfig
	host    string
	log     *slog.Logger
	metrics *Metrics
	src     source.Source
	poller  *source.Poller
	fleet   fleet
	engine  deployer
	store   *hooks.Store

	mu sync.Mutex // guards the fields below
	// known maps revision IDs the source published to what it said, so
	// that a decision naming one can fetch it.
	known   map[string]source.Revision
	desired source.Revision
	hasDes  bool
	manif   *manifest.Manifest
	running *runningDeployment // nil when idle
	started time.Time          // when the loops started: polling since
	labels  map[string]string  // revision ID → label found in the records (archivedLabel)

	wg sync.WaitGroup // the loops and a running deployment
}

type runningDeployment struct {
	id     string
	cancel context.CancelCauseFunc
	// fence is the slot's fence (nil for a slotless deployment): the
	// lifecycle checks it before every event and its scripts' watchdogs
	// enforce it while the agent is stopped; timer cancels the
	// deployment's non-script work (download, install) when it passes.
	fence *proc.Fence
	timer *time.Timer
}

// errAborted is the cause of a deployment stopped by the rollout protocol.
var errAborted = errors.New("aborted by the rollout protocol: this host lost its slot (lease expired or partitioned)")

// start runs the app's loops until ctx ends. Deployments run under deployCtx,
// which outlives ctx on a reload, so that a reload never kills a hook.
func (a *app) start(ctx, deployCtx context.Context) {
	a.mu.Lock()
	a.started = time.Now()
	a.mu.Unlock()
	a.wg.Go(func() { a.poller.Run(ctx, a.onDesired) })
	a.wg.Go(func() { a.decisionLoop(ctx, deployCtx) })
	a.wg.Go(func() { a.gateLoop(ctx, &gate.Evaluator{}) })
}

// wait waits for the loops and any running deployment.
func (a *app) wait() { a.wg.Wait() }

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

// onDesired is called by the poller with each new desired revision.
func (a *app) onDesired(rev source.Revision) {
	a.mu.Lock()
	a.known[rev.ID] = rev
	a.desired, a.hasDes = rev, true
	a.manif = rev.Manifest
	a.mu.Unlock()
	d := rollout.Desired{Revision: rev.ID, ManifestID: manifestID(rev)}
	if rev.Manifest != nil {
		d.Deployment = rev.Manifest.Deployment
	}
	a.log.Info("desired revision", "revision", rev.Label, "id", rev.ID, "strategy", d.Deployment.Strategy, "paused", d.Deployment.Paused)
	a.fleet.SetDesired(d)
}

func (a *app) decisionLoop(ctx, deployCtx context.Context) {
	// A peer that already targets a revision this host has not seen means
	// the source moved: poll now rather than at the next interval, so the
	// fleet reacts within a second or two of the first host noticing.
	peek := time.NewTicker(500 * time.Millisecond)
	defer peek.Stop()
	var lastPoke time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-a.fleet.Decisions():
			a.handle(deployCtx, d)
		case <-peek.C:
			if time.Since(lastPoke) > 2*time.Second && a.peerAhead() {
				lastPoke = time.Now()
				a.poller.Poke()
			}
		}
	}
}

// peerAhead reports whether some peer targets a revision this host's
// source has not shown it yet.
func (a *app) peerAhead() bool {
	rows := a.fleet.Status()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range rows {
		if h.Revision == "" || h.Host == a.host {
			continue
		}
		if _, ok := a.known[h.Revision]; !ok {
			return true
		}
	}
	return false
}

func (a *app) handle(ctx context.Context, d gossip.Decision) {
	switch d.Kind {
	case rollout.DecideStart:
		a.mu.Lock()
		busy := a.running
		a.mu.Unlock()
		if busy != nil {
			// The protocol never asks for two at once (P3); refuse loudly.
			a.log.Error("refusing a second deployment while one runs", "running", busy.id, "asked", d.Deployment)
			a.fleet.Finished(d.Deployment, false, "refused: deployment "+busy.id+" is running on this host")
			return
		}
		dctx, cancel := context.WithCancelCause(ctx)
		rd := &runningDeployment{id: d.Deployment, cancel: cancel}
		if !d.FenceAt.IsZero() {
			rd.fence = proc.NewFence(d.FenceAt, a.fleet.Timing().FenceGrace())
			rd.timer = time.AfterFunc(time.Until(d.FenceAt), func() { cancel(errAborted) })
		}
		a.mu.Lock()
		a.running = rd
		a.mu.Unlock()
		a.wg.Go(func() { a.run(dctx, d.Decision, rd.fence) })
	case rollout.DecideAbort:
		a.mu.Lock()
		rd := a.running
		a.mu.Unlock()
		if rd != nil && rd.id == d.Deployment {
			a.log.Warn("aborting deployment", "deployment", d.Deployment, "reason", d.Reason)
			if rd.fence != nil {
				rd.fence.Set(time.Now()) // the lease is gone: stop with the fence's grace
			}
			rd.cancel(errAborted)
		}
	case rollout.DecideFence:
		a.mu.Lock()
		defer a.mu.Unlock()
		if rd := a.running; rd != nil && rd.id == d.Deployment && !d.FenceAt.IsZero() {
			if rd.fence != nil {
				rd.fence.Set(d.FenceAt) // tells the scripts' watchdogs too
			}
			if rd.timer != nil {
				rd.timer.Stop()
			}
			rd.timer = time.AfterFunc(time.Until(d.FenceAt), func() { rd.cancel(errAborted) })
		}
	}
}

// run executes one decided lifecycle and reports its end to the fleet.
func (a *app) run(ctx context.Context, d rollout.Decision, fence *proc.Fence) {
	log := a.log.With("deployment", d.Deployment)
	defer func() {
		a.mu.Lock()
		if rd := a.running; rd != nil {
			if rd.timer != nil {
				rd.timer.Stop()
			}
			rd.cancel(nil)
		}
		a.running = nil
		a.mu.Unlock()
	}()
	req, err := a.request(d)
	req.Fence = fence
	if err != nil {
		log.Error("cannot start deployment", "revision", d.Revision, "err", err)
		a.metrics.Deployments.WithLabelValues(a.cfg.Name, "failed").Inc()
		a.fleet.Finished(d.Deployment, false, err.Error())
		return
	}
	req.Progress = func(ev hooks.EventRecord) {
		switch ev.Status {
		case hooks.EventRunning:
			a.fleet.Progress(d.Deployment, ev.Name)
		case hooks.EventSucceeded, hooks.EventFailed:
			a.metrics.HookDuration.WithLabelValues(a.cfg.Name, ev.Name).Observe(ev.Finished.Sub(ev.Started).Seconds())
			if ev.Status == hooks.EventFailed {
				a.metrics.HookFailures.WithLabelValues(a.cfg.Name, ev.Name).Inc()
			}
		}
	}
	log.Info("starting deployment", "revision", req.Revision, "rollback", d.Rollback, "slotless", d.Slotless)
	rec, err := a.engine.Deploy(ctx, req)
	ok := err == nil
	result := "succeeded"
	if !ok {
		result = err.Error()
		if cause := context.Cause(ctx); errors.Is(cause, errAborted) {
			result = cause.Error() + ": " + result
		}
		result = fitResult(result, rollout.MaxString)
	}
	if rec != nil {
		a.metrics.DeploymentDuration.WithLabelValues(a.cfg.Name).Observe(rec.Duration(rec.Finished).Seconds())
	}
	a.metrics.Deployments.WithLabelValues(a.cfg.Name, map[bool]string{true: "succeeded", false: "failed"}[ok]).Inc()
	a.fleet.Finished(d.Deployment, ok, result)
}

// request builds the lifecycle request of a decision: the new revision from
// the source, or an earlier one (rollback, or a fresh host's catch-up to
// the group's last good revision) from the local archive or the source.
func (a *app) request(d rollout.Decision) (hooks.Request, error) {
	req := hooks.Request{
		ID: d.Deployment, Application: a.cfg.Name, Group: a.cfg.Group,
		RevisionID: d.Revision, Rollback: d.Rollback,
	}
	a.mu.Lock()
	rev, known := a.known[d.Revision]
	m := a.manif
	a.mu.Unlock()
	if m != nil {
		req.IgnoreApplicationStopFailures = m.Deployment.IgnoreApplicationStopFailures
	}
	if rec, err := a.store.FindRevision(a.cfg.Group, d.Revision); err == nil && (d.Rollback || !known) {
		dir := a.store.BundleDir(a.cfg.Group, rec.ID)
		req.Revision, req.BundleEnv = rec.Revision, rec.BundleEnv
		req.Fetch = func(ctx context.Context, dst string) error {
			return bundle.Unpack(ctx, dir, dst, bundle.DefaultLimits)
		}
		return req, nil
	}
	if !known {
		return req, fmt.Errorf("revision %s is neither what the source publishes now nor in this host's archive", d.Revision)
	}
	req.Revision, req.BundleEnv = rev.Label, rev.Env
	req.Fetch = func(ctx context.Context, dst string) error { return a.src.Fetch(ctx, rev, dst) }
	return req, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// fitResult makes a failure message fit a gossip row (max bytes): the
// first line (the error, cut if need be) and as many of the last lines (the
// end of the script's output) as fit, so that every host's status can show
// what failed and how.
func fitResult(s string, max int) string {
	if len(s) <= max {
		return s
	}
	first, rest, _ := strings.Cut(s, "\n")
	first = rollout.ClipString(first, max*3/5)
	lines := strings.Split(rest, "\n")
	var tail []string
	room := max - len(first)
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if l == "" {
			continue
		}
		if len(l)+1 > room {
			if len(tail) == 0 && room > 8 {
				tail = append(tail, rollout.ClipString(l, room-1))
			}
			break
		}
		tail = append(tail, l)
		room -= len(l) + 1
	}
	slices.Reverse(tail)
	if len(tail) == 0 {
		return rollout.ClipString(first, max)
	}
	return first + "\n" + strings.Join(tail, "\n")
}
