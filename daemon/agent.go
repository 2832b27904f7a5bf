// Package daemon is the drover agent: it builds the dependencies once
// (logger, metrics registry, state store, hook runner, lifecycle engine,
// gossip cluster), runs one reconcile loop per application, serves the
// local API and the metrics listener, reloads its configuration
// transactionally, and tells systemd how it is doing.
package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/gossip"
	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/hooks/proc"
	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/bundlecheck"
)

// joinWait bounds how long Start waits for a seed before READY (the
// default of Options.JoinWait).
const joinWait = 60 * time.Second

// Where the agent is with joining the cluster, for its STATUS lines.
const (
	joinWaiting int32 = iota // Start waits for a seed; READY is not sent yet
	joinJoined               // a seed answered (or this host is its own seed)
	joinLate                 // no seed answered within the join wait; still trying
)

// Options are what the command line gives the agent.
type Options struct {
	ConfigPath string
	// Root overrides node.root (the --root flag).
	Root    string
	Version string
	Commit  string
	Logger  *slog.Logger
	// Notifier reports to systemd; NewSystemdNotifier when nil.
	Notifier Notifier
	// Params are memberlist's timing parameters; rollout.LANParams when nil.
	// Tests and the demo use short ones.
	Params *rollout.MemberlistParams
	// ShutdownGrace is how long Close lets running hooks finish before it
	// kills them (default 60s).
	ShutdownGrace time.Duration
	// HookEnv is added to the environment of every hook script.
	HookEnv []string
	// JoinWait bounds how long Start waits for a seed before it tells
	// systemd READY anyway (default 60s).
	JoinWait time.Duration
}

// Agent is one running drover agent. Build it with New, then Start, then
// Close.
type Agent struct {
	opts     Options
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *Metrics
	notifier Notifier
	store    *hooks.Store
	runner   proc.Runner
	engine   *hooks.Engine
	cluster  *gossip.Cluster
	params   rollout.MemberlistParams // memberlist timing in force
	host     string
	joined   atomic.Int32 // joinWaiting, joinJoined or joinLate

	// notifyMu orders READY and RELOADING: no READY before the join (or
	// the join wait) is over, and a reload's RELOADING and READY only
	// after that first READY.
	notifyMu sync.Mutex
	ready    bool // guarded by notifyMu: the first READY was sent

	// reloadMu makes reloads run one at a time: SIGHUP and the file
	// watcher may ask at once, and two reloads must not both start (or
	// stop) the same application.
	reloadMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	cfg       *Config
	apps      map[string]*appHandle
	configErr string
	// startErrs says, per application of the configuration in force, why
	// its loop did not start at the last reload applied (the next reload
	// tries again).
	startErrs map[string]string

	api, metricsSrv *server
	loopCtx         context.Context    // app loops; cancelled first on Close
	loopCancel      context.CancelFunc //
	deployCtx       context.Context    // running deployments; cancelled when the grace is over
	deployCancel    context.CancelFunc //
	wg              sync.WaitGroup     // agent-level goroutines
	closeOnce       sync.Once
}

// appHandle is one application's loop (app.stop stops it).
type appHandle struct {
	app *app
}

// New loads the configuration and builds every dependency; nothing runs
// until Start. A bad configuration fails here, before anything starts.
func New(ctx context.Context, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 60 * time.Second
	}
	if opts.JoinWait <= 0 {
		opts.JoinWait = joinWait
	}
	log := opts.Logger
	cfg, err := LoadConfig(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	if opts.Root != "" {
		cfg.Node.Root = opts.Root
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if opts.Notifier == nil {
		// Rate-limited: it fires from loops (the status loop, the READY
		// after the join, every reload), concurrently.
		limit := &rateLimit{every: time.Minute}
		opts.Notifier = NewSystemdNotifier(func(err error) {
			if limit.allow(time.Now()) {
				log.Warn("systemd notification failed", "err", err)
			}
		})
	}
	a := &Agent{opts: opts, log: log, cfg: cfg, notifier: opts.Notifier, apps: map[string]*appHandle{}, startErrs: map[string]string{}, host: cfg.Node.Name}
	a.reg = prometheus.NewRegistry()
	if a.metrics, err = NewMetrics(a.reg, opts.Version, opts.Commit, goVersion()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := a.reg.Register(NewStatusCollector(a.Status)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if a.store, err = hooks.OpenStore(cfg.Node.StateDir); err != nil {
		return nil, err
	}
	recovered, err := a.store.Recover(time.Now())
	if err != nil {
		return nil, fmt.Errorf("recover state: %w", err)
	}
	for _, r := range recovered {
		log.Warn("deployment was interrupted by an agent stop; recorded as failed",
			"app", r.Application, "group", r.Group, "deployment", r.ID, "event", r.FailedEvent)
	}
	if a.runner, err = proc.New(ctx, cfg.Systemd, log); err != nil {
		return nil, fmt.Errorf("hook runner (systemd: %s): %w", cfg.Systemd, err)
	}
	var baseEnv []string
	if len(opts.HookEnv) > 0 {
		baseEnv = append(hooks.AgentEnv(os.Environ()), opts.HookEnv...)
	}
	if a.engine, err = hooks.NewEngine(hooks.Config{
		Store: a.store, Runner: a.runner, Logger: log, Root: cfg.Node.Root, Host: cfg.Node.Name, BaseEnv: baseEnv,
	}); err != nil {
		a.runner.Close()
		return nil, err
	}
	keys, err := loadKeys(cfg.Cluster.EncryptKeyFile)
	if err != nil {
		a.runner.Close()
		return nil, err
	}
	params := ProfileParams(cfg.Cluster.Profile)
	if opts.Params != nil {
		params = *opts.Params
	}
	a.params = params
	if a.cluster, err = gossip.New(gossip.Config{
		NodeName: cfg.Node.Name, Bind: cfg.Cluster.Bind, Advertise: cfg.Cluster.Advertise,
		Join: cfg.Cluster.Join, Keys: keys, Groups: cfg.Node.Groups, Params: params, Logger: log.With("component", "gossip"),
		PeersFile: filepath.Join(cfg.Node.StateDir, "gossip-peers.json"),
		Stats: gossip.Stats{
			Dropped: a.dropped,
			Bytes:   func(dir string, n int) { a.metrics.GossipBytes.WithLabelValues(dir).Add(float64(n)) },
		},
	}); err != nil {
		a.runner.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return a, nil
}

// dropped counts a gossip or protocol message dropped, by reason.
func (a *Agent) dropped(reason string) {
	a.metrics.GossipMessagesDropped.WithLabelValues(reason).Inc()
}

// rateLimit allows one event per interval; it is safe for concurrent use.
type rateLimit struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time // guarded by mu: when the last event was allowed
}

func (r *rateLimit) allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return false
	}
	r.last = now
	return true
}

// ProfileParams maps cluster.profile to memberlist's timing, from which
// every timeout of the rollout protocol derives (reconcile/rollout/PROTOCOL.md §6).
func ProfileParams(profile string) rollout.MemberlistParams {
	switch profile {
	case "wan": // memberlist.DefaultWANConfig
		return rollout.MemberlistParams{ProbeInterval: 5 * time.Second, ProbeTimeout: 3 * time.Second, SuspicionMult: 6, GossipInterval: 500 * time.Millisecond}
	case "local": // one machine: loopback has no loss and microsecond latency
		return rollout.MemberlistParams{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond, SuspicionMult: 3, GossipInterval: 50 * time.Millisecond}
	}
	return rollout.LANParams
}

// loadKeys reads the gossip keyring: one base64 key per line, the first
// one encrypts, all decrypt (rotation: add the new key second on every
// host, then move it first, then remove the old one).
func loadKeys(path string) ([][]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.encrypt_key_file: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not base64 (create a key with `drover keygen`)", path, i+1)
		}
		if len(k) != 16 && len(k) != 24 && len(k) != 32 {
			return nil, fmt.Errorf("%s:%d: key is %d bytes, want 16, 24 or 32", path, i+1, len(k))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("cluster.encrypt_key_file %s holds no key", path)
	}
	return keys, nil
}

// MetricsAddr is the address of the metrics listener ("" when off).
func (a *Agent) MetricsAddr() string {
	if a.metricsSrv == nil {
		return ""
	}
	return a.metricsSrv.ln.Addr().String()
}

// ClusterAddr is the gossip address the agent listens on.
func (a *Agent) ClusterAddr() string { return a.cluster.LocalAddr() }

// Registry is the agent's metrics registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Start joins the cluster, opens the listeners, starts every application's
// loop, and tells systemd READY once state is loaded and the cluster joined.
func (a *Agent) Start(ctx context.Context) error {
	a.loopCtx, a.loopCancel = context.WithCancel(context.Background())
	a.deployCtx, a.deployCancel = context.WithCancel(context.Background())
	if err := a.cluster.Start(ctx); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cfg := a.config()
	ln, err := listenUnix(cfg.API.Socket)
	if err != nil {
		return err
	}
	a.api = serve(ln, mutatingHandler(a), a.log)
	if cfg.API.MetricsListen != "" {
		mln, err := listenTCP(cfg.API.MetricsListen)
		if err != nil {
			return err
		}
		a.metricsSrv = serve(mln, metricsHandler(a, a.reg), a.log)
	}
	a.mu.Lock()
	for _, ac := range cfg.Applications {
		if ac.Active {
			if err := a.startAppLocked(ac); err != nil {
				a.mu.Unlock()
				return err
			}
		}
	}
	a.mu.Unlock()
	a.log.Info("agent started", "node", cfg.Node.Name, "groups", cfg.Node.Groups, "cluster", a.cluster.LocalAddr(),
		"api", cfg.API.Socket, "metrics", cfg.API.MetricsListen, "apps", len(cfg.Applications))
	a.wg.Go(func() {
		// READY once joined; a fleet whose seeds are all down still gets a
		// serving agent after a bound (systemd would kill a start that
		// never ends), and joining goes on in the background.
		jctx, cancel := context.WithTimeout(a.loopCtx, a.opts.JoinWait)
		err := a.cluster.WaitJoined(jctx)
		cancel()
		if a.loopCtx.Err() != nil {
			return
		}
		if err != nil {
			a.joined.Store(joinLate)
			a.log.Warn("no seed answered yet; serving, and still trying to join", "seeds", cfg.Cluster.Join, "waited", a.opts.JoinWait)
		} else {
			a.joined.Store(joinJoined)
			a.log.Info("cluster joined; ready", "members", len(a.cluster.Members()))
		}
		a.notifyMu.Lock()
		a.ready = true
		a.notifier.Ready(a.statusLine()) // after the join, and after any reload so far
		a.notifyMu.Unlock()
		if err != nil && a.cluster.WaitJoined(a.loopCtx) == nil {
			a.joined.Store(joinJoined)
			a.log.Info("cluster joined", "members", len(a.cluster.Members()))
			// statusLoop sends the STATUS line without "not joined".
		}
	})
	a.wg.Go(a.statusLoop)
	a.wg.Go(func() {
		watchFile(a.loopCtx, a.opts.ConfigPath, 30*time.Second, a.log, func() {
			a.log.Info("configuration file changed; reloading", "path", a.opts.ConfigPath)
			_ = a.Reload() // Reload logs, counts and shows its own result
		})
	})
	return nil
}

// config returns the configuration in force.
func (a *Agent) config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) startAppLocked(ac AppConfig) error {
	cfg := a.cfg
	log := a.log.With("app", ac.Name, "group", ac.Group)
	src, err := newSource(a.loopCtx, ac, cfg.Node.StateDir, log)
	if err != nil {
		return fmt.Errorf("application %s: %w", ac.Name, err)
	}
	statePath := filepath.Join(cfg.Node.StateDir, "rollout", ac.Name+".json")
	st, err := loadRolloutState(statePath)
	if err != nil {
		return fmt.Errorf("application %s: %w", ac.Name, err)
	}
	poller := source.NewPoller(src, source.PollerConfig{
		App: ac.Name, Interval: time.Duration(ac.PollInterval), Logger: log, Rand: rand.Float64,
		// Refuse a statically invalid bundle before any slot is claimed.
		Check: bundlecheck.New(src, filepath.Join(cfg.Node.StateDir, "sources", ac.Name), log),
	})
	m := a.metrics
	deploy := &reconcile.Deploy{Source: src, Engine: a.engine, Store: a.store, Observer: reconcile.Observer{
		Event: func(ev hooks.EventRecord) {
			m.HookDuration.WithLabelValues(ac.Name, ev.Name).Observe(ev.Finished.Sub(ev.Started).Seconds())
			if ev.Status == hooks.EventFailed {
				m.HookFailures.WithLabelValues(ac.Name, ev.Name).Inc()
			}
		},
		Done: func(rec *hooks.Record, ok bool) {
			if rec != nil {
				m.DeploymentDuration.WithLabelValues(ac.Name).Observe(rec.Duration(rec.Finished).Seconds())
			}
			m.Deployments.WithLabelValues(ac.Name, map[bool]string{true: "succeeded", false: "failed"}[ok]).Inc()
		},
	}}
	rc := reconcile.NewApp(reconcile.AppConfig{
		Name: ac.Name, Group: ac.Group, Host: cfg.Node.Name, State: st,
		Persist:         func(p rollout.Persisted) error { return saveRolloutState(statePath, p) },
		BootstrapExpect: cfg.Cluster.BootstrapExpect, Nonce: a.store.ID(),
		Eager: true, Dropped: a.dropped, ViewEvery: min(a.params.GossipInterval, 100*time.Millisecond), Log: log,
		Poller: poller, Deploy: deploy,
	})
	ep, err := a.cluster.Endpoint(gossip.EndpointConfig{App: ac.Name, Group: ac.Group, Receiver: rc})
	if err != nil {
		return fmt.Errorf("application %s: %w", ac.Name, err)
	}
	ap := &app{
		cfg: ac, host: cfg.Node.Name, log: log, metrics: a.metrics, poller: poller,
		rc: rc, fleet: rc, deploy: deploy, ep: ep, store: a.store,
	}
	ap.start(a.loopCtx, a.deployCtx)
	a.apps[ac.Name] = &appHandle{app: ap}
	return nil
}

// stopApp stops an application's loops, waits for its running deployment,
// and unregisters it from the cluster.
func (a *Agent) stopApp(h *appHandle) { h.app.stop() }

func loadRolloutState(path string) (rollout.Persisted, error) {
	var st rollout.Persisted
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read rollout state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read rollout state %s: %w", path, err)
	}
	return st, nil
}

func saveRolloutState(path string, st rollout.Persisted) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save rollout state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save rollout state: %w", err)
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// Reload re-reads the configuration file. The new configuration is
// validated whole and swapped in, or the old one stays and the error is
// logged and shown in status. Applications added, removed or changed are
// started, stopped or restarted (after their running deployment); a file
// that also changes node, cluster, api or systemd is rejected whole, since
// those need a restart of the agent.
//
// Reloads run one at a time. Each has one of three results, logged, counted
// in drover_config_reloads_total{result} and shown in status: applied;
// rejected (the configuration error, Status.ConfigError); or partial: the
// configuration is in force but an application could not start (the
// returned error, and AppStatus.StartError of that application).
func (a *Agent) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	// systemd hears RELOADING, then READY with what is true after the
	// reload. Before the first READY (during the join wait) it hears
	// neither: that READY comes once joined, and tells the state then.
	a.notifyMu.Lock()
	reloading := a.ready
	if reloading {
		a.notifier.Reloading()
	}
	a.notifyMu.Unlock()
	defer func() {
		if reloading {
			a.notifyMu.Lock()
			a.notifier.Ready(a.statusLine())
			a.notifyMu.Unlock()
		}
	}()
	next, err := LoadConfig(a.opts.ConfigPath)
	if err == nil {
		if a.opts.Root != "" {
			next.Node.Root = a.opts.Root
		}
		cur := a.config()
		if !reflect.DeepEqual(cur.Node, next.Node) || !reflect.DeepEqual(cur.Cluster, next.Cluster) ||
			cur.API != next.API || cur.Systemd != next.Systemd {
			err = fmt.Errorf("%s: node, cluster, api and systemd settings change only with a restart of the agent (systemctl restart drover); nothing was reloaded", a.opts.ConfigPath)
		}
	}
	if err != nil {
		a.mu.Lock()
		a.configErr = err.Error()
		a.mu.Unlock()
		a.metrics.ConfigReloads.WithLabelValues("rejected").Inc()
		a.metrics.ConfigLastReloadOK.Set(0)
		a.log.Error("configuration reload rejected; the previous configuration stays in force", "path", a.opts.ConfigPath, "err", err)
		return err
	}
	for _, w := range next.Warnings {
		a.log.Warn("config: " + w)
	}
	a.mu.Lock()
	a.cfg = next
	a.configErr = ""
	var stop []*appHandle
	var start []AppConfig
	want := map[string]AppConfig{}
	for _, ac := range next.Applications {
		if ac.Active {
			want[ac.Name] = ac
		}
	}
	for name, h := range a.apps {
		if ac, ok := want[name]; !ok || !reflect.DeepEqual(ac, h.app.cfg) {
			stop = append(stop, h)
			delete(a.apps, name)
		}
	}
	for name, ac := range want {
		if _, ok := a.apps[name]; !ok {
			start = append(start, ac)
		}
	}
	a.mu.Unlock()
	for _, h := range stop {
		a.stopApp(h)
	}
	sort.Slice(start, func(i, j int) bool { return start[i].Name < start[j].Name })
	a.mu.Lock()
	var errs []error
	var failed []string
	clear(a.startErrs)
	for _, ac := range start {
		if err := a.startAppLocked(ac); err != nil {
			errs = append(errs, err)
			failed = append(failed, ac.Name)
			a.startErrs[ac.Name] = err.Error()
		}
	}
	a.mu.Unlock()
	if len(errs) > 0 {
		err := errors.Join(errs...)
		a.metrics.ConfigReloads.WithLabelValues("partial").Inc()
		a.metrics.ConfigLastReloadOK.Set(0)
		a.log.Error("configuration reloaded, but applications failed to start; they are retried at the next reload",
			"path", a.opts.ConfigPath, "stopped", len(stop), "started", len(start)-len(failed), "failed", failed, "err", err)
		return err
	}
	a.metrics.ConfigReloads.WithLabelValues("applied").Inc()
	a.metrics.ConfigLastReloadOK.Set(1)
	a.log.Info("configuration reloaded", "path", a.opts.ConfigPath, "stopped", len(stop), "started", len(start))
	return nil
}

// Close stops the agent: no new deployments, running hooks get
// ShutdownGrace (or until ctx ends, the second signal) to finish and are
// then killed and recorded as failed, then the agent leaves the cluster.
// Processes hooks left running (the applications) are not touched.
func (a *Agent) Close(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		a.notifier.Stopping()
		if a.loopCancel == nil { // never started
			a.runner.Close()
			return
		}
		a.loopCancel()
		grace := time.NewTimer(a.opts.ShutdownGrace)
		defer grace.Stop()
		done := make(chan struct{})
		a.mu.Lock()
		apps := make([]*appHandle, 0, len(a.apps))
		for _, h := range a.apps {
			apps = append(apps, h)
		}
		a.mu.Unlock()
		go func() {
			// Each app waits for its running deployment, whose end is
			// still stored and sent, then stops.
			var wg sync.WaitGroup
			for _, h := range apps {
				wg.Go(h.app.stop)
			}
			wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-grace.C:
			a.log.Warn("shutdown grace over; stopping running hooks")
		case <-ctx.Done():
			a.log.Warn("forced shutdown; stopping running hooks")
		}
		a.deployCancel()
		<-done
		a.wg.Wait()
		err = a.cluster.Close()
		if a.api != nil {
			a.api.close()
		}
		if a.metricsSrv != nil {
			a.metricsSrv.close()
		}
		a.runner.Close()
	})
	return err
}

// statusLoop sends systemd a STATUS line when it changes and pings the
// watchdog from the agent's own loop.
func (a *Agent) statusLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var wd <-chan time.Time
	if iv := a.notifier.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		wd = t.C
	}
	last := ""
	for {
		select {
		case <-a.loopCtx.Done():
			return
		case <-wd:
			a.notifier.Watchdog()
		case <-tick.C:
			if s := a.statusLine(); s != last {
				a.notifier.Status(s)
				last = s
			}
		}
	}
}

// statusLine is what `systemctl status drover` shows: each app's revision
// and phase on this host, and whether the cluster is joined yet.
func (a *Agent) statusLine() string {
	prefix := ""
	switch a.joined.Load() {
	case joinWaiting:
		prefix = "joining the cluster; "
	case joinLate:
		prefix = "not joined: no seed answered yet, still trying; "
	}
	return prefix + a.appsLine()
}

// appsLine is each app's revision and phase on this host.
func (a *Agent) appsLine() string {
	st := a.Status()
	var parts []string
	for _, ap := range st.Apps {
		rev, phase := "-", "idle"
		for _, h := range ap.Hosts {
			if h.Host == st.Host {
				rev, phase = dash(h.Revision), h.Phase
				if h.Event != "" {
					phase += " " + h.Event
				}
				if ap.Roster.Epoch == 0 && ap.Roster.Why != "" {
					phase += " (no roster)"
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", ap.Name, rev, phase))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("no applications; %d members", len(st.Members))
	}
	return strings.Join(parts, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Status is the fleet view served by the API and `drover status`.
func (a *Agent) Status() Status {
	a.mu.Lock()
	cfg, cerr := a.cfg, a.configErr
	startErrs := maps.Clone(a.startErrs)
	apps := make([]*app, 0, len(a.apps))
	for _, h := range a.apps {
		apps = append(apps, h.app)
	}
	a.mu.Unlock()
	st := Status{Host: cfg.Node.Name, Version: a.opts.Version, Time: time.Now(), ConfigPath: cfg.Path, ConfigError: cerr}
	for _, m := range a.cluster.Members() {
		st.Members = append(st.Members, Member{Name: m.Name, Addr: m.Addr, State: m.State, Groups: m.Groups})
	}
	running := map[string]bool{}
	for _, ap := range apps {
		as := ap.status(st.Time, cfg.Cluster.BootstrapExpect)
		st.Apps = append(st.Apps, as)
		running[ap.cfg.Name] = true
	}
	for _, ac := range cfg.Applications {
		if !running[ac.Name] {
			st.Apps = append(st.Apps, AppStatus{Name: ac.Name, Group: ac.Group, Active: ac.Active, Source: ac.Source.Kind(), StartError: startErrs[ac.Name]})
		}
	}
	sort.Slice(st.Apps, func(i, j int) bool { return st.Apps[i].Name < st.Apps[j].Name })
	return st
}

// SetPaused pauses or resumes an application fleet-wide.
func (a *Agent) SetPaused(_ context.Context, name string, paused bool) error {
	a.mu.Lock()
	h, ok := a.apps[name]
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("application %q is not deployed by this host: %w", name, ErrNotFound)
	}
	h.app.fleet.SetPaused(paused)
	a.log.Info("rollout flag set fleet-wide", "app", name, "paused", paused)
	return nil
}

// DeploymentRecord returns a deployment's record from the local store.
func (a *Agent) DeploymentRecord(group, id string) (any, error) {
	r, err := a.store.Get(group, id)
	if errors.Is(err, hooks.ErrNoDeployment) {
		return nil, fmt.Errorf("deployment %s of group %s: %w", id, group, ErrNotFound)
	}
	return r, err
}

// DeploymentLog opens a deployment's hook log.
func (a *Agent) DeploymentLog(group, id string) (io.ReadCloser, error) {
	if _, err := a.store.Get(group, id); err != nil {
		if errors.Is(err, hooks.ErrNoDeployment) {
			return nil, fmt.Errorf("deployment %s of group %s: %w", id, group, ErrNotFound)
		}
		return nil, err
	}
	f, err := os.Open(a.store.LogPath(group, id))
	if errors.Is(err, os.ErrNotExist) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	return f, err
}
