package rollout

import (
	"slices"
	"testing"
	"time"
)

// TestVoterGrantRule drives one voter through scripts of claims and
// releases and checks every answer against the grantor rule of
// PROTOCOL.md §3.
func TestVoterGrantRule(t *testing.T) {
	const L = 4 * time.Second
	view := voterView{epoch: 3, member: true, lease: L}
	claim := func(slot uint32, id uint64) *Message {
		return &Message{Kind: KindClaim, Epoch: 3, Slot: slot, Claim: id, Round: 1, Lease: L}
	}
	type step struct {
		at     time.Duration
		from   string
		m      *Message
		view   func(voterView) voterView // nil: view
		ok     bool
		holder string
		// release, when set, is applied instead of a claim: the holder
		// from releases claim m.Claim of slot m.Slot; ok is its result.
		release bool
		// releasedUpTo: from's row says it released up to m.Claim.
		releasedUpTo bool
	}
	tests := []struct {
		name       string
		quarantine time.Duration
		steps      []step
		locks      map[uint32]lock // after the script
	}{
		{name: "free slot granted, the same claim renewed", steps: []step{
			{at: 0, from: "a", m: claim(0, 10), ok: true},
			{at: time.Second, from: "a", m: claim(0, 10), ok: true},
		}, locks: map[uint32]lock{0: {"a", 10, time.Second + L}}},
		{name: "held slot refused, naming the holder", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{from: "b", m: claim(0, 20), holder: "a"},
			{from: "b", m: claim(1, 20), ok: true},
		}},
		{name: "an expired lock is taken over", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{at: L, from: "b", m: claim(0, 20), ok: true},
		}, locks: map[uint32]lock{0: {"b", 20, 2 * L}}},
		{name: "an older claim of the holder is refused, a newer one replaces its lock", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{from: "a", m: claim(0, 9), holder: "a"},
			{from: "a", m: claim(1, 11), ok: true},
		}, locks: map[uint32]lock{1: {"a", 11, L}}},
		{name: "quarantine after a restart", quarantine: L, steps: []step{
			{at: L - 1, from: "a", m: claim(0, 10)},
			{at: L, from: "a", m: claim(0, 10), ok: true},
		}},
		{name: "another epoch, or not a voter", steps: []step{
			{from: "a", m: &Message{Epoch: 2, Slot: 0, Claim: 10, Lease: L}},
			{from: "a", m: claim(0, 10), view: func(v voterView) voterView { v.member = false; return v }},
		}, locks: map[uint32]lock{}},
		{name: "a claim its holder already released", steps: []step{
			{from: "a", m: claim(0, 10), view: func(v voterView) voterView { v.released, v.known = 10, true; return v }},
			{from: "a", m: claim(0, 11), view: func(v voterView) voterView { v.released, v.known = 10, true; return v }, ok: true},
		}},
		{name: "frozen: a renewal of a valid lease only", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{at: time.Second, from: "a", m: claim(0, 10), view: frozen, ok: true},
			{at: time.Second, from: "b", m: claim(1, 20), view: frozen},
			{at: time.Second + L, from: "a", m: claim(0, 10), view: frozen}, // expired: no renewal
		}, locks: map[uint32]lock{0: {"a", 10, time.Second + L}}},
		{name: "the lease asked is honoured, clamped to maxLease, default when none", steps: []step{
			{from: "a", m: &Message{Epoch: 3, Slot: 0, Claim: 10, Lease: time.Second}, ok: true},
			{from: "b", m: &Message{Epoch: 3, Slot: 1, Claim: 20, Lease: time.Hour}, ok: true},
			{from: "c", m: &Message{Epoch: 3, Slot: 2, Claim: 30}, ok: true},
		}, locks: map[uint32]lock{0: {"a", 10, time.Second}, 1: {"b", 20, maxLease}, 2: {"c", 30, L}}},
		{name: "release frees the holder's claim only", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{from: "b", m: claim(0, 10), release: true},
			{from: "a", m: claim(0, 9), release: true},
			{from: "a", m: claim(0, 10), release: true, ok: true},
			{from: "b", m: claim(0, 20), ok: true},
		}, locks: map[uint32]lock{0: {"b", 20, L}}},
		{name: "a row that released the claim frees the lock", steps: []step{
			{from: "a", m: claim(0, 10), ok: true},
			{from: "a", m: claim(0, 9), releasedUpTo: true},
			{from: "b", m: claim(0, 20), holder: "a"},
			{from: "a", m: claim(0, 10), releasedUpTo: true},
			{from: "b", m: claim(0, 20), ok: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVoter()
			v.quarantine(tt.quarantine)
			for i, s := range tt.steps {
				w := view
				if s.view != nil {
					w = s.view(w)
				}
				switch {
				case s.release:
					if ok := v.release(s.from, s.m.Slot, s.m.Claim); ok != s.ok {
						t.Errorf("step %d: release %v, want %v", i, ok, s.ok)
					}
				case s.releasedUpTo:
					v.releasedUpTo(s.from, s.m.Claim)
				default:
					ok, holder := v.grant(s.at, s.from, s.m, w)
					if ok != s.ok || holder != s.holder {
						t.Errorf("step %d: %s claims slot %d (claim %d) at %s: ok %v holder %q, want %v %q",
							i, s.from, s.m.Slot, s.m.Claim, s.at, ok, holder, s.ok, s.holder)
					}
				}
			}
			if tt.locks != nil {
				got := map[uint32]lock{}
				for s, l := range v.locks {
					got[s] = *l
					if v.lockOf[l.holder] != s {
						t.Errorf("lockOf[%s] = %d, want %d", l.holder, v.lockOf[l.holder], s)
					}
				}
				if len(v.lockOf) != len(v.locks) {
					t.Errorf("lockOf %v does not mirror locks %v", v.lockOf, got)
				}
				if !mapsEqual(got, tt.locks) {
					t.Errorf("locks %v, want %v", got, tt.locks)
				}
			}
		})
	}
}

func frozen(v voterView) voterView { v.frozen = true; return v }

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestVoterActive(t *testing.T) {
	v := newVoter()
	v.grant(0, "a", &Message{Slot: 0, Claim: 1, Lease: time.Second}, voterView{member: true})
	v.grant(0, "b", &Message{Slot: 1, Claim: 2, Lease: 2 * time.Second}, voterView{member: true})
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{0, 2}, {time.Second - 1, 2}, {time.Second, 1}, {2 * time.Second, 0}} {
		if got := v.active(c.at); got != c.want {
			t.Errorf("active at %s: %d, want %d", c.at, got, c.want)
		}
	}
}

func TestClaimVoters(t *testing.T) {
	small := []string{"a", "b", "c", "d", "e"}
	if got := claimVoters(small, 3, "a", 7); !slices.Equal(got, small) {
		t.Errorf("5 voters: asks %v, want all", got)
	}
	var big []string
	for i := range 40 {
		big = append(big, string(rune('A'+i)))
	}
	starts := map[string]bool{}
	for id := uint64(1); id <= 20; id++ {
		got := claimVoters(big, 21, "h", id)
		if len(got) != 21+5 {
			t.Fatalf("40 voters: asks %d, want a majority plus 40/8", len(got))
		}
		if !slices.Equal(got, claimVoters(big, 21, "h", id)) {
			t.Fatalf("claim %d: voters differ between calls", id)
		}
		i := slices.Index(big, got[0])
		for k, v := range got {
			if v != big[(i+k)%len(big)] {
				t.Fatalf("claim %d: %v is not a window of the roster", id, got)
			}
		}
		starts[got[0]] = true
	}
	if len(starts) < 5 {
		t.Errorf("20 claims start at %d places only: load does not spread", len(starts))
	}
}

// TestClaimScript drives one claim through scripts of answers and ticks:
// what each returns, and when the grants keep the slot.
func TestClaimScript(t *testing.T) {
	const (
		timeout  = 200 * time.Millisecond
		renew    = time.Second
		validity = 3 * time.Second
		recheck  = 4 * time.Millisecond
	)
	type step struct {
		at time.Duration
		// one of: an answer from voter (ok, round; stale for a refusal),
		// a tick, a new round.
		from      string
		ok, stale bool
		round     uint64
		tick      bool
		newRound  bool
		want      int // grantOutcome or tickOutcome
		recheckTo []string
		hold      time.Duration // holdUntil after the step, when check
		check     bool
	}
	g := func(at time.Duration, from string, ok bool, round uint64, want grantOutcome, hold time.Duration) step {
		return step{at: at, from: from, ok: ok, round: round, want: int(want), hold: hold, check: hold >= 0}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "a majority acquires; renewals extend the hold", steps: []step{
			g(0, "a", true, 1, grantCounted, 0),
			g(1, "a", true, 1, grantCounted, 0), // duplicate
			g(2, "b", true, 1, grantMajority, validity),
			{at: 3, tick: true, want: int(tickNone), hold: validity, check: true}, // acquired at 3 by the test
			{at: renew + 3, tick: true, want: int(tickRenew), hold: validity, check: true},
			{at: renew + 3, newRound: true, hold: validity, check: true},
			g(renew+4, "a", true, 2, grantCounted, validity),         // one of round 2, one of round 1
			g(renew+5, "b", true, 2, grantCounted, renew+3+validity), // both of round 2
			{at: renew + 3 + validity, tick: true, want: int(tickLapsed), hold: renew + 3 + validity, check: true},
			g(renew+3+validity, "c", true, 2, grantLapsed, -1),
		}},
		{name: "refusals beyond what a majority allows abandon it", steps: []step{
			g(0, "a", false, 1, grantCounted, 0),
			g(0, "a", false, 2, grantIgnored, 0), // of a round not sent
			g(0, "b", false, 1, grantRefused, 0),
		}},
		{name: "a stale refusal is asked again once, then counts", steps: []step{
			{at: 0, from: "a", stale: true, round: 1, want: int(grantCounted)},
			{at: 1, from: "b", stale: true, round: 1, want: int(grantCounted)},
			{at: recheck - 1, tick: true, want: int(tickNone)},
			{at: recheck, tick: true, want: int(tickRecheck), recheckTo: []string{"a", "b"}},
			{at: recheck + 1, tick: true, want: int(tickNone)},
			{at: recheck + 2, from: "a", stale: true, round: 1, want: int(grantCounted)},
			{at: recheck + 3, from: "b", stale: true, round: 1, want: int(grantRefused)},
		}},
		{name: "the round's deadline abandons it", steps: []step{
			g(0, "a", true, 1, grantCounted, 0),
			{at: timeout - 1, tick: true, want: int(tickNone)},
			{at: timeout, tick: true, want: int(tickAbandon)},
		}},
		{name: "grants older than eight rounds no longer count", steps: []step{
			g(0, "a", true, 1, grantCounted, 0),
			{at: 1, newRound: true}, {at: 2, newRound: true}, {at: 3, newRound: true}, {at: 4, newRound: true},
			{at: 5, newRound: true}, {at: 6, newRound: true}, {at: 7, newRound: true},
			{at: 8, newRound: true, hold: 0, check: true},
			g(9, "a", true, 1, grantIgnored, 0),
			g(9, "b", true, 2, grantCounted, 0),           // a's grant of round 1 went with it
			g(9, "a", true, 9, grantMajority, 1+validity), // the older round of the two decides
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClaim(2, 77, 1, 4*time.Second, validity, 2, 3, []string{"a", "b", "c"}, false, "r2")
			c.newRound(0, timeout, "r2", 5)
			for i, s := range tt.steps {
				switch {
				case s.newRound:
					m := c.newRound(s.at, timeout, "r2", 5)
					if m.Kind != KindClaim || m.Claim != 77 || m.Slot != 2 || m.Round != c.round || m.Revision != "r2" || m.Attempt != 5 {
						t.Errorf("step %d: round message %+v", i, m)
					}
				case s.tick:
					what, to := c.tick(s.at, renew)
					if int(what) != s.want || !slices.Equal(to, s.recheckTo) {
						t.Errorf("step %d: tick at %s: %d %v, want %d %v", i, s.at, what, to, s.want, s.recheckTo)
					}
				default:
					m := &Message{Kind: KindGrant, From: s.from, Slot: 2, Claim: 77, Round: s.round, OK: s.ok}
					if got := c.grant(s.at, m, s.stale, recheck); int(got) != s.want {
						t.Errorf("step %d: answer of %s (ok %v, round %d) at %s: %d, want %d", i, s.from, s.ok, s.round, s.at, got, s.want)
					}
					if grantOutcome(s.want) == grantMajority {
						c.acquire(s.at+1, renew)
						if c.fence != c.holdUntil() {
							t.Errorf("step %d: fence %s, want the hold %s", i, c.fence, c.holdUntil())
						}
					}
				}
				if h := c.holdUntil(); s.check && h != s.hold {
					t.Errorf("step %d: holdUntil %s, want %s", i, h, s.hold)
				}
			}
		})
	}
}

func TestClaimFenceMovesForwardOnly(t *testing.T) {
	c := newClaim(0, 1, 1, time.Second, 900*time.Millisecond, 1, 1, []string{"a"}, false, "r")
	c.newRound(0, time.Second, "r", 1)
	c.grant(0, &Message{From: "a", Claim: 1, Round: 1, OK: true}, false, 0)
	c.acquire(0, 300*time.Millisecond)
	if _, moved := c.extendFence(); moved {
		t.Fatalf("fence moved without a newer round")
	}
	c.newRound(300*time.Millisecond, time.Second, "r", 1)
	c.grant(310*time.Millisecond, &Message{From: "a", Claim: 1, Round: 2, OK: true}, false, 0)
	if f, moved := c.extendFence(); !moved || f != 1200*time.Millisecond {
		t.Errorf("fence %s moved %v, want 1.2s", f, moved)
	}
	// a lost claim counts nothing more
	c.lost = true
	if got := c.grant(320*time.Millisecond, &Message{From: "a", Claim: 1, Round: 2, OK: true}, false, 0); got != grantIgnored {
		t.Errorf("a lost claim counted an answer: %d", got)
	}
	if what, _ := c.tick(2*time.Second, time.Second); what != tickNone {
		t.Errorf("a lost claim ticks %d", what)
	}
}

func TestClaimantBackoff(t *testing.T) {
	const timeout = 100 * time.Millisecond
	var cl claimant
	prev := time.Duration(-1)
	for pos := 0; pos <= 10; pos++ {
		cl.retries = 0
		cl.backoff(0, "h", pos, timeout)
		lo := timeout * time.Duration(1+min(pos, 8))
		if cl.notBefore < lo || cl.notBefore > lo+timeout/2 {
			t.Errorf("place %d: backoff %s, want within [%s, %s]", pos, cl.notBefore, lo, lo+timeout/2)
		}
		if pos <= 8 && cl.notBefore <= prev-timeout/2 {
			t.Errorf("place %d: backoff %s does not grow", pos, cl.notBefore)
		}
		prev = cl.notBefore
	}
	cl.cur = &claimState{id: 3, voters: []string{"a"}}
	c := cl.end()
	cl.queueRelease(Message{Kind: KindRelease, Claim: c.id}, c.voters)
	if cl.cur != nil || c.id != 3 {
		t.Fatalf("end: %+v, cur %v", c, cl.cur)
	}
	if m, to := cl.takeRelease(); m == nil || m.Claim != 3 || !slices.Equal(to, []string{"a"}) {
		t.Errorf("takeRelease: %+v %v", m, to)
	}
	if m, _ := cl.takeRelease(); m != nil {
		t.Errorf("released twice: %+v", m)
	}
}
