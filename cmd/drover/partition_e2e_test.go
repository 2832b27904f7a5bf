package main

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// TestFleetPartitionNetns: five real agent processes, each in its own
// network namespace, are cut two against three at layer 2 while a new
// revision is released. The majority rolls it out one at a time; the
// minority, which includes the seed every host joined through and sees
// the new revision as well, starts nothing; after the heal the minority
// takes its turn, and at no instant did two hosts run at once.
func TestFleetPartitionNetns(t *testing.T) {
	const n = 5
	lab := newNetLab(t, n)
	f := newFleetWith(t, n, "one-at-a-time", fleetOpts{lab: lab})
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))

	minority := map[int]bool{0: true, 3: true}
	var major, minor []int
	for i := range n {
		if minority[i] {
			minor = append(minor, i)
		} else {
			major = append(major, i)
		}
	}
	lab.partition(minority)
	for i := range n {
		want := n - len(minor)
		if minority[i] {
			want = len(minor)
		}
		f.waitFor(i, 30*time.Second, "its side of the partition alone alive", func(st *daemon.Status) bool {
			return aliveMembers(st) == want
		})
	}

	f.push("v2", "one-at-a-time", bundleOpts{})
	names := func(is []int) map[string]bool {
		m := map[string]bool{}
		for _, i := range is {
			m[f.agents[i].name] = true
		}
		return m
	}
	majorNames, minorNames := names(major), names(minor)
	on := func(hosts map[string]bool, rev string) func(*daemon.Status) bool {
		return func(st *daemon.Status) bool {
			got := 0
			for _, h := range hostsOf(st) {
				if hosts[h.Host] && h.Revision == rev && h.Phase != "running" {
					got++
				}
			}
			return got == len(hosts)
		}
	}
	f.waitFor(major[0], 120*time.Second, "the majority on v2", on(majorNames, "v2"))
	for _, i := range minor {
		f.waitFor(i, 30*time.Second, "the minority to know v2 is desired", func(st *daemon.Status) bool {
			for _, a := range st.Apps {
				if a.Name == fleetApp {
					return a.Desired == "v2"
				}
			}
			return false
		})
	}
	// The minority keeps claiming and must keep failing. Watch it for
	// eight leases of the fleet's profile: absence can only be observed
	// over a window.
	lease := rollout.TimingFor(daemon.ProfileParams("local"), n).Lease
	for deadline := time.Now().Add(8 * lease); time.Now().Before(deadline); {
		for _, iv := range f.lifecycles("v2") {
			if minorNames[iv.host] {
				t.Fatalf("minority host %s ran v2 during the partition: %+v", iv.host, f.lifecycles("v2"))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, i := range minor {
		st, err := f.status(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hostsOf(st) {
			if h.Host == f.agents[i].name && (h.Revision != "v1" || h.Phase == "running") {
				t.Errorf("minority host %s is %s on %s during the partition, want waiting on v1", h.Host, h.Phase, h.Revision)
			}
		}
	}

	lab.heal()
	f.waitFor(minor[0], 120*time.Second, "every host on v2 after the heal", allOn(n, "v2"))
	ivs := f.lifecycles("v2")
	t.Logf("v2 lifecycles: %+v", ivs)
	if len(ivs) != n {
		t.Fatalf("%d hosts ran v2, want %d", len(ivs), n)
	}
	if c := maxConcurrent(ivs); c != 1 {
		t.Errorf("one-at-a-time ran %d lifecycles at once across the partition: %+v", c, ivs)
	}
	// The minority went last: both started after every majority host ended.
	var lastMajor float64
	for _, iv := range ivs {
		if majorNames[iv.host] {
			lastMajor = max(lastMajor, iv.end)
		}
	}
	for _, iv := range ivs {
		if minorNames[iv.host] && iv.start < lastMajor {
			t.Errorf("minority host %s started at %.3f, before the majority finished at %.3f", iv.host, iv.start, lastMajor)
		}
	}
}
