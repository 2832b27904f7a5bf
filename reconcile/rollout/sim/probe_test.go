package sim

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Probes for investigating runs by hand; skipped unless SIM_* is set.

func TestProbe(t *testing.T) {
	from, err1 := strconv.Atoi(os.Getenv("SIM_FROM"))
	to, err2 := strconv.Atoi(os.Getenv("SIM_TO"))
	if err1 != nil || err2 != nil {
		t.Skip("set SIM_FROM and SIM_TO to probe a range of CI seeds")
	}
	for i := from; i < to; i++ {
		c := scenario(i)
		st := time.Now()
		r := Run(c, uint64(i+1))
		t.Logf("seed %d %s h=%d loss=%.2f perm=%v: completed=%v time=%s viol=%v events=%d bytes=%.0f wall=%s faults=%v", i+1, c.Deployment.Strategy, c.Hosts, c.Loss, c.Permanent, r.Completed, r.RolloutTime.Round(time.Second), r.Violations, r.Events, r.GossipBytes, time.Since(st).Round(time.Millisecond), r.Faults)
	}
}

func TestProbeOne(t *testing.T) {
	i, err := strconv.Atoi(os.Getenv("SIM_SEED"))
	if err != nil {
		t.Skip("set SIM_SEED to probe one CI seed")
	}
	c := scenario(i - 1)
	c.Debug = func(s string) { t.Log(s) }
	if os.Getenv("SIM_TRACE") != "" {
		c.Trace = func(s string) { t.Log(s) }
	}
	r := Run(c, uint64(i))
	t.Logf("%+v", r)
}

func TestProbeBig(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("SIM_HOSTS"))
	if err != nil {
		t.Skip("set SIM_HOSTS to probe a big rolling 10% run")
	}
	c := Config{Debug: func(s string) { t.Log(s[:min(len(s), 3000)]) }, Hosts: n, Deployment: manifest.Deployment{Strategy: manifest.Rolling, Batch: pct(10)}, HookTime: 10 * time.Second, Loss: 0.05, Crashes: os.Getenv("SIM_CLEAN") == "", Partitions: os.Getenv("SIM_CLEAN") == ""}
	st := time.Now()
	r := Run(c, 1)
	t.Logf("%+v wall=%s", r, time.Since(st))
}

func TestProbeFaults(t *testing.T) {
	from, err1 := strconv.Atoi(os.Getenv("SIM_FFROM"))
	to, err2 := strconv.Atoi(os.Getenv("SIM_FTO"))
	if err1 != nil || err2 != nil {
		t.Skip("set SIM_FFROM and SIM_FTO to probe a range of fault seeds")
	}
	for i := from; i < to; i++ {
		c := faultScenario(i)
		c.NoSupervisorFence = os.Getenv("SIM_MUTATE") != ""
		probeOverrides(&c, i)
		st := time.Now()
		r := Run(c, faultSeed(i))
		t.Logf("seed %d %s %s h=%d loss=%.2f: completed=%v time=%s viol=%v events=%d wall=%s faults=%v", faultSeed(i), faultKinds[i%len(faultKinds)], c.Deployment.Strategy, c.Hosts, c.Loss, r.Completed, r.RolloutTime.Round(time.Second), r.Violations, r.Events, time.Since(st).Round(time.Millisecond), r.Faults)
	}
}

func TestProbeFault(t *testing.T) {
	i, err := strconv.Atoi(os.Getenv("SIM_FSEED"))
	if err != nil {
		t.Skip("set SIM_FSEED to probe one fault seed (1000 + index)")
	}
	c := faultScenario(i - 1000)
	c.NoSupervisorFence = os.Getenv("SIM_MUTATE") != ""
	probeOverrides(&c, i-1000)
	c.Debug = func(s string) { t.Log(s) }
	if os.Getenv("SIM_TRACE") != "" {
		c.Trace = func(s string) { t.Log(s) }
	}
	r := Run(c, uint64(i))
	t.Logf("%+v", r)
}

// probeOverrides applies the SIM_* knobs of the fault probes to scenario i:
// SIM_HOSTS=n (n to 2n hosts), SIM_LOSS, SIM_ALL (every fault at once, loss
// doubled).
func probeOverrides(c *Config, i int) {
	if n, err := strconv.Atoi(os.Getenv("SIM_HOSTS")); err == nil {
		c.Hosts = n + i%(n+1)
	}
	if l, err := strconv.ParseFloat(os.Getenv("SIM_LOSS"), 64); err == nil {
		c.Loss = l
	}
	if os.Getenv("SIM_ALL") != "" {
		c.Pauses, c.GrayCuts, c.Duplicate, c.DriftExtremes = true, true, 0.05, true
		c.Crashes, c.Partitions, c.Joins, c.SlowHooks, c.Loss = true, true, true, 0.3, c.Loss*2
	}
}
