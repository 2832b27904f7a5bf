package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/syncbuf"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func (f *agentFixture) writeConfig(t *testing.T, extra string) {
	t.Helper()
	if err := os.WriteFile(f.cfgPath, []byte(f.config(extra)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// otherApp is a second application for the fixture's config, with its own
// directory source.
func (f *agentFixture) otherApp(t *testing.T, poll string) string {
	t.Helper()
	other := filepath.Join(f.dir, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	return "  - name: other\n    group: g\n    poll_interval: " + poll + "\n    source: {dir: " + other + "}\n"
}

// running names the applications whose loops run, sorted.
func running(a *Agent) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for name := range a.apps {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// recNotifier records what the agent tells systemd; it never blocks.
type recNotifier struct {
	mu   sync.Mutex
	msgs []string
}

func (n *recNotifier) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, s)
}

func (n *recNotifier) Ready(status string)             { n.add("READY=1\nSTATUS=" + status) }
func (n *recNotifier) Reloading()                      { n.add("RELOADING=1") }
func (n *recNotifier) Status(status string)            { n.add("STATUS=" + status) }
func (n *recNotifier) Watchdog()                       {}
func (n *recNotifier) Stopping()                       { n.add("STOPPING=1") }
func (n *recNotifier) WatchdogInterval() time.Duration { return 0 }

func (n *recNotifier) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.msgs)
}

// TestReloadConcurrent drives reloads at once, as SIGHUP and the file
// watcher can: they run one at a time, so none of them starts an
// application another one is starting (or stopping), and each succeeds.
func TestReloadConcurrent(t *testing.T) {
	f := newAgentFixtureWith(t, func(o *Options) { o.Notifier = &recNotifier{} })
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	reloadAll := func(what string, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range errs {
			wg.Go(func() { errs[i] = f.agent.Reload() })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: reload %d of %d: %v", what, i+1, n, err)
			}
		}
	}
	// Each round changes both applications, so every reload stops their
	// loops and starts them again.
	for round, poll := range []string{"2s", "3s"} {
		cfg := strings.Replace(f.config(f.otherApp(t, poll)), "poll_interval: 1s", "poll_interval: "+poll, 1)
		if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		reloadAll(fmt.Sprintf("round %d", round), 6)
		if got := running(f.agent); got != "hello,other" {
			t.Fatalf("round %d: running %q, want hello,other", round, got)
		}
		if st := f.agent.Status(); st.ConfigError != "" {
			t.Fatalf("round %d: config error %q", round, st.ConfigError)
		}
	}
	f.writeConfig(t, "")
	reloadAll("removing other", 4)
	if got := running(f.agent); got != "hello" {
		t.Fatalf("running %q after removing other, want hello", got)
	}
	// The loops that run are the agent's own: hello still deploys.
	f.release(t, "r2")
	waitStatus(t, f.agent, "r2 deployed", onRevision("r2"))
}

// TestReloadAppStartFailure: a reload whose configuration is valid but one
// of whose applications cannot start is applied, and says so truthfully in
// the log, the metric and status; the next reload retries the application.
func TestReloadAppStartFailure(t *testing.T) {
	var logs syncbuf.Buffer
	f := newAgentFixtureWith(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.Notifier = &recNotifier{}
	})
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	state := filepath.Join(f.dir, "state", "rollout", "other.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.writeConfig(t, f.otherApp(t, "1s"))
	err := f.agent.Reload()
	if err == nil || !strings.Contains(err.Error(), "application other") {
		t.Fatalf("reload = %v, want the start failure of application other", err)
	}
	st := f.agent.Status()
	if st.ConfigError != "" {
		t.Errorf("config error %q: the configuration was valid and is in force", st.ConfigError)
	}
	var other *AppStatus
	for i := range st.Apps {
		if st.Apps[i].Name == "other" {
			other = &st.Apps[i]
		}
	}
	if other == nil || !strings.Contains(other.StartError, "read rollout state") {
		t.Fatalf("status of other = %+v, want its start error", other)
	}
	m := f.agent.metrics
	if got := value(t, m.ConfigReloads.WithLabelValues("partial")); got != 1 {
		t.Errorf(`drover_config_reloads_total{result="partial"} = %v, want 1`, got)
	}
	if got := value(t, m.ConfigReloads.WithLabelValues("applied")); got != 0 {
		t.Errorf(`drover_config_reloads_total{result="applied"} = %v, want 0`, got)
	}
	if got := value(t, m.ConfigLastReloadOK); got != 0 {
		t.Errorf("drover_config_last_reload_successful = %v, want 0", got)
	}
	out := logs.String()
	if strings.Contains(out, `msg="configuration reloaded"`) {
		t.Errorf("a reload with an application that did not start logged plain success:\n%s", out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "other") {
		t.Errorf("the log does not name the application that failed to start:\n%s", out)
	}

	// Repaired, the next reload starts it.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.Reload(); err != nil {
		t.Fatalf("reload after the repair: %v", err)
	}
	for _, a := range f.agent.Status().Apps {
		if a.StartError != "" {
			t.Errorf("%s after the repair: start error %q", a.Name, a.StartError)
		}
	}
	if got := running(f.agent); got != "hello,other" {
		t.Errorf("running %q after the repair, want hello,other", got)
	}
	if got := value(t, m.ConfigLastReloadOK); got != 1 {
		t.Errorf("drover_config_last_reload_successful = %v after a clean reload, want 1", got)
	}
	if !strings.Contains(logs.String(), `msg="configuration reloaded"`) {
		t.Errorf("the clean reload was not logged")
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

// TestReloadDuringDeploymentRecordsItsEnd: a reload that restarts an
// application while its lifecycle runs waits for the lifecycle, and its
// end is still stored and shown: the restarted loop finds it succeeded,
// not "interrupted" (the application's loop outlives its poller until the
// deployment ended). The hook is a real script that waits for a file.
func TestReloadDuringDeploymentRecordsItsEnd(t *testing.T) {
	f := newAgentFixtureWith(t, func(o *Options) { o.Notifier = &recNotifier{} })
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	// r2's hook waits for a file; the manifest is written last, so the
	// poller cannot publish r2 with the old hook.
	writeFiles(t, f.releases, map[string]string{
		"hook.sh":         "#!/bin/sh\ntouch \"$DROVER_ROOT/started\"\nwhile [ ! -e \"$DROVER_ROOT/go\" ]; do sleep 0.05; done\necho \"$DROVER_REVISION\" > \"$DROVER_ROOT/deployed\"\n",
		"site/index.html": "r2\n",
	})
	writeFiles(t, f.releases, map[string]string{
		"manifest.yaml": "version: 1\napplication: hello\nrevision: \"r2\"\nbundle: {path: .}\ndeployment: {strategy: one-at-a-time}\n",
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(f.root, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the r2 hook did not start within 60s; status %+v", f.agent.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A changed poll interval restarts the application's loop.
	if err := os.WriteFile(f.cfgPath, []byte(strings.Replace(f.config(""), "poll_interval: 1s", "poll_interval: 2s", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A reload that did not wait would restart the loop from the stored
	// row, which says running: the deployment would show as interrupted.
	// The hook is let go once the reload has begun (RELOADING=1; it then
	// parses the file and stops the application, well within the hook's
	// 50 ms poll).
	n := f.agent.notifier.(*recNotifier)
	done := make(chan error, 1)
	go func() { done <- f.agent.Reload() }()
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(n.all(), "RELOADING=1"); {
		if time.Now().After(deadline) {
			t.Fatal("the reload did not begin within 30s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(f.root, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("reload: %v", err)
	}
	st := waitStatus(t, f.agent, "r2 deployed", onRevision("r2"))
	for _, h := range st.Apps[0].Hosts {
		if h.Phase != "succeeded" || strings.Contains(h.Result, "interrupted") {
			t.Errorf("after the reload the r2 deployment shows %s %q, want succeeded", h.Phase, h.Result)
		}
	}
	if b, err := os.ReadFile(filepath.Join(f.root, "deployed")); err != nil || strings.TrimSpace(string(b)) != "r2" {
		t.Errorf("hook marker = %q, %v", b, err)
	}
}

// TestStatusShowsAStateStoreFailure: when the rollout state cannot be
// stored (here its file is replaced by a directory, as a broken state
// directory or a full disk fails the write), the agent holds its messages
// and says so in status with the error; once the store works again it
// stores what it held (the pause) and the line goes.
func TestStatusShowsAStateStoreFailure(t *testing.T) {
	f := newAgentFixtureWith(t, func(o *Options) { o.Notifier = &recNotifier{} })
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	path := filepath.Join(f.dir, "state", "rollout", "hello.json")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.SetPaused(t.Context(), "hello", true); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.agent, "the store failure in status", func(st Status) bool {
		return len(st.Apps) == 1 && st.Apps[0].StateError != ""
	})
	app := st.Apps[0]
	if !strings.Contains(app.StateError, "hello.json") || app.StateErrorSince.IsZero() {
		t.Errorf("state error %q since %v: want the file named and a time", app.StateError, app.StateErrorSince)
	}
	if !slices.ContainsFunc(app.Why, func(w string) bool { return strings.Contains(w, "cannot store its rollout state") }) {
		t.Errorf("why %q: want the store failure", app.Why)
	}
	if v := metricValue(t, f.agent.reg, "drover_rollout_state_store_failing", "hello"); v != 1 {
		t.Errorf("drover_rollout_state_store_failing{app=hello} = %v while the store fails, want 1", v)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.agent, "the store to work again", func(st Status) bool {
		return len(st.Apps) == 1 && st.Apps[0].StateError == ""
	})
	if v := metricValue(t, f.agent.reg, "drover_rollout_state_store_failing", "hello"); v != 0 {
		t.Errorf("drover_rollout_state_store_failing{app=hello} = %v once stored, want 0", v)
	}
	got, err := loadRolloutState(path)
	if err != nil || !got.Flag.Paused {
		t.Errorf("stored state after recovery: flag %+v, %v; want the pause held meanwhile", got.Flag, err)
	}
}
