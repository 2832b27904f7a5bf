package sim

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// gateScenario is seed i of TestSimulatedGates: every strategy, 5 to 60
// hosts, loss up to 5 %, crashes (half of them of a host that evaluates a
// gate), some partitions; a third of the seeds fail a step's gate, a third
// turn one inconclusive, a third pass everything.
func gateScenario(i int) Config {
	deps := []manifest.Deployment{
		{Strategy: manifest.OneAtATime},
		{Strategy: manifest.Rolling, Batch: pct(20)},
		{Strategy: manifest.Canary, Canary: q(1), Batch: pct(25), Bake: 5 * time.Second},
		{Strategy: manifest.Rolling, Batch: q(3), MinimumHealthy: pct(70)},
	}
	d := deps[i%len(deps)]
	d.Rollback = manifest.RollbackOnFailure
	hosts := []int{5, 12, 30, 60}[i/len(deps)%4]
	if d.Strategy == manifest.OneAtATime {
		hosts = []int{5, 8, 12, 20}[i/len(deps)%4]
	}
	sc := &GateScript{FailAt: -1, InconclusiveAt: -1, Count: 2, Interval: 3 * time.Second}
	switch i % 3 {
	case 1:
		sc.FailAt = i / 3 % 3
	case 2:
		sc.InconclusiveAt = i / 3 % 3
	}
	return Config{MaxTime: 30 * time.Minute, Hosts: hosts, Deployment: d, HookTime: 4 * time.Second,
		Loss: []float64{0, 0.01, 0.05}[i%3], Crashes: i%4 != 3, Partitions: i%5 == 2, Gates: sc}
}

// TestSimulatedGates: the health-gate properties of PROTOCOL.md §10 over
// seeded runs with the real Nodes: G1 no host of a step starts before the
// gates of every step before it passed; G2 a failed gate halts every host
// and an inconclusive one pauses the fleet until the operator's resume;
// G3 a crashed or cut-off evaluator costs at most the bound between two
// samples; every run completes.
func TestSimulatedGates(t *testing.T) {
	seeds := 48
	if raceBuild || testing.Short() {
		seeds = 16
	}
	results := runSeeds(seeds, func(i int) (Config, uint64) { return gateScenario(i), uint64(7000 + i) })
	kinds := checkRuns(t, results)
	var gap, bound time.Duration
	halted := 0
	for _, o := range results {
		gap = max(gap, o.r.GateMaxGap)
		bound = max(bound, o.r.GateBound)
		if o.r.Halted {
			halted++
		}
	}
	t.Logf("gates: longest gap between two samples %s (bound %s); %d runs halted", gap, bound, halted)
	for _, k := range []string{"gate-fail", "gate-inconclusive", "gate-resume", "crash-evaluator"} {
		if kinds[k] == 0 {
			t.Errorf("no seed exercised %q", k)
		}
	}
}
