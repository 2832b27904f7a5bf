package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

func TestFleetOneAtATime(t *testing.T) {
	const n = 5
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "initial deployment of v1 everywhere", allOn(n, "v1"))
	pushed := float64(time.Now().UnixNano()) / 1e9
	f.push("v2", "one-at-a-time", bundleOpts{})
	f.waitFor(2, 120*time.Second, "v2 everywhere", allOn(n, "v2"))
	ivs := f.lifecycles("v2")
	if len(ivs) > 0 {
		var sum float64
		for _, iv := range ivs {
			sum += iv.end - iv.start
		}
		t.Logf("git push to first host starting: %.2fs (poll interval 2s); rollout %.2fs for %.2fs of lifecycles",
			ivs[0].start-pushed, ivs[len(ivs)-1].end-ivs[0].start, sum)
	}
	if len(ivs) != n {
		t.Fatalf("%d hosts ran v2, want %d: %+v", len(ivs), n, ivs)
	}
	t.Logf("v2 lifecycles: %+v", ivs)
	if c := maxConcurrent(ivs); c != 1 {
		t.Errorf("one-at-a-time ran %d lifecycles at once: %+v", c, ivs)
	}
	// Every host sees the whole fleet.
	for i := range f.agents {
		st, err := f.status(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(hostsOf(st)); got != n {
			t.Errorf("%s lists %d hosts, want %d", f.agents[i].name, got, n)
		}
	}
}

func hostsOf(st *daemon.Status) []daemon.HostStatus {
	for _, a := range st.Apps {
		if a.Name == fleetApp {
			return a.Hosts
		}
	}
	return nil
}

func TestFleetAllAtOnce(t *testing.T) {
	const n = 5
	f := newFleet(t, n, "all-at-once")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	f.push("v2", "all-at-once", bundleOpts{hold: 2 * time.Second})
	f.waitFor(1, 120*time.Second, "v2 everywhere", allOn(n, "v2"))
	ivs := f.lifecycles("v2")
	t.Logf("v2 lifecycles: %+v", ivs)
	// All at once: the hosts ran together. Each holds ValidateService for
	// 2 s, so on any machine they overlap.
	if c := maxConcurrent(ivs); c < n-1 {
		t.Errorf("all-at-once ran at most %d lifecycles together, want the whole group", c)
	}
}

func TestFleetCanary(t *testing.T) {
	const n = 5
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	f.push("v2", "canary", bundleOpts{canary: "1", batch: "2"})
	f.waitFor(3, 120*time.Second, "v2 everywhere", allOn(n, "v2"))
	ivs := f.lifecycles("v2")
	t.Logf("v2 lifecycles: %+v", ivs)
	if len(ivs) != n {
		t.Fatalf("%d hosts ran v2, want %d", len(ivs), n)
	}
	// The canary ran alone and finished before anyone else started.
	canary := ivs[0]
	for _, iv := range ivs[1:] {
		if iv.start < canary.end {
			t.Errorf("%s started at %.3f, before the canary %s finished at %.3f", iv.host, iv.start, canary.host, canary.end)
		}
	}
	if c := maxConcurrent(ivs[1:]); c > 2 {
		t.Errorf("after the canary, %d ran at once; batch is 2", c)
	}
}

func TestFleetFailureHaltsAndRollsBack(t *testing.T) {
	const n = 5
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	f.push("bad", "one-at-a-time", bundleOpts{failValidate: true})
	// The first host fails ValidateService, the rollout halts, and that
	// host goes back to v1 from its archive; nobody else starts "bad".
	st := f.waitFor(0, 120*time.Second, "the failed host rolled back", func(st *daemon.Status) bool {
		for _, h := range hostsOf(st) {
			if h.Phase == "rolled-back" {
				return true
			}
		}
		return false
	})
	for _, a := range st.Apps {
		if a.Name == fleetApp && !a.Halted {
			t.Errorf("status does not say the rollout of %s is halted", a.Desired)
		}
	}
	ivs := f.lifecycles("bad")
	if len(ivs) != 1 {
		t.Fatalf("%d hosts ran the bad revision, want exactly 1 (halt at the first failure): %+v", len(ivs), ivs)
	}
	for _, h := range hostsOf(st) {
		if h.Revision != "v1" {
			t.Errorf("%s runs %q after the rollback, want v1", h.Host, h.Revision)
		}
	}
	// Nobody runs anything once the rollback is over.
	st2, err := f.status(4)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hostsOf(st2) {
		if h.Phase == "running" {
			t.Errorf("%s is running after the halt", h.Host)
		}
	}
}

func TestFleetAgentKilledMidAfterInstall(t *testing.T) {
	const n = 5
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	// The first host to reach AfterInstall hangs there; the others would not.
	f.push("v2", "one-at-a-time", bundleOpts{hangOnce: "AfterInstall"})
	victim := -1
	deadline := time.Now().Add(90 * time.Second)
	for victim < 0 {
		for i, a := range f.agents {
			if _, err := os.Stat(filepath.Join(a.dir, "root", "hanging")); err == nil {
				victim = i
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no host reached AfterInstall")
		}
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := float64(time.Now().UnixNano()) / 1e9
	f.kill9(victim)
	name := f.agents[victim].name
	t.Logf("killed %s in AfterInstall", name)

	// Its hook does not outlive it (dead-man watchdog), and the slot it held
	// is released: another host starts v2 while it is down.
	other := (victim + 1) % n
	var next float64
	for deadline := time.Now().Add(60 * time.Second); next == 0; {
		for _, iv := range f.lifecycles("v2") {
			if iv.host != name && iv.start > killedAt {
				next = iv.start
			}
		}
		if time.Now().After(deadline) {
			st, _ := f.status(other)
			t.Fatalf("no host started v2 after the slot holder died; status %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("slot released: next host started %.3fs after the kill", next-killedAt)

	// Restarted, it records the interrupted deployment as failed, the
	// rollout halts, and every host that installed v2 rolls back to v1.
	f.start(victim)
	f.waitFor(other, 120*time.Second, "everyone back on v1", func(st *daemon.Status) bool {
		hs := hostsOf(st)
		if len(hs) != n {
			return false
		}
		for _, h := range hs {
			if h.Revision != "v1" || h.Phase == "running" || h.Phase == "rolling-back" {
				return false
			}
		}
		return true
	})
	recs, err := filepath.Glob(filepath.Join(f.agents[victim].dir, "state", "deployments", "web", "d-*", "record.json"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range recs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		if rec["revision"] == "v2" {
			found = true
			if rec["status"] != "failed" || rec["failed_event"] != "AfterInstall" {
				t.Errorf("interrupted deployment recorded as %v at %v, want failed at AfterInstall", rec["status"], rec["failed_event"])
			}
		}
	}
	if !found {
		t.Errorf("%s has no record of its v2 deployment", name)
	}
}
