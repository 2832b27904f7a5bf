package rollout

import (
	"math"
	"time"
)

// MemberlistParams are the memberlist settings the protocol's timeouts derive
// from (PROTOCOL.md §6).
type MemberlistParams struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	SuspicionMult  int
	GossipInterval time.Duration
}

// LANParams are memberlist.DefaultLANConfig's values.
var LANParams = MemberlistParams{ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, SuspicionMult: 4, GossipInterval: 200 * time.Millisecond}

// Timing holds every timeout of the protocol.
type Timing struct {
	Lease          time.Duration // L: a grant's life on the grantor's clock
	Renew          time.Duration // L/3
	ClaimTimeout   time.Duration // a claim round without a majority is abandoned
	Quarantine     time.Duration // a restarted voter grants nothing for this long
	ProposeDelay   time.Duration // roster changes wait for membership to settle
	RemoveAfter    time.Duration // a dead voter is removed after this long
	BootstrapDelay time.Duration // no roster seen for this long: bootstrap one
	// BootstrapPartial: with bootstrap_expect N, a majority of N hosts that
	// has seen no other host join it for this long forms the first roster
	// without the missing ones (they join it later). 0: wait for all N.
	BootstrapPartial time.Duration
	DriftRate        float64       // ρ: bound on any clock's rate error
	StopMargin       time.Duration // time the runner needs to stop a lifecycle (TERM→KILL)
	// SkipAfter: a waiting host ahead in the order that has not started
	// this long after a slot was free (in this host's view) is passed over
	// for the rest of the rollout (0: never). Liveness only (§5).
	SkipAfter time.Duration
}

// FenceGrace is the TERM→KILL grace of a fenced lifecycle: half the stop
// margin, the other half covers the watchdog's and the scheduler's delay.
func (t Timing) FenceGrace() time.Duration { return t.StopMargin / 2 }

// SuspicionTimeout is memberlist's: mult · max(1, log10 n) · probe interval.
func SuspicionTimeout(p MemberlistParams, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(p.SuspicionMult) * scale * float64(p.ProbeInterval))
}

// TimingFor derives the protocol's timeouts from memberlist's parameters for a
// group of about n hosts.
func TimingFor(p MemberlistParams, n int) Timing {
	ts := SuspicionTimeout(p, n)
	lease := max(2*ts, 4*p.ProbeInterval)
	return Timing{
		Lease:          lease,
		Renew:          lease / 3,
		ClaimTimeout:   max(2*p.ProbeTimeout, 4*p.GossipInterval),
		Quarantine:     lease,
		ProposeDelay:   ts,
		RemoveAfter:    max(10*time.Minute, 60*ts),
		BootstrapDelay: 4*p.GossipInterval + 2*p.ProbeInterval,
		// Long enough for hosts booting together to show up (and for their
		// rows to come by push-pull when datagrams are cut), short enough
		// that a host that failed to come up does not hold up the group.
		BootstrapPartial: 10 * (4*p.GossipInterval + 2*p.ProbeInterval),
		DriftRate:        0.01,
		// The fence stops a lifecycle this long before any voter's lock can
		// have expired: TERM at the fence, KILL half a margin later.
		StopMargin: lease / 5,
		SkipAfter:  lease,
	}
}

// holderValidity is how long after sending a claim round the holder may rely
// on a grant of that round: L·(1−ρ)/(1+ρ) − StopMargin.
func (t Timing) holderValidity(lease time.Duration) time.Duration {
	v := time.Duration(float64(lease)*(1-t.DriftRate)/(1+t.DriftRate)) - t.StopMargin
	if v < 0 {
		return 0
	}
	return v
}

// CrashBound is how long a crashed slot holder can block its slot after its
// last renewal (P2).
func (t Timing) CrashBound() time.Duration { return t.Lease + t.ClaimTimeout }
