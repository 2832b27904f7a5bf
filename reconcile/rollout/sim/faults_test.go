package sim

import (
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// faultKinds are the fault mixes of TestSimulatedFaults, one per seed in
// turn.
var faultKinds = []string{"pauses", "gray", "duplicate", "drift", "mix"}

// faultScenario builds seed i of TestSimulatedFaults: the fault kinds of
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
	hosts := []int{50, 60, 80, 100}[i%4]
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
		c.Duplicate = []float64{0.05, 0.2, 0.5}[i%3]
		c.Crashes = true
	case "drift":
		c.DriftExtremes, c.Crashes, c.Partitions = true, true, true
		c.SlowHooks = 0.2
	case "mix":
		c.Pauses, c.GrayCuts, c.Duplicate, c.DriftExtremes = true, true, 0.05, true
		c.Crashes, c.Partitions, c.Joins, c.SlowHooks = true, i%3 == 0, true, 0.2
	}
	return c
}
