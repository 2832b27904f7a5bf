package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// BenchmarkRollout20 rolls out 20 hosts one at a time over real memberlist
// on loopback with memberlist's LAN parameters and no-op hooks of 0.5 s
// (DESIGN.md §14). It reports the slot handoff (a host's Finished → the next
// host's Start) at p50 and p99, and the rollout efficiency: the time from
// SetDesired to the last Finished over the sum of the hosts' lifecycles.
// "gossip-only" turns off the direct send of a host's own row on a phase
// change, to show what it buys.
func BenchmarkRollout20(b *testing.B) {
	for _, eager := range []bool{true, false} {
		name := "eager"
		if !eager {
			name = "gossip-only"
		}
		b.Run(name, func(b *testing.B) { benchRollout(b, 20, eager) })
	}
}

func benchRollout(b *testing.B, n int, eager bool) {
	const hook = 500 * time.Millisecond
	f := newFleet(b)
	f.window = 1
	f.gossipOnly = !eager
	f.hook = func(string, int) time.Duration { return hook }
	hs := f.startFleetParams(n, rollout.LANParams, nil)
	registered := time.Now() // after every App was registered
	// A fleet that just started is in restart quarantine (a restarted voter
	// grants nothing for one lease); a running fleet is not. Wait it out.
	<-time.After(time.Until(registered.Add(hs[0].app.Timing().Quarantine)))
	var handoffs []time.Duration
	var eff []float64
	b.ResetTimer()
	for i := range b.N {
		f.mu.Lock()
		f.startLog, f.endLog = nil, nil
		f.mu.Unlock()
		rev := fmt.Sprintf("r%d", i+2)
		t0 := time.Now()
		for _, h := range hs {
			h.app.SetDesired(desired(rev, manifest.Deployment{Strategy: manifest.OneAtATime}))
		}
		waitFor(b, "every host to install "+rev, 5*time.Minute, func() bool { return installed(hs, rev) })
		f.mu.Lock()
		starts, ends := slices.Clone(f.startLog), slices.Clone(f.endLog)
		f.mu.Unlock()
		if len(starts) != n || len(ends) != n {
			b.Fatalf("%d starts, %d ends; want %d", len(starts), len(ends), n)
		}
		var busy time.Duration
		for k := range n {
			busy += ends[k].at.Sub(starts[k].at)
			if k > 0 {
				handoffs = append(handoffs, starts[k].at.Sub(ends[k-1].at))
			}
		}
		eff = append(eff, float64(ends[n-1].at.Sub(t0))/float64(busy))
		if testing.Verbose() {
			b.Logf("first start after %s", starts[0].at.Sub(t0))
			for k := 1; k < n; k++ {
				b.Logf("handoff %s → %s: %s", starts[k-1].host, starts[k].host, starts[k].at.Sub(ends[k-1].at))
			}
		}
	}
	b.StopTimer()
	f.check()
	slices.Sort(handoffs)
	pct := func(p float64) float64 {
		return float64(handoffs[min(len(handoffs)-1, int(p*float64(len(handoffs))))]) / float64(time.Millisecond)
	}
	var sum float64
	for _, e := range eff {
		sum += e
	}
	b.ReportMetric(pct(0.50), "handoff-p50-ms")
	b.ReportMetric(pct(0.99), "handoff-p99-ms")
	b.ReportMetric(sum/float64(len(eff)), "efficiency")
	f.mu.Lock()
	b.Logf("dropped: %v; %d bytes sent", f.drops, f.bytesOut)
	f.mu.Unlock()
}
