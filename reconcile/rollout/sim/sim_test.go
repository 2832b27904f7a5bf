package sim

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

func q(v int) manifest.Quantity   { return manifest.Quantity{Set: true, Value: v} }
func pct(v int) manifest.Quantity { return manifest.Quantity{Set: true, Percent: true, Value: v} }

// scenario builds the configuration of seed i: strategies, sizes and fault
// kinds rotate so that every combination shows up across the seeds.
func scenario(i int) Config {
	deps := []manifest.Deployment{
		{Strategy: manifest.OneAtATime},
		{Strategy: manifest.Rolling, Batch: pct(10)},
		{Strategy: manifest.Rolling, Batch: q(7)},
		{Strategy: manifest.Canary, Canary: q(2), Batch: pct(20), Bake: 10 * time.Second},
		{Strategy: manifest.Rolling, Batch: pct(25), MinimumHealthy: pct(80)},
		{Strategy: manifest.AllAtOnce},
	}
	d := deps[i%len(deps)]
	if i%7 == 3 {
		d.Rollback = manifest.RollbackNever
	} else {
		d.Rollback = manifest.RollbackOnFailure
	}
	sizes := []int{50, 80, 120, 200}
	if raceBuild {
		sizes = []int{50, 50, 60, 100}
	}
	hosts := sizes[i/len(deps)%4]
	if d.Strategy == manifest.OneAtATime {
		hosts = []int{50, 60, 80, 100}[i/len(deps)%4] // one at a time over 200 hosts is long, not harder
	}
	c := Config{MaxTime: 30 * time.Minute,
		Hosts: hosts, Deployment: d, HookTime: 4 * time.Second,
		Loss: []float64{0, 0.01, 0.05, 0.1}[i%4], Crashes: i%2 == 0, Partitions: i%3 != 1, Joins: i%5 != 2,
	}
	if i%5 == 0 {
		c.HookFailRate = 0.03
	}
	if i%13 == 6 {
		c.FreshGroup = true // a new group's first revision: every host installs it without a slot
	}
	if i%11 == 5 {
		c.Permanent = true
		c.MaxTime = 10 * time.Minute // P1/P3 only; it cannot complete
	}
	return c
}

// TestSimulatedRollouts is the CI bar of issue 4: at least 200 seeds mixing
// every fault kind at 50-200 hosts; zero P1/P3 violations; every run without
// a permanent partition completes. Under -race (about ten times slower) or
// -short a third of the seeds run, still of every fault kind.
func TestSimulatedRollouts(t *testing.T) {
	seeds := 204
	if raceBuild || testing.Short() {
		seeds = 68
	}
	results := runSeeds(seeds, func(i int) (Config, uint64) { return scenario(i), uint64(i + 1) })
	kinds := checkRuns(t, results)
	for _, k := range []string{"crash", "restart", "join", "leave", "partition-minority", "partition-symmetric", "partition-permanent"} {
		if kinds[k] == 0 {
			t.Errorf("no seed exercised fault %q", k)
		}
	}
}

type run struct {
	c Config
	r Result
}

// runSeeds runs n seeded scenarios, as many at once as there are CPUs.
// The simulator allocates many small, short-lived objects: it trades memory
// for fewer collections while it runs (a quarter less CPU), as drover
// simulate does.
func runSeeds(n int, scenario func(i int) (Config, uint64)) []run {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	results := make([]run, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, seed := scenario(i)
			results[i] = run{c, Run(c, seed)}
		}()
	}
	wg.Wait()
	return results
}

// checkRuns fails the test for every violation, every run that should
// have completed and did not, and every run above its window; it returns
// the fault counts of all runs.
func checkRuns(t *testing.T, results []run) map[string]int {
	t.Helper()
	kinds := map[string]int{}
	completed, expected := 0, 0
	for _, o := range results {
		for k, v := range o.r.Faults {
			kinds[k] += v
		}
		for _, v := range o.r.Violations {
			t.Errorf("seed %d (%s, %d hosts): %s", o.r.Seed, o.c.Deployment.Strategy, o.c.Hosts, v)
		}
		if o.r.Expected {
			expected++
			if o.r.Completed {
				completed++
			} else {
				t.Errorf("seed %d (%s, %d hosts, loss %.2f, faults %v): did not complete in %s", o.r.Seed, o.c.Deployment.Strategy, o.c.Hosts, o.c.Loss, o.r.Faults, o.r.RolloutTime)
			}
		}
		if o.r.MaxConcurrent > o.r.Window {
			t.Errorf("seed %d: max concurrent %d > window %d", o.r.Seed, o.r.MaxConcurrent, o.r.Window)
		}
	}
	t.Logf("%d seeds, %d/%d expected completions, faults %v", len(results), completed, expected, kinds)
	return kinds
}
