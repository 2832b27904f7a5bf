package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentFixture is one real agent in this process with a directory source,
// a real unixgram NOTIFY_SOCKET and real listeners.
type agentFixture struct {
	dir, cfgPath, releases, root string
	agent                        *Agent
	notify                       func() string
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// release publishes revision rev in the directory source.
func (f *agentFixture) release(t *testing.T, rev string) {
	t.Helper()
	writeFiles(t, f.releases, map[string]string{
		"manifest.yaml":   fmt.Sprintf("version: 1\napplication: hello\nrevision: %q\nbundle: {path: .}\ndeployment: {strategy: one-at-a-time}\n", rev),
		"appspec.yml":     "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/hello\nfile_exists_behavior: OVERWRITE\nhooks:\n  AfterInstall:\n    - location: hook.sh\n",
		"hook.sh":         "#!/bin/sh\necho \"$DROVER_REVISION\" > \"$DROVER_ROOT/deployed\"\n",
		"site/index.html": rev + "\n",
	})
}

func (f *agentFixture) config(extra string) string {
	return fmt.Sprintf(`node:
  name: a1
  groups: [g]
  state_dir: %s
  root: %s
cluster:
  bind: 127.0.0.1:0
  profile: local
api:
  socket: %s
  metrics_listen: 127.0.0.1:0
systemd: off
applications:
  - name: hello
    group: g
    poll_interval: 1s
    source: {dir: %s}
%s`, filepath.Join(f.dir, "state"), f.root, filepath.Join(f.dir, "drover.sock"), f.releases, extra)
}

func newAgentFixture(t *testing.T) *agentFixture {
	t.Helper()
	return newAgentFixtureWith(t, nil)
}

// newAgentFixtureWith is newAgentFixture with the agent's Options adjusted
// by opt (when not nil) before New.
func newAgentFixtureWith(t *testing.T, opt func(*Options)) *agentFixture {
	t.Helper()
	f := &agentFixture{dir: t.TempDir()}
	f.releases = filepath.Join(f.dir, "releases")
	f.root = filepath.Join(f.dir, "root")
	f.cfgPath = filepath.Join(f.dir, "drover.yaml")
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	f.release(t, "r1")
	if err := os.WriteFile(f.cfgPath, []byte(f.config("")), 0o644); err != nil {
		t.Fatal(err)
	}
	f.notify = notifySocket(t)
	opts := Options{
		ConfigPath: f.cfgPath, Version: "test", Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Notifier: NewSystemdNotifier(func(err error) { t.Errorf("notify: %v", err) }),
	}
	if opt != nil {
		opt(&opts)
	}
	a, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.agent = a
	if err := a.Start(context.Background()); err != nil {
		a.Close(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return f
}

// waitStatus polls the agent's status until cond holds.
func waitStatus(t *testing.T, a *Agent, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := a.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s; status %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func onRevision(rev string) func(Status) bool {
	return func(st Status) bool {
		for _, a := range st.Apps {
			for _, h := range a.Hosts {
				if a.Name == "hello" && h.Host == st.Host && h.Revision == rev && h.Phase != "running" {
					return true
				}
			}
		}
		return false
	}
}

func TestAgentDeploysNotifiesAndReloads(t *testing.T) {
	f := newAgentFixture(t)
	if got := f.notify(); !strings.HasPrefix(got, "READY=1\nSTATUS=") {
		t.Fatalf("first notification %q, want READY with a STATUS", got)
	}
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	if b, err := os.ReadFile(filepath.Join(f.root, "deployed")); err != nil || strings.TrimSpace(string(b)) != "r1" {
		t.Fatalf("hook marker = %q, %v", b, err)
	}
	f.release(t, "r2")
	waitStatus(t, f.agent, "r2 deployed", onRevision("r2"))

	// A reload with a broken config keeps the old one, and says why.
	if err := os.WriteFile(f.cfgPath, []byte(f.config("  - name: broken\n    group: g\n    source: {}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.Reload(); err == nil {
		t.Fatal("reload of a broken config succeeded")
	}
	st := f.agent.Status()
	if !strings.Contains(st.ConfigError, "applications[1].source") {
		t.Errorf("status config error = %q, want the problem with its field", st.ConfigError)
	}
	if len(st.Apps) != 1 || st.Apps[0].Name != "hello" || len(st.Apps[0].Hosts) != 1 {
		t.Errorf("after a rejected reload the old config must stay: %+v", st.Apps)
	}
	// The service manager hears of the reload either way.
	for _, want := range []string{"RELOADING=1", "READY=1"} {
		for {
			got := f.notify()
			if strings.HasPrefix(got, want) {
				break
			}
			if !strings.HasPrefix(got, "STATUS=") {
				t.Fatalf("notification %q while waiting for %s", got, want)
			}
		}
	}
	// A valid reload adds an application and clears the error.
	other := filepath.Join(f.dir, "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.cfgPath, []byte(f.config("  - name: other\n    group: g\n    source: {dir: "+other+"}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.Reload(); err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	st = f.agent.Status()
	if st.ConfigError != "" || len(st.Apps) != 2 {
		t.Errorf("after a valid reload: config error %q, %d apps", st.ConfigError, len(st.Apps))
	}
}

// TestAgentMetricsPassPromtool scrapes a running agent that has deployed.
func TestAgentMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
	}
	f := newAgentFixture(t)
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	resp, err := http.Get("http://" + f.agent.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`drover_app_revision_info{app="hello",group="g",revision="r1"} 1`,
		`drover_deployments_total{app="hello",result="succeeded"} 1`,
		`drover_source_polls_total{app="hello",result="changed"}`,
		`drover_cluster_members{state="alive"} 1`,
		`drover_build_info{`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, path := range []string{"/healthz", "/v1/status"} {
		r, err := http.Get("http://" + f.agent.MetricsAddr() + path)
		if err != nil || r.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", path, err, r)
		}
		if r != nil {
			r.Body.Close()
		}
	}
	r, err := http.Post("http://"+f.agent.MetricsAddr()+"/v1/apps/hello/pause", "", nil)
	if err == nil {
		r.Body.Close()
		if r.StatusCode < 400 {
			t.Errorf("the metrics listener accepted a mutation: %s", r.Status)
		}
	}
}
