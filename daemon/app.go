package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/drover-dev/drover/gossip"
	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// fleet is what status, gates and the API read and ask of one
// application's reconcile loop (reconcile.App): its snapshot of the
// fleet's rows, roster and flags, and the operator's requests.
type fleet interface {
	SetPaused(paused bool)
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
	// StoreError: why the rollout state cannot be stored, since when.
	StoreError() (string, time.Time)
}

var (
	_ fleet            = (*reconcile.App)(nil)
	_ reconcile.Link   = (*gossip.Endpoint)(nil)
	_ gossip.Receiver  = (*reconcile.App)(nil)
	_ reconcile.Engine = (*hooks.Engine)(nil)
)

// app is one application on this host: its reconcile loop (package
// reconcile: the poller, the rollout Node, the deployments), the gossip
// endpoint it talks to its group through, and what the daemon adds: the
// health gates' sampling, status, metrics.
type app struct {
	cfg     AppConfig
	host    string
	log     *slog.Logger
	metrics *Metrics
	poller  *source.Poller
	rc      *reconcile.App
	fleet   fleet             // rc, or a stub in tests of status
	deploy  *reconcile.Deploy // rc's deployment side: what the source published
	ep      *gossip.Endpoint
	store   *hooks.Store

	mu     sync.Mutex        // guards labels
	labels map[string]string // revision ID → label found in the records (archivedLabel)

	cancel context.CancelFunc
	wg     sync.WaitGroup // the gate loop
}

// start runs the app until stop. Deployments run under deployCtx, which
// outlives ctx on a reload, so that a reload never kills a hook.
func (a *app) start(ctx, deployCtx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.rc.Start(ctx, deployCtx, a.ep)
	a.wg.Go(func() { a.gateLoop(ctx, &gate.Evaluator{}) })
}

// stop stops polling and gate sampling, waits for a running deployment
// (its end is still stored and sent), stops the loop and unregisters the
// application from the cluster.
func (a *app) stop() {
	a.cancel()
	a.rc.Close()
	a.wg.Wait()
	a.ep.Close()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
