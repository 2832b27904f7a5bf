package sim

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	from, _ := strconv.Atoi(os.Getenv("SIM_FROM"))
	to, _ := strconv.Atoi(os.Getenv("SIM_TO"))
	for i := from; i < to; i++ {
		c := scenario(i)
		c.MaxTime = 40 * time.Minute
		st := time.Now()
		r := Run(c, uint64(i+1))
		t.Logf("seed %d %s h=%d loss=%.2f perm=%v: completed=%v time=%s viol=%v events=%d wall=%s faults=%v", i+1, c.Deployment.Strategy, c.Hosts, c.Loss, c.Permanent, r.Completed, r.RolloutTime.Round(time.Second), r.Violations, r.Events, time.Since(st).Round(time.Millisecond), r.Faults)
	}
}

func TestProbeOne(t *testing.T) {
	i, _ := strconv.Atoi(os.Getenv("SIM_SEED"))
	debugDump = func(s string) { t.Log(s) }
	defer func() { debugDump = nil }()
	c := scenario(i - 1)
	c.MaxTime = 40 * time.Minute
	r := Run(c, uint64(i))
	t.Logf("%+v", r)
}
