package gossip

import (
	"context"
	"sync"
	"time"

	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// AppConfig is what these tests register an application with: the
// reconcile loop the daemon runs (reconcile.App) over this package's
// Endpoint, without a poller or a deployer — the tests' fake hook runners
// read the decisions from a channel.
type AppConfig struct {
	Name, Group string
	State       rollout.Persisted
	Persist     func(rollout.Persisted) error
	Timing      *rollout.Timing
	GroupSize   int
	// GossipOnly turns off the direct send of own rows (LoopConfig.Eager).
	GossipOnly      bool
	BootstrapExpect int
}

// Decision is what the fake runners get.
type Decision = reconcile.Decision

// loopApp is a reconcile.App on an Endpoint with its decisions on a
// channel: a queue without bound in front of it (the loop never waits).
type loopApp struct {
	*reconcile.App
	ep *Endpoint

	mu   sync.Mutex
	q    []Decision
	kick chan struct{}
	out  chan Decision
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// App registers an application and starts its loop.
func (c *Cluster) App(cfg AppConfig) (*loopApp, error) {
	ta := &loopApp{kick: make(chan struct{}, 1), out: make(chan Decision), done: make(chan struct{})}
	ta.App = reconcile.NewApp(reconcile.AppConfig{
		Name: cfg.Name, Group: cfg.Group, Host: c.cfg.NodeName, State: cfg.State, Persist: cfg.Persist,
		BootstrapExpect: cfg.BootstrapExpect, Eager: !cfg.GossipOnly, Dropped: c.cfg.Stats.Dropped,
		ViewEvery: min(c.cfg.Params.GossipInterval, 100*time.Millisecond), Log: c.log,
		OnDecision: ta.deliver,
	})
	ep, err := c.Endpoint(EndpointConfig{App: cfg.Name, Group: cfg.Group, Receiver: ta.App, Timing: cfg.Timing, GroupSize: cfg.GroupSize})
	if err != nil {
		return nil, err
	}
	ta.ep = ep
	ta.App.Start(context.Background(), context.Background(), ep)
	ta.wg.Go(ta.pump)
	return ta, nil
}

func (ta *loopApp) deliver(d Decision) {
	ta.mu.Lock()
	ta.q = append(ta.q, d)
	ta.mu.Unlock()
	select {
	case ta.kick <- struct{}{}:
	default:
	}
}

func (ta *loopApp) pump() {
	for {
		ta.mu.Lock()
		if len(ta.q) == 0 {
			ta.mu.Unlock()
			select {
			case <-ta.kick:
				continue
			case <-ta.done:
				return
			}
		}
		d := ta.q[0]
		ta.q = ta.q[1:]
		ta.mu.Unlock()
		select {
		case ta.out <- d:
		case <-ta.done:
			return
		}
	}
}

// Decisions delivers what the protocol decided, in order.
func (ta *loopApp) Decisions() <-chan Decision { return ta.out }

// Close stops the loop and unregisters the application.
func (ta *loopApp) Close() {
	ta.App.Close()
	ta.ep.Close()
	ta.once.Do(func() { close(ta.done) })
	ta.wg.Wait()
}
