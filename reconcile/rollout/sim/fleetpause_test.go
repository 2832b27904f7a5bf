package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// fleetPauseScenario builds scenario i of the fleet-pause tests: an
// operator's pause a while into the rollout, crashes and a restart of the
// whole fleet under it, and a resume, over every strategy, with loss, in
// groups of 3-12 (even i) and 20-80 hosts (odd i).
func fleetPauseScenario(i int) Config {
	deps := []manifest.Deployment{
		{Strategy: manifest.OneAtATime},
		{Strategy: manifest.Rolling, Batch: q(3)},
		{Strategy: manifest.Canary, Canary: q(2), Batch: pct(20), Bake: 10 * time.Second},
		{Strategy: manifest.AllAtOnce},
		{Strategy: manifest.Rolling, Batch: pct(25), MinimumHealthy: pct(60)},
	}
	d := deps[i%len(deps)]
	d.Rollback = manifest.RollbackOnFailure
	hosts := 3 + i/2%10
	if i%2 == 1 {
		hosts = []int{20, 40, 60, 80}[i/2%4]
		if raceBuild {
			hosts = 20
		}
	}
	c := Config{MaxTime: 30 * time.Minute, Hosts: hosts, Deployment: d, HookTime: 4 * time.Second,
		Loss: []float64{0, 0.01, 0.05}[i%3], FleetPauses: true, Crashes: true, SlowHooks: 0.1}
	if i%4 == 2 {
		c.Partitions = true
	}
	if i%6 == 5 {
		c.HookFailRate = 0.03
	}
	return c
}

func fleetPauseSeed(i int) uint64 { return uint64(9000 + i) }

func fleetPauseSeeds() int {
	if raceBuild || testing.Short() {
		return 20
	}
	return 60
}

// TestSimulatedFleetPauses (issue 10 item 6): the pause flag is part of
// what a host stores, so neither crashes nor a restart of the whole fleet
// lift it: no host that knew of the pause starts under it, every restarted
// host comes back with the flag it held, and after the resume — which
// some hosts miss while they are down and take from their peers — every
// rollout completes, with P1 and P3 as everywhere.
func TestSimulatedFleetPauses(t *testing.T) {
	results := runSeeds(fleetPauseSeeds(), func(i int) (Config, uint64) { return fleetPauseScenario(i), fleetPauseSeed(i) })
	kinds := checkRuns(t, results)
	for _, k := range []string{"fleet-pause", "fleet-resume", "fleet-restart", "restart-paused", "restart-missed-resume", "crash", "partition-minority"} {
		if kinds[k] == 0 {
			t.Errorf("no seed exercised %q", k)
		}
	}
}

// TestForgetPauseMutation: with the flag left out of what a restarted node
// gets back (the behaviour before issue 10), the same seeds see hosts
// start under a pause they knew; with it, none do.
func TestForgetPauseMutation(t *testing.T) {
	n := fleetPauseSeeds()
	for _, mutate := range []bool{false, true} {
		results := runSeeds(n, func(i int) (Config, uint64) {
			c := fleetPauseScenario(i)
			c.ForgetPause = mutate
			return c, fleetPauseSeed(i)
		})
		var started, restored []uint64
		for _, o := range results {
			if slices.ContainsFunc(o.r.Violations, func(v string) bool { return strings.HasPrefix(v, "pause:") && strings.Contains(v, "started") }) {
				started = append(started, o.r.Seed)
			}
			if slices.ContainsFunc(o.r.Violations, func(v string) bool { return strings.HasPrefix(v, "pause:") && strings.Contains(v, "restarted") }) {
				restored = append(restored, o.r.Seed)
			}
		}
		switch {
		case mutate && (len(started) == 0 || len(restored) == 0):
			t.Errorf("ForgetPause: %d of %d seeds saw a start under a known pause, %d a flag lost at restart; the simulator cannot see a forgotten pause", len(started), n, len(restored))
		case !mutate && len(started)+len(restored) > 0:
			t.Errorf("seeds %v started under a known pause, seeds %v restarted without their flag", started, restored)
		}
		t.Logf("ForgetPause=%v: %d of %d seeds start under a known pause %v; %d restart without their flag", mutate, len(started), n, started, len(restored))
	}
}
