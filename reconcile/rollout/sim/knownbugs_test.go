package sim

import (
	"os"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Protocol bugs the simulator found, kept as regression tests. A bug found
// and not fixed yet is skipped with skipKnownBug (a known, reported bug
// must not keep CI red for everyone); set SIM_KNOWN_BUGS=1 to run it.

func skipKnownBug(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("SIM_KNOWN_BUGS") == "" {
		t.Skip("known protocol bug, reported, not fixed yet (set SIM_KNOWN_BUGS=1 to run): " + why)
	}
}

// A host that is told a peer is dead (or unknown to memberlist: the
// reconcile loop's rule for an unknown row author) before it holds any row of it, then receives that
// peer's row showing it running in a slot, counts the slot as occupied
// for good: Node.PeerChanged schedules the recount "after one lease" only
// when the peer occupies a slot at that moment, and Node.onRow schedules
// none. Until the target changes, the host sees no free slot in a window
// of one and never claims (P2). Fixed: Node.update schedules the recount
// whichever came first. In production: a host restarts or joins
// after a slot holder left or was reaped from memberlist while its last
// row, still held by its peers, said running (its final row was lost: a
// UDP cut, or it crashed running).
func TestFixedBugDeadPeerRowBeforeReach(t *testing.T) {
	for _, tc := range []struct {
		name       string
		reachFirst bool
	}{
		{"row, then dead", false},
		{"dead, then row", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := rollout.TimingFor(rollout.LANParams, 3)
			st := rollout.Persisted{
				Roster: rollout.Roster{Epoch: 1, Members: []string{"a", "b", "c"}},
				Row:    rollout.Row{Installed: "r1", Revision: "r1", Phase: rollout.PhaseSucceeded},
			}
			now := time.Duration(0)
			n := rollout.NewNode(rollout.Config{Host: "a", App: "app", Group: "g", Timing: tm}, st, now)
			n.PeerChanged(now, "b", rollout.ReachDead)
			n.PeerChanged(now, "c", rollout.ReachDead)
			row := rollout.Message{Kind: rollout.KindRow, App: "app", From: "x", Row: rollout.Row{
				Host: "x", Seq: 1<<32 | 7, Revision: "r2", Phase: rollout.PhaseRunning, Slot: 0, Claim: 1<<32 | 5,
				Installed: "r1", Epoch: 1,
			}}
			now += time.Second
			dead := now
			if tc.reachFirst {
				n.PeerChanged(now, "x", rollout.ReachDead) // the reconcile loop's rule for an unknown row author: memberlist does not know x
				n.Receive(now, row)
			} else {
				n.Receive(now, row)
				n.PeerChanged(now, "x", rollout.ReachDead)
			}
			n.SetDesired(now, rollout.Desired{Revision: "r2", ManifestID: "m2", Deployment: manifest.Deployment{Strategy: manifest.OneAtATime}})
			// b and c are voters, dead: a cannot win the slot, but it must try
			// once x's slot is no longer counted, one lease after "dead", and
			// not before.
			var claimAt time.Duration
			for end := now + 3*tm.Lease; now < end && claimAt == 0; {
				for _, e := range n.TakeOutput().Send {
					if e.Msg.Kind == rollout.KindClaim {
						claimAt = now
					}
				}
				now = max(now+time.Millisecond, n.NextWake())
				n.Tick(now)
			}
			switch {
			case claimAt == 0:
				t.Errorf("no claim within three leases of x's death: %s", n.Debug())
			case claimAt < dead+tm.Lease:
				t.Errorf("claimed at %s, before x's slot may be taken (%s)", claimAt, dead+tm.Lease)
			}
		})
	}
}

// Fault seed 3894 (faultScenario(2894) at 5 hosts: rolling, batch 2 of a
// 4-voter roster resolved to a window of 1, min healthy 80%, loss 5%, pauses,
// gray cuts, joins) is the bug above in the simulator: h3 finished its
// slot-0 lifecycle at 7.2 s inside a UDP-only cut that cut it off alone at
// 5.05 s, so its final row and Release (datagrams) reached nobody, then it
// left gracefully before its next push-pull. h0, h2 and h4 were told
// "left" and do not count it; h1 and h5 crashed (32.2 s, 21.6 s) and
// restarted (45.3 s, 40.4 s), got h3's old running row by push-pull, and
// the route rule made h3 dead to them before the row arrived: both count
// slot 0 as occupied until the end (30 min); h1's own rollback never
// starts, so the run does not complete. Fixed with the bug above.
func TestFixedBugSeed3894(t *testing.T) {
	c := faultScenario(2894)
	c.Hosts = 5
	r := Run(c, 3894)
	if len(r.Violations) > 0 || !r.Completed {
		t.Errorf("seed 3894: completed %v, violations %v, faults %v", r.Completed, r.Violations, r.Faults)
	}
}

// Fault seed 1178 with 30 hosts and 10% loss (faultScenario(178): rolling,
// batch 2, crashes, one symmetric partition, clocks at ±ρ, slow hooks) never
// completes: Node.skipStalled goes on passing over hosts while nobody can
// start at all. The trace (Config.Trace): slot 1 free from 6.5 s, its next
// host not started (lost claims, then it crashed at 16.7 s): at 18.2 s 26
// hosts pass over it; a symmetric partition from 28.8 s to 1m22 leaves no
// majority, and every SkipAfter (one lease) each host passes over one more
// host (47.4 s, 59.1 s, 1m6.9 s, 1m10.8 s, ...). After the heal one host
// starts (2m26 s), then every waiting host believes it is first
// (eligBefore 0 on all 27): their duel backoff is the same (position 0), the
// claims split the votes, and the passing-over goes on (353 pass-overs up to
// 6m27 s, each host 27). In 30 min: 901k claims, 680k refusals naming a
// holder, no start after 2m26 s. Six more seeds of the fault probe at 20-40
// hosts with 10% loss (SIM_LOSS=0.1 SIM_HOSTS=20: 1091, 1331, 1541, 1686,
// 1753, 1959) and 11 with every fault at once do the same.
//
// Partly fixed: claim backoffs now use a host's real place in the order
// (counting the hosts it passed over), so hosts that all passed over
// everyone ahead no longer back off alike. Over fault seeds 1000-1059 at
// 10% loss the runs that should complete and did not went from 6 to 1
// (1016); this seed still stalls with every waiting host's eligBefore at 0,
// its budget 1 (min healthy 28 of 30), claims refused as held. Not fixed:
// the rule that passes over hosts needs a bound on how often it fires
// while no host can start at all.
func TestKnownBugSeed1178SkipCollapse(t *testing.T) {
	skipKnownBug(t, "P2 at 10% loss: passing over stalled hosts again and again leaves every waiting host first; their claims refuse each other")
	c := faultScenario(178)
	c.Hosts, c.Loss = 30, 0.1
	r := Run(c, 1178)
	if len(r.Violations) > 0 || !r.Completed {
		t.Errorf("seed 1178: completed %v (expected %v) after %s, violations %v, faults %v", r.Completed, r.Expected, r.RolloutTime, r.Violations, r.Faults)
	}
}
