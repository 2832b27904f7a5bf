package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/gossip"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Issue 10 item 6: what a restart must not forget. Real agents (the fleet
// of fleet_test.go), the first host a seed with no join list, as in a
// fleet whose seed is itself.

// seedAlone turns the fleet's first host into a seed with `join: []` (the
// fleet starts it with its own address as its seed) and restarts it, then
// waits until it is a member of the whole fleet again.
func seedAlone(f *fleet) {
	f.t.Helper()
	a := f.agents[0]
	b, err := os.ReadFile(a.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "  join: [") {
			lines[i], found = "  join: []", true
		}
	}
	if !found {
		f.t.Fatalf("%s: no join list in\n%s", a.cfg, b)
	}
	if err := os.WriteFile(a.cfg, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		f.t.Fatal(err)
	}
	n := len(f.agents)
	for i := range f.agents {
		f.waitFor(i, 60*time.Second, "every host sees the whole fleet alive", membersAlive(n))
	}
	f.stop(0)
	f.start(0)
	for i := range f.agents {
		f.waitFor(i, 60*time.Second, "every host sees the whole fleet alive after the seed lost its join list", membersAlive(n))
	}
}

func membersAlive(n int) func(*daemon.Status) bool {
	return func(st *daemon.Status) bool { return aliveOf(st) == n }
}

func aliveOf(st *daemon.Status) int {
	alive := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			alive++
		}
	}
	return alive
}

func helloOf(st *daemon.Status) *daemon.AppStatus {
	for i := range st.Apps {
		if st.Apps[i].Name == fleetApp {
			return &st.Apps[i]
		}
	}
	return nil
}

// countInLog counts the lines of agent i's log that contain s.
func (f *fleet) countInLog(i int, s string) int {
	f.t.Helper()
	b, err := os.ReadFile(f.agents[i].logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// TestRestartKeepsPause: `drover pause` survives the restart of every
// agent together, gracefully and by SIGKILL: a revision pushed afterwards
// starts nowhere, every host's status says PAUSED and its log says whose
// pause it restored; `drover resume` on another host rolls it out.
func TestRestartKeepsPause(t *testing.T) {
	const n = 3
	f := newFleet(t, n, "one-at-a-time")
	seedAlone(f)
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))

	if r := drover(t, nil, "pause", fleetApp, "--config", f.agents[1].cfg); r.code != 0 {
		t.Fatalf("drover pause: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	paused := func(st *daemon.Status) bool { a := helloOf(st); return a != nil && a.Paused }
	for i := range f.agents {
		f.waitFor(i, 30*time.Second, "the pause reaches every host", paused)
	}

	restored := "restored fleet-wide pause of " + fleetApp + " (set by h2)"
	for _, how := range []string{"stop", "kill -9"} {
		before := make([]int, n)
		for i := range f.agents {
			before[i] = f.countInLog(i, restored)
		}
		for i := range f.agents {
			if how == "stop" {
				f.stop(i)
			} else {
				f.kill9(i)
			}
		}
		for i := range f.agents {
			f.start(i)
		}
		for i := range f.agents {
			st := f.waitFor(i, 60*time.Second, "the fleet together again after "+how, membersAlive(n))
			if !paused(st) {
				t.Errorf("after %s of every agent, %s is not paused", how, f.agents[i].name)
			}
			if got := f.countInLog(i, restored); got != before[i]+1 {
				t.Errorf("after %s, %s's log says %q %d times more, want once", how, f.agents[i].name, restored, got-before[i])
			}
		}
	}

	// A new revision: every host sees it, none starts it.
	f.push("v2", "one-at-a-time", bundleOpts{})
	for i := range f.agents {
		f.waitFor(i, 60*time.Second, "every host sees v2 desired, paused", func(st *daemon.Status) bool {
			a := helloOf(st)
			return a != nil && a.Desired == "v2" && a.Paused
		})
	}
	// Nothing to wait for here but the absence of a start: watch for five
	// leases. Unpaused, the first host starts within a claim timeout once
	// the quarantine of a restarted voter (one lease) is over.
	lease := rollout.TimingFor(daemon.ProfileParams("local"), n).Lease
	for end := time.Now().Add(5 * lease); time.Now().Before(end); {
		for i := range f.agents {
			st, err := f.status(i)
			if err != nil {
				continue
			}
			for _, h := range hostsOf(st) {
				if h.Revision == "v2" && (h.Phase == "running" || h.Phase == "succeeded" || h.Phase == "failed") {
					t.Fatalf("%s shows %s %s v2 while the fleet is paused", f.agents[i].name, h.Host, h.Phase)
				}
			}
		}
		if ivs := f.lifecycles("v2"); len(ivs) > 0 {
			t.Fatalf("hooks of v2 ran while the fleet is paused: %+v", ivs)
		}
		time.Sleep(100 * time.Millisecond) // the pace of the watch, not a synchronisation
	}
	for i, a := range f.agents {
		r := drover(t, nil, "status", "--config", a.cfg)
		if r.code != 0 || !strings.Contains(r.stdout, "PAUSED") {
			t.Errorf("drover status on %s: exit %d, want PAUSED:\n%s%s", f.agents[i].name, r.code, r.stdout, r.stderr)
		}
	}

	if r := drover(t, nil, "resume", fleetApp, "--config", f.agents[2].cfg); r.code != 0 {
		t.Fatalf("drover resume: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.waitFor(0, 120*time.Second, "v2 everywhere after the resume", allOn(n, "v2"))
	if c := maxConcurrent(f.lifecycles("v2")); c != 1 {
		t.Errorf("one-at-a-time ran %d lifecycles at once", c)
	}
}

// TestRestartedSeedRejoins: the seed (`join: []`) restarts, gracefully
// and by SIGKILL, and sees the other members alive again within one rejoin
// interval of serving, through the peers it saved; its log names them.
func TestRestartedSeedRejoins(t *testing.T) {
	const n = 3
	f := newFleet(t, n, "one-at-a-time")
	seedAlone(f)
	peersFile := filepath.Join(f.agents[0].dir, "state", "gossip-peers.json")
	bound := gossip.RejoinInterval(daemon.ProfileParams("local"))
	for _, how := range []string{"stop", "kill -9"} {
		// The seed writes its peers file at most every few seconds: wait
		// until it names both others, so that a kill finds it written.
		for deadline := time.Now().Add(30 * time.Second); ; {
			b, _ := os.ReadFile(peersFile)
			if strings.Contains(string(b), `"h2"`) && strings.Contains(string(b), `"h3"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not name h2 and h3 after 30s: %q", peersFile, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		tried := f.countInLog(0, "joining the peers it last knew alive")
		if how == "stop" {
			f.stop(0)
		} else {
			f.kill9(0)
		}
		// The others notice, so that the rejoin is the seed's doing.
		f.waitFor(1, 60*time.Second, "h2 sees the seed gone after "+how, membersAlive(n-1))
		f.start(0)
		var serving time.Time
		for deadline := time.Now().Add(30 * time.Second); serving.IsZero(); {
			if _, err := f.status(0); err == nil {
				serving = time.Now()
			} else if time.Now().After(deadline) {
				t.Fatalf("the restarted seed does not serve after 30s: %v", err)
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
		st := f.waitFor(0, bound, "the restarted seed sees every member alive within one rejoin interval ("+how+")", membersAlive(n))
		t.Logf("%s: the restarted seed saw %d of %d members alive %s after it served (bound %s)", how, aliveOf(st), n, time.Since(serving).Round(time.Millisecond), bound)
		for i := 1; i < n; i++ {
			f.waitFor(i, 30*time.Second, "the others see the seed alive again", membersAlive(n))
		}
		if got := f.countInLog(0, "joining the peers it last knew alive"); got != tried+1 {
			t.Errorf("the seed's log says it joined its saved peers %d times more, want once", got-tried)
		}
		b, _ := os.ReadFile(f.agents[0].logPath)
		log := string(b)
		if i := strings.LastIndex(log, "joining the peers it last knew alive"); i < 0 || !strings.Contains(firstLine(log[i:]), "h2 127.") || !strings.Contains(firstLine(log[i:]), "h3 127.") {
			t.Errorf("the seed's log does not name the peers it tried:\n%s", grepLines(log, "gossip"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
