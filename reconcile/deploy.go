package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/hooks/proc"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// Engine runs one lifecycle on this host (hooks.Engine).
type Engine interface {
	Deploy(ctx context.Context, req hooks.Request) (*hooks.Record, error)
}

// Observer is told how lifecycles went, for metrics. Nil funcs are skipped.
type Observer struct {
	// Event: a lifecycle event ended (succeeded or failed).
	Event func(ev hooks.EventRecord)
	// Done: a deployment ended; rec is nil when it never started.
	Done func(rec *hooks.Record, ok bool)
}

// Deploy is the deployment side of an App: it runs the lifecycles the
// protocol decides, one at a time, and remembers the last revisions the
// source published so that a decision naming one can fetch it (older ones
// come from the archive of the host's deployments). The desired revision
// itself is the poller's (source.Status.Desired), the rollout's target the
// Node's: neither is copied here.
type Deploy struct {
	Source   source.Source
	Engine   Engine
	Store    *hooks.Store
	Observer Observer

	app *App // set by NewApp
	ctx context.Context

	mu sync.Mutex // guards the fields below
	// known maps the IDs of the last maxKnown revisions the source
	// published to what it said; order lists them, oldest first.
	known   map[string]source.Revision
	order   []string
	running *running // nil when idle
	started time.Time
	closing bool // Close waits for the running deployment: start no other

	wg sync.WaitGroup // a running deployment
}

type running struct {
	id     string
	cancel context.CancelCauseFunc
	// fence is the slot's fence (nil for a slotless deployment): the
	// lifecycle checks it before every event and its scripts' watchdogs
	// enforce it while the agent is stopped; timer cancels the
	// deployment's non-script work (download, install) when it passes.
	fence *proc.Fence
	timer *time.Timer
}

// ErrAborted is the cause of a deployment stopped by the rollout protocol.
var ErrAborted = errors.New("aborted by the rollout protocol: this host lost its slot (lease expired or partitioned)")

func (d *Deploy) start(ctx context.Context) {
	d.mu.Lock()
	d.ctx, d.started = ctx, time.Now()
	d.mu.Unlock()
}

// close makes every later start a no-op and waits for the running
// deployment.
func (d *Deploy) close() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *Deploy) log() *slog.Logger { return d.app.log }

// maxKnown bounds the revisions Deploy remembers: an agent that runs for
// months sees thousands.
const maxKnown = 8

// Desire records a revision the source made desired (App calls it with
// each one the poller finds, before the rollout hears of it).
func (d *Deploy) Desire(rev source.Revision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.known == nil {
		d.known = map[string]source.Revision{}
	}
	if _, ok := d.known[rev.ID]; ok {
		d.order = slices.DeleteFunc(d.order, func(id string) bool { return id == rev.ID })
	}
	d.known[rev.ID] = rev
	d.order = append(d.order, rev.ID)
	for len(d.order) > maxKnown {
		delete(d.known, d.order[0])
		d.order = d.order[1:]
	}
}

// Desired returns the revision the source publishes as desired (the
// poller's; ok false before the first poll that found one, and without a
// poller) and when the App started.
func (d *Deploy) Desired() (rev source.Revision, ok bool, since time.Time) {
	d.mu.Lock()
	since = d.started
	d.mu.Unlock()
	if d.app == nil || d.app.cfg.Poller == nil {
		return source.Revision{}, false, since
	}
	st := d.app.cfg.Poller.Status()
	return st.Desired, st.HasDesired, since
}

// Known returns what the source said of revision id, if it published it.
func (d *Deploy) Known(id string) (source.Revision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.known[id]
	return r, ok
}

// KnownRevisions lists the last revisions the source published.
func (d *Deploy) KnownRevisions() []source.Revision {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]source.Revision, 0, len(d.known))
	for _, r := range d.known {
		out = append(out, r)
	}
	return out
}

// Manifest is the desired revision's manifest (nil before one).
func (d *Deploy) Manifest() *manifest.Manifest {
	rev, _, _ := d.Desired()
	return rev.Manifest
}

// decide handles one decision on the loop's goroutine: it never blocks.
func (d *Deploy) decide(dec Decision) {
	a := d.app
	switch dec.Kind {
	case rollout.DecideStart:
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closing {
			// Stopping (a reload): the next loop of this application
			// finds the start in the stored row and records it as
			// interrupted.
			d.log().Warn("not starting a deployment: the application is stopping", "deployment", dec.Deployment)
			return
		}
		if busy := d.running; busy != nil {
			// The protocol never asks for two at once (P3); refuse loudly.
			d.log().Error("refusing a second deployment while one runs", "running", busy.id, "asked", dec.Deployment)
			a.Finished(dec.Deployment, false, "refused: deployment "+busy.id+" is running on this host")
			return
		}
		dctx, cancel := context.WithCancelCause(d.ctx)
		rd := &running{id: dec.Deployment, cancel: cancel}
		if !dec.FenceAt.IsZero() {
			rd.fence = proc.NewFence(dec.FenceAt, a.Timing().FenceGrace())
			rd.timer = time.AfterFunc(time.Until(dec.FenceAt), func() { cancel(ErrAborted) })
		}
		d.running = rd
		d.wg.Go(func() { d.run(dctx, dec.Decision, rd.fence) }) // under mu: close waits for it
	case rollout.DecideAbort:
		d.mu.Lock()
		rd := d.running
		d.mu.Unlock()
		if rd != nil && rd.id == dec.Deployment {
			d.log().Warn("aborting deployment", "deployment", dec.Deployment, "reason", dec.Reason)
			if rd.fence != nil {
				rd.fence.Set(time.Now()) // the lease is gone: stop with the fence's grace
			}
			rd.cancel(ErrAborted)
		}
	case rollout.DecideFence:
		d.mu.Lock()
		defer d.mu.Unlock()
		if rd := d.running; rd != nil && rd.id == dec.Deployment && !dec.FenceAt.IsZero() {
			if rd.fence != nil {
				rd.fence.Set(dec.FenceAt) // tells the scripts' watchdogs too
			}
			if rd.timer != nil {
				rd.timer.Stop()
			}
			rd.timer = time.AfterFunc(time.Until(dec.FenceAt), func() { rd.cancel(ErrAborted) })
		}
	}
}

// run executes one decided lifecycle and reports its end to the loop.
func (d *Deploy) run(ctx context.Context, dec rollout.Decision, fence *proc.Fence) {
	a := d.app
	log := d.log().With("deployment", dec.Deployment)
	defer func() {
		d.mu.Lock()
		if rd := d.running; rd != nil {
			if rd.timer != nil {
				rd.timer.Stop()
			}
			rd.cancel(nil)
		}
		d.running = nil
		d.mu.Unlock()
	}()
	obs := d.Observer
	req, err := d.request(dec)
	req.Fence = fence
	if err != nil {
		log.Error("cannot start deployment", "revision", dec.Revision, "err", err)
		if obs.Done != nil {
			obs.Done(nil, false)
		}
		a.Finished(dec.Deployment, false, err.Error())
		return
	}
	req.Progress = func(ev hooks.EventRecord) {
		switch ev.Status {
		case hooks.EventRunning:
			a.Progress(dec.Deployment, ev.Name)
		case hooks.EventSucceeded, hooks.EventFailed:
			if obs.Event != nil {
				obs.Event(ev)
			}
		}
	}
	log.Info("starting deployment", "revision", req.Revision, "rollback", dec.Rollback, "slotless", dec.Slotless)
	rec, err := d.Engine.Deploy(ctx, req)
	ok := err == nil
	result := "succeeded"
	if !ok {
		result = err.Error()
		if cause := context.Cause(ctx); errors.Is(cause, ErrAborted) {
			result = cause.Error() + ": " + result
		}
		result = FitResult(result, rollout.MaxString)
	}
	if obs.Done != nil {
		obs.Done(rec, ok)
	}
	a.Finished(dec.Deployment, ok, result)
}

// request builds the lifecycle request of a decision: the new revision from
// the source, or an earlier one (rollback, or a fresh host's catch-up to
// the group's last good revision) from the local archive or the source.
func (d *Deploy) request(dec rollout.Decision) (hooks.Request, error) {
	cfg := &d.app.cfg
	req := hooks.Request{
		ID: dec.Deployment, Application: cfg.Name, Group: cfg.Group,
		RevisionID: dec.Revision, Rollback: dec.Rollback,
	}
	d.mu.Lock()
	rev, known := d.known[dec.Revision]
	d.mu.Unlock()
	if m := d.Manifest(); m != nil {
		req.IgnoreApplicationStopFailures = m.Deployment.IgnoreApplicationStopFailures
	}
	if rec, err := d.Store.FindRevision(cfg.Group, dec.Revision); err == nil && (dec.Rollback || !known) {
		dir := d.Store.BundleDir(cfg.Group, rec.ID)
		req.Revision, req.BundleEnv = rec.Revision, rec.BundleEnv
		req.Fetch = func(ctx context.Context, dst string) error {
			return bundle.Unpack(ctx, dir, dst, bundle.DefaultLimits)
		}
		return req, nil
	}
	if !known {
		return req, fmt.Errorf("revision %s is neither what the source publishes now nor in this host's archive", dec.Revision)
	}
	req.Revision, req.BundleEnv = rev.Label, rev.Env
	req.Fetch = func(ctx context.Context, dst string) error { return d.Source.Fetch(ctx, rev, dst) }
	return req, nil
}

// FitResult makes a failure message fit a gossip row (max bytes): the
// first line (the error, cut if need be) and as many of the last lines (the
// end of the script's output) as fit, so that every host's status can show
// what failed and how.
func FitResult(s string, max int) string {
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
