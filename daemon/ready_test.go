package daemon

import (
	"os"
	"strings"
	"testing"
	"time"
)

// waitMsgs waits until the notifier has recorded a message cond accepts,
// and returns every message so far.
func waitMsgs(t *testing.T, n *recNotifier, what string, cond func(string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs := n.all()
		for _, m := range msgs {
			if cond(m) {
				return msgs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s; notifications %q", what, msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isReady(m string) bool { return strings.HasPrefix(m, "READY=1") }

// TestReloadReadyTellsTheNewState: the READY that ends a reload carries a
// STATUS computed after it, not before.
func TestReloadReadyTellsTheNewState(t *testing.T) {
	n := &recNotifier{}
	f := newAgentFixtureWith(t, func(o *Options) { o.Notifier = n })
	waitMsgs(t, n, "READY at start", isReady)
	waitStatus(t, f.agent, "r1 deployed", onRevision("r1"))
	f.writeConfig(t, f.otherApp(t, "1s"))
	before := len(n.all())
	if err := f.agent.Reload(); err != nil {
		t.Fatal(err)
	}
	msgs := n.all()[before:]
	var ready string
	for i, m := range msgs {
		if m == "RELOADING=1" {
			for _, r := range msgs[i+1:] {
				if isReady(r) {
					ready = r
					break
				}
			}
		}
	}
	if ready == "" {
		t.Fatalf("no RELOADING then READY for the reload: %q", msgs)
	}
	if !strings.Contains(ready, "other ") {
		t.Errorf("READY after the reload = %q: its STATUS does not show the application the reload added", ready)
	}
}

// withDeadSeed gives a fixture config a seed that never answers, so that
// the join wait runs out.
func withDeadSeed(cfg string) string {
	return strings.Replace(cfg, "  profile: local\n", "  profile: local\n  join: [\"127.0.0.1:1\"]\n", 1)
}

// TestReadyWaitsForTheJoin: before the cluster is joined (or the join wait
// is over) the agent sends no READY, not even for a reload, and what its
// STATUS lines say is true when they are sent.
func TestReadyWaitsForTheJoin(t *testing.T) {
	n := &recNotifier{}
	f := newAgentFixtureWith(t, func(o *Options) {
		o.Notifier = n
		o.JoinWait = 2 * time.Second
		b, err := os.ReadFile(o.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(o.ConfigPath, []byte(withDeadSeed(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	start := time.Now()
	// A reload during the join wait (SIGHUP, a saved file).
	if err := os.WriteFile(f.cfgPath, []byte(withDeadSeed(f.config(f.otherApp(t, "1s")))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.agent.Reload(); err != nil {
		t.Fatal(err)
	}
	msgs := waitMsgs(t, n, "READY after the join wait", isReady)
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("READY after %v, before the join wait of 2s was over", waited)
	}
	for _, m := range msgs {
		if isReady(m) {
			if !strings.Contains(m, "not joined") || !strings.Contains(m, "other ") {
				t.Errorf("READY = %q, want a STATUS saying the cluster is not joined yet, with both apps", m)
			}
			break
		}
		// Once the wait is over, the status loop may say "not joined"
		// before READY goes out: true then too.
		if !strings.HasPrefix(m, "STATUS=joining the cluster") && !strings.HasPrefix(m, "STATUS=not joined: no seed answered yet") {
			t.Errorf("before READY: %q, want only STATUS lines saying the agent is joining or not joined", m)
		}
	}
}
