package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// faultKinds are the fault mixes of TestSimulatedFaults, one per seed in
// turn.
var faultKinds = []string{"pauses", "gray", "duplicate", "drift", "mix"}

// faultSeed is the seed of fault scenario i (apart from the seeds of
// TestSimulatedRollouts).
func faultSeed(i int) uint64 { return uint64(1000 + i) }

// faultScenario builds scenario i of TestSimulatedFaults: the fault kinds of
// issue 9 (agent pauses, gray cuts, duplication, clock rates at the bound
// of A1) alone and mixed with the older ones, over every strategy.
func faultScenario(i int) Config {
	deps := []manifest.Deployment{
		{Strategy: manifest.OneAtATime},
		{Strategy: manifest.Rolling, Batch: q(3)},
		{Strategy: manifest.Rolling, Batch: pct(10), MinimumHealthy: pct(80)},
		{Strategy: manifest.Canary, Canary: q(2), Batch: pct(20), Bake: 10 * time.Second},
		{Strategy: manifest.AllAtOnce},
		{Strategy: manifest.Rolling, Batch: q(2)},
	}
	kind := faultKinds[i%len(faultKinds)]
	d := deps[i/len(faultKinds)%len(deps)]
	d.Rollback = manifest.RollbackOnFailure
	if i%4 == 3 {
		d.Rollback = manifest.RollbackNever
	}
	hosts := []int{50, 60, 80, 100, 120, 70}[i%6]
	if d.Strategy == manifest.OneAtATime {
		hosts = min(hosts, 80)
	}
	if raceBuild {
		hosts = 50
	}
	c := Config{MaxTime: 30 * time.Minute, Hosts: hosts, Deployment: d, HookTime: 4 * time.Second,
		Loss: []float64{0, 0.01, 0.05}[i%3]}
	if i%6 == 1 {
		c.HookFailRate = 0.03
	}
	switch kind {
	case "pauses":
		c.Pauses, c.SlowHooks = true, 0.3
	case "gray":
		c.GrayCuts = true
	case "duplicate":
		c.Duplicate = []float64{0.02, 0.1, 0.3}[i%3]
		c.Crashes = true
	case "drift":
		c.DriftExtremes, c.Crashes, c.Partitions = true, true, true
		c.SlowHooks = 0.2
	case "mix":
		c.Pauses, c.GrayCuts, c.Duplicate, c.DriftExtremes = true, true, 0.05, true
		c.Crashes, c.Partitions, c.Joins, c.SlowHooks = true, i%3 == 0, true, 0.2
	}
	if i%17 == 11 && (c.GrayCuts || c.Partitions) {
		c.Permanent = true
		c.MaxTime = 10 * time.Minute // P1/P3 only; it cannot complete
	}
	return c
}

// TestSimulatedFaults runs seeds of every fault kind issue 9 adds (pauses
// longer than the lease with the hook going on, UDP-only, TCP-only, one-way
// and pairwise cuts, duplication, clocks at ±ρ) alone and mixed with
// crashes, partitions and joins, in groups of 50-120 hosts and of 3-12:
// zero P1/P3 violations, and every run without a permanent fault completes.
func TestSimulatedFaults(t *testing.T) {
	seeds := 150
	if raceBuild || testing.Short() {
		seeds = 40
	}
	results := runSeeds(seeds, func(i int) (Config, uint64) { return faultScenario(i), faultSeed(i) })
	// The same mixes in groups of 3 to 12 hosts, where most fleets are and
	// where one pause or cut takes a voter majority's margin: cheap, so
	// twice as many.
	results = append(results, runSeeds(2*seeds, func(i int) (Config, uint64) {
		c := faultScenario(i)
		c.Hosts = 3 + i%10
		return c, uint64(5000 + i)
	})...)
	kinds := checkRuns(t, results)
	want := []string{
		"pause", "pause-long", "pause-holder", "pause-buffered", "pause-dropping", "fence-kill-paused", "hook-end-while-paused",
		"gray-udp", "gray-tcp", "gray-oneway-pair", "gray-oneway-group", "gray-pairwise", "gray-permanent",
		"duplicate", "drift-fast-host", "drift-slow-host", "slow-hook", "crash", "join", "partition-minority",
	}
	for _, k := range want {
		if kinds[k] == 0 {
			t.Errorf("no seed exercised fault %q", k)
		}
	}
}

// TestSupervisorFenceMutation is the mutation check of issue 9: with the
// fence enforced by the agent only (the behaviour before the supervisor
// fence), a slot holder whose agent is paused past its lease keeps running
// its hook while the next host starts, and the pause seeds must see it;
// with the supervisor fence the same seeds are clean.
func TestSupervisorFenceMutation(t *testing.T) {
	seeds := 150
	if raceBuild || testing.Short() {
		seeds = 40
	}
	var pauses []int
	for i := range seeds {
		if faultKinds[i%len(faultKinds)] == "pauses" {
			pauses = append(pauses, i)
		}
	}
	for _, mutate := range []bool{false, true} {
		results := runSeeds(len(pauses), func(k int) (Config, uint64) {
			c := faultScenario(pauses[k])
			c.NoSupervisorFence = mutate
			return c, faultSeed(pauses[k])
		})
		var bad []uint64
		for _, o := range results {
			if slices.ContainsFunc(o.r.Violations, func(v string) bool { return strings.HasPrefix(v, "P1") }) {
				bad = append(bad, o.r.Seed)
			}
		}
		switch {
		case mutate && len(bad) == 0:
			t.Errorf("NoSupervisorFence: none of %d pause seeds reported a P1 violation; the simulator cannot see a paused agent's hook outlive its fence", len(pauses))
		case !mutate && len(bad) > 0:
			t.Errorf("supervisor fence: pause seeds %v report P1 violations", bad)
		}
		t.Logf("NoSupervisorFence=%v: %d of %d pause seeds report P1 violations %v", mutate, len(bad), len(pauses), bad)
	}
}
