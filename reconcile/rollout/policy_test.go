package rollout

import (
	"testing"

	"github.com/drover-dev/drover/reconcile/manifest"
)

func qty(v int) manifest.Quantity  { return manifest.Quantity{Set: true, Value: v} }
func pctq(v int) manifest.Quantity { return manifest.Quantity{Set: true, Percent: true, Value: v} }

func TestMinHealthyOfRoundsUpLikeCodeDeploy(t *testing.T) {
	for _, tc := range []struct {
		q    manifest.Quantity
		n    int
		want int
	}{
		{pctq(40), 9, 4},  // CodeDeploy's own example: 40% of 9 → 4 healthy, 5 at a time
		{pctq(75), 10, 8}, // 7.5 rounds up
		{pctq(50), 10, 5},
		{pctq(100), 10, 9}, // clamped to n−1: one host must be able to proceed
		{pctq(0), 10, 0},
		{qty(6), 9, 6}, // HOST_COUNT example: 6 of 9 → 3 at a time
		{qty(20), 9, 8},
	} {
		if got := MinHealthyOf(tc.q, tc.n); got != tc.want {
			t.Errorf("MinHealthyOf(%+v, %d) = %d, want %d", tc.q, tc.n, got, tc.want)
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		d      manifest.Deployment
		n      int
		window int
		haltAt int // smallest failure count that halts
		gate   int
	}{
		{"one-at-a-time halts at the first failure", manifest.Deployment{Strategy: manifest.OneAtATime}, 10, 1, 1, 9},
		{"rolling allows batch hosts down", manifest.Deployment{Strategy: manifest.Rolling, Batch: pctq(25)}, 10, 2, 2, 8},
		{"rolling percent rounds down, at least one", manifest.Deployment{Strategy: manifest.Rolling, Batch: pctq(5)}, 10, 1, 1, 9},
		{"all-at-once halts only when all failed", manifest.Deployment{Strategy: manifest.AllAtOnce}, 10, 0, 10, -1},
		{"canary halts at the first failure, gates by window", manifest.Deployment{Strategy: manifest.Canary, Canary: qty(2), Batch: qty(5)}, 10, 5, 1, -1},
		{"explicit minimum healthy", manifest.Deployment{Strategy: manifest.Rolling, Batch: qty(5), MinimumHealthy: pctq(75)}, 10, 5, 2, 8}, // 8 healthy needed: a third start is impossible after 2 failures
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Resolve(tc.d, tc.n)
			if p.Window != tc.window {
				t.Errorf("window %d, want %d", p.Window, tc.window)
			}
			if p.MinHealthyGate != tc.gate {
				t.Errorf("gate %d, want %d", p.MinHealthyGate, tc.gate)
			}
			for f := 0; f <= tc.n; f++ {
				if got, want := p.Halts(f), f >= tc.haltAt; got != want {
					t.Errorf("Halts(%d) = %v, want %v", f, got, want)
				}
			}
		})
	}
}

func TestTimingFromMemberlist(t *testing.T) {
	lan := TimingFor(LANParams, 20)
	if lan.Lease <= SuspicionTimeout(LANParams, 20) {
		t.Errorf("lease %s not above the suspicion timeout %s", lan.Lease, SuspicionTimeout(LANParams, 20))
	}
	if v := lan.holderValidity(lan.Lease); v >= lan.Lease-lan.StopMargin || v <= lan.Lease/2 {
		t.Errorf("holder validity %s for lease %s, stop margin %s: want a little under lease - margin", v, lan.Lease, lan.StopMargin)
	}
	if g := lan.FenceGrace(); g <= 0 || 2*g > lan.StopMargin {
		t.Errorf("fence grace %s does not fit the stop margin %s", g, lan.StopMargin)
	}
	if lan.CrashBound() != lan.Lease+lan.ClaimTimeout {
		t.Errorf("crash bound %s", lan.CrashBound())
	}
}
