package packaging

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// agentScrape caches one running agent's /metrics families per test binary:
// starting the agent and deploying twice is the slow part.
var agentScrape struct {
	once sync.Once
	fams map[string]family
	err  error
}

// runningAgentMetrics starts a real agent in this process (directory
// source, hooks in process groups), lets it deploy a good revision and then
// one whose ValidateService fails (so that failure series exist too), and
// scrapes its metrics listener. The manifests declare a health gate, so
// that the gate series exist (a group of one host never samples it).
func runningAgentMetrics(t *testing.T) map[string]family {
	t.Helper()
	agentScrape.once.Do(func() {
		agentScrape.fams, agentScrape.err = scrapeRunningAgent(t)
	})
	if agentScrape.err != nil {
		t.Fatal(agentScrape.err)
	}
	return agentScrape.fams
}

func scrapeRunningAgent(t *testing.T) (map[string]family, error) {
	dir, err := os.MkdirTemp("", "drover-pkg-agent-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rel := filepath.Join(dir, "releases")
	release := func(rev string, fail bool) error {
		hook := "#!/bin/sh\nexit 0\n"
		if fail {
			hook = "#!/bin/sh\n[ \"$LIFECYCLE_EVENT\" = ValidateService ] && exit 1\nexit 0\n"
		}
		files := map[string]string{
			"manifest.yaml": fmt.Sprintf("version: 1\napplication: hello\nrevision: %q\nbundle: {path: .}\ndeployment: {strategy: one-at-a-time, rollback: on-failure, gates: [{name: health, http: {url: \"http://127.0.0.1:9/healthz\"}}]}\n", rev),
			"appspec.yml":   "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: hook.sh\n  ValidateService:\n    - location: hook.sh\n",
			"hook.sh":       hook,
		}
		for name, body := range files {
			if err := os.MkdirAll(rel, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(rel, name), []byte(body), 0o755); err != nil {
				return err
			}
		}
		return nil
	}
	if err := release("r1", false); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`node: {name: pkg-test, groups: [g], state_dir: %s, root: %s}
cluster: {bind: "127.0.0.1:0", profile: local}
api: {socket: %s, metrics_listen: "127.0.0.1:0"}
systemd: "off"
applications:
  - {name: hello, group: g, poll_interval: 1s, source: {dir: %s}}
`, filepath.Join(dir, "state"), dir, filepath.Join(dir, "drover.sock"), rel)), 0o644); err != nil {
		return nil, err
	}
	ctx := context.Background()
	a, err := daemon.New(ctx, daemon.Options{ConfigPath: cfg, Version: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer a.Close(ctx)
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	wait := func(what string, cond func(daemon.HostStatus) bool) error {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			for _, app := range a.Status().Apps {
				for _, h := range app.Hosts {
					if cond(h) {
						return nil
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("running agent: %s did not happen within 60s", what)
	}
	if err := wait("r1 deployed", func(h daemon.HostStatus) bool { return h.Revision == "r1" && h.Phase != "running" }); err != nil {
		return nil, err
	}
	if err := release("r2", true); err != nil {
		return nil, err
	}
	if err := wait("r2 failed", func(h daemon.HostStatus) bool {
		return h.Target == "r2" && strings.Contains(h.Phase, "fail") || strings.Contains(h.Phase, "rolled")
	}); err != nil {
		return nil, err
	}
	return fromScrape(t, "http://"+a.MetricsAddr()+"/metrics"), nil
}
