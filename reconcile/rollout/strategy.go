package rollout

import (
	"slices"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// strategy is the seam of the rollout strategies (PROTOCOL.md §5):
// the target and its policy, the counters over the group's rows that
// decide who goes next (kept incrementally: one row update costs O(1)),
// the order (ranks), the window's free slots, halting, the canary bake,
// passing over stalled hosts, and what a fresh host installs. It reads
// the group through the peers passed in and changes no peer itself; the
// Node starts runs and claims on what it says (node.go).
type strategy struct {
	tgt target
	pol Policy

	// counters over peers (self included) for the target
	runningR, installedR, unreachWaiting, unhealthy, haltSeen int
	waitingAll, joiners, membersGone, membersLeft             int
	eligBefore, rbEligBefore                                  int
	// waitBefore, rbWaitBefore: the same, counting hosts passed over too:
	// the position in the order that claim backoffs use, so that hosts
	// that all passed over everyone ahead do not back off alike and duel.
	waitBefore, rbWaitBefore int
	occupied                 map[uint32]int
	failed                   map[string]bool // hosts known to have failed the target attempt

	bakeFrom time.Duration // 0: canary step not complete in view

	freshFails     int           // a fresh host's failed slotless installs in a row
	aborts         int           // lifecycles of the target attempt stopped because their lease lapsed
	freshNotBefore time.Duration // and when it may try again

	progressAt time.Duration // last change of what decides who goes next (SkipAfter)
}

func newStrategy() strategy {
	return strategy{occupied: map[uint32]int{}, failed: map[string]bool{}}
}

// contrib is a peer's contribution to the Node's counters, so that one row
// update costs O(1), not a pass over the group.
type contrib struct {
	counted        bool
	runningR       bool // running the target revision (or rolling it back)
	installedR     bool
	eligible       bool // waiting for the target, reachable
	rbEligible     bool // succeeded or failed on the target attempt, reachable
	unreachWaiting bool
	occupies       bool
	slot           uint32
	unhealthy      bool // running anything
	halted         bool // the row says the target attempt halted
	acc            accKey
	waiting        bool // waiting for the target, reachable
	rbCandidate    bool // succeeded or failed on the target attempt, reachable (passed over or not)
	joiner         bool // alive, has a row, not a voter
	memberGone     bool // a voter memberlist reports dead
	memberLeft     bool // a voter that left gracefully
}

type target struct {
	rev     string
	attempt uint32
	set     bool
}

// retarget moves to target t; it reports whether t is new, and then
// forgets what was of the old one (its failures, the bake, the aborts).
func (s *strategy) retarget(t target) bool {
	if t == s.tgt {
		return false
	}
	s.tgt = t
	s.bakeFrom = 0
	s.aborts = 0
	s.failed = map[string]bool{}
	return true
}

// halts reports whether the target attempt must halt now (halted: it has
// already): the policy's failure bound is reached, or a row says it halted.
func (s *strategy) halts(halted bool) bool {
	return !halted && (s.pol.Halts(len(s.failed)) || s.haltSeen > 0)
}

// ranks are host's places in the order of the target's forward run and of
// its rollback: hash(revision, host), voters first.
func (s *strategy) ranks(host string, member bool) (uint64, uint64) {
	r := hash2(s.tgt.rev, host) >> 1
	rb := hash2("rollback\x00"+s.tgt.rev, host) >> 1
	if !member {
		r |= 1 << 63
		rb |= 1 << 63
	}
	return r, rb
}

func cmpRank(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// contribOf is peer p's contribution at now; self is this host's peer,
// epoch the roster's (firstRoster: none yet, and bootstrap_expect chooses
// it, so that every drained host's accepted value counts), lease the lease
// an unreachable holder may still be running for.
func (s *strategy) contribOf(p *peer, now time.Duration, self *peer, epoch uint64, firstRoster bool, lease time.Duration) contrib {
	var c contrib
	if p.member && p != self && p.reach == ReachDead {
		c.counted, c.memberGone = true, true
	}
	if p.member && p != self && p.reach == ReachLeft {
		c.counted, c.memberLeft = true, true
	}
	if !p.hasRow || p.reach == ReachLeft {
		return c
	}
	r := &p.row
	c.joiner = !p.member && p.reach == ReachAlive
	c.counted = true
	gone := !p.reach.Reachable()
	// A running host counts as unhealthy while it may still be running: when
	// reachable, and for the lease bound after it became unreachable.
	mayRun := r.Phase.Running() && (!gone || p.reach == ReachSuspect || now < p.since+lease)
	c.unhealthy = mayRun
	if (p.member || epoch == 0 && firstRoster) && r.Epoch == epoch && r.Drained && !r.AccBallot.IsZero() {
		c.acc = accKey{r.AccBallot, r.AccHash}
	}
	if mayRun && r.Claim != 0 {
		c.occupies, c.slot = true, r.Slot
	}
	if !s.tgt.set || r.Revision != s.tgt.rev {
		c.installedR = s.tgt.set && r.Installed == s.tgt.rev
		return c
	}
	c.installedR = r.Installed == s.tgt.rev
	c.runningR = r.Phase == PhaseRunning
	sameAttempt := r.Attempt == s.tgt.attempt
	c.halted = sameAttempt && r.Halted
	if r.Phase == PhaseWaiting && sameAttempt {
		c.eligible = !gone && !p.skipped
		c.waiting = !gone
		c.unreachWaiting = gone
	}
	if sameAttempt && (r.Phase == PhaseSucceeded || r.Phase == PhaseFailed) && !gone {
		c.rbEligible = !p.skipped
		c.rbCandidate = true
	}
	return c
}

// apply adds contribution c of peer p, d times (+1 or -1), to the
// counters; the places before this host count only peers ranked before
// self. (The accepted roster value c.acc is the roster's to count.)
func (s *strategy) apply(p, self *peer, c contrib, d int) {
	if !c.counted {
		return
	}
	b := func(v bool) int {
		if v {
			return d
		}
		return 0
	}
	s.runningR += b(c.runningR)
	s.installedR += b(c.installedR)
	s.unreachWaiting += b(c.unreachWaiting)
	s.unhealthy += b(c.unhealthy)
	s.haltSeen += b(c.halted)
	s.waitingAll += b(c.waiting)
	s.joiners += b(c.joiner)
	s.membersGone += b(c.memberGone)
	s.membersLeft += b(c.memberLeft)
	if p != self {
		if c.eligible && p.rank < self.rank {
			s.eligBefore += d
		}
		if c.rbEligible && p.rbRank < self.rbRank {
			s.rbEligBefore += d
		}
		if c.waiting && p.rank < self.rank {
			s.waitBefore += d
		}
		if c.rbCandidate && p.rbRank < self.rbRank {
			s.rbWaitBefore += d
		}
	}
	if c.occupies {
		s.occupied[c.slot] += d
		if s.occupied[c.slot] == 0 {
			delete(s.occupied, c.slot)
		}
	}
}

// moved records at now that a peer's contribution changed from old to c:
// whether something that decides who goes next changed (SkipAfter).
func (s *strategy) moved(now time.Duration, old, c contrib) {
	if c.occupies != old.occupies || c.runningR != old.runningR || c.installedR != old.installedR ||
		c.eligible != old.eligible || c.rbEligible != old.rbEligible {
		s.progressAt = now // something that decides who goes next changed
	}
}

// resetCounts zeroes every counter before a recount at now.
func (s *strategy) resetCounts(now time.Duration) {
	s.runningR, s.installedR, s.unreachWaiting, s.unhealthy, s.haltSeen = 0, 0, 0, 0, 0
	s.waitingAll, s.joiners, s.membersGone, s.membersLeft = 0, 0, 0, 0
	s.eligBefore, s.rbEligBefore, s.waitBefore, s.rbWaitBefore = 0, 0, 0, 0
	s.occupied = map[uint32]int{}
	s.progressAt = now
}

// halted reports whether the target attempt halted, by the persisted halts.
func (s *strategy) halted(h map[string]Halt) bool {
	x, ok := h[s.tgt.rev]
	return ok && x.Attempt == s.tgt.attempt
}

// forward is the window and the budget (how many hosts may start) of a
// forward start at now: the canary step's until that many hosts succeeded,
// then, once the step baked for bake, the batch window; bounded by
// minimum_healthy when it gates starts. ok is false while the canary step
// bakes.
func (s *strategy) forward(now, bake time.Duration) (window, budget int, ok bool) {
	window = s.pol.Window
	budget = 1 << 30
	if s.pol.Strategy == manifest.Canary {
		if s.installedR < s.pol.Canary {
			window = s.pol.Canary
			budget = s.pol.Canary - s.installedR - s.runningR
			s.bakeFrom = 0
		} else {
			if s.bakeFrom == 0 {
				s.bakeFrom = now
			}
			if now < s.bakeFrom+bake {
				return 0, 0, false
			}
		}
	}
	if s.pol.MinHealthyGate >= 0 {
		unhealthy := s.unhealthy + len(s.failed)
		if s.pol.Explicit {
			unhealthy += s.unreachWaiting
		}
		budget = min(budget, s.pol.N-s.pol.MinHealthyGate-unhealthy)
	}
	return window, budget, true
}

// freeSlots counts the slots of the window no host occupies in this view.
func (s *strategy) freeSlots(window int) int {
	if window == 0 {
		window = s.pol.N
	}
	free := window
	for k := range s.occupied { // only slots with a count above zero are kept
		if k < uint32(window) {
			free--
		}
	}
	return free
}

// freeSlot is the free slot of index pos in the window, if there is one.
func (s *strategy) freeSlot(pos, window int) (uint32, bool) {
	if window == 0 {
		window = s.pol.N
	}
	free := 0
	for k := uint32(0); k < uint32(window); k++ {
		if s.occupied[k] > 0 {
			continue
		}
		if free == pos {
			return k, true
		}
		free++
	}
	return 0, false
}

// passOver picks the hosts to pass over (skipStalled): the first budget
// eligible hosts ahead of self in the order of the forward run or of the
// rollback, not passed over yet.
func passOver(peers map[string]*peer, self *peer, rollback bool, budget int) []*peer {
	// Only the hosts whose turn it is (the first `budget` ahead) are passed
	// over, so that every host's view names the same next host; passing
	// over everyone ahead would make them all claim at once.
	var ahead []*peer
	for _, p := range peers {
		if p == self || p.skipped {
			continue
		}
		if rollback && p.c.rbEligible && p.rbRank < self.rbRank || !rollback && p.c.eligible && p.rank < self.rank {
			ahead = append(ahead, p)
		}
	}
	slices.SortFunc(ahead, func(a, b *peer) int {
		if rollback {
			return cmpRank(a.rbRank, b.rbRank)
		}
		return cmpRank(a.rank, b.rank)
	})
	return ahead[:min(len(ahead), budget)]
}

// freshBackoff is how long a fresh host waits after its fails-th failed
// install in a row: the claim timeout doubled each time, at most 5 minutes.
func freshBackoff(t Timing, fails int) time.Duration {
	return min(t.ClaimTimeout<<min(fails, 20), 5*time.Minute)
}

// lastGood is the revision a fresh host installs without a slot: the target
// when its rollout is not under way (or nobody has anything), otherwise the
// revision most hosts have installed. Only hosts that have something
// installed say whether a rollout is under way: a fresh host's row is
// "waiting" for the target while it installs without a slot, and if that
// counted, fresh hosts of a new group would wait for each other forever.
// halted: the target attempt halted.
func (s *strategy) lastGood(peers map[string]*peer, self *peer, halted bool) string {
	counts := map[string]int{}
	inFlight := false
	for _, p := range peers {
		if p == self || !p.hasRow || p.row.Installed == "" {
			continue
		}
		counts[p.row.Installed]++
		if p.row.Revision == s.tgt.rev && (p.row.Phase == PhaseWaiting || p.row.Phase.Running() || p.row.Phase == PhaseFailed) {
			inFlight = true
		}
	}
	if halted {
		inFlight = true
	}
	if len(counts) == 0 || (!inFlight && counts[s.tgt.rev] > 0) {
		if halted {
			return ""
		}
		return s.tgt.rev
	}
	best, bc := "", -1
	for rev, c := range counts {
		if rev == s.tgt.rev && inFlight {
			continue
		}
		if c > bc || c == bc && rev < best {
			best, bc = rev, c
		}
	}
	return best
}
