package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Tests of the strategy seam on its own, without a Node.

func stratFor(d manifest.Deployment, n int) strategy {
	s := newStrategy()
	s.retarget(target{rev: "r2", attempt: 1, set: true})
	s.pol = Resolve(d, n)
	return s
}

func TestStrategyContrib(t *testing.T) {
	const lease = 4 * time.Second
	s := stratFor(manifest.Deployment{Strategy: manifest.OneAtATime}, 5)
	self := &peer{host: "me", hasRow: true, member: true}
	row := func(ph Phase) Row { return Row{Revision: "r2", Attempt: 1, Phase: ph, Installed: "r1", Epoch: 1} }
	for _, tc := range []struct {
		name string
		p    peer
		now  time.Duration
		want contrib
	}{
		{"waiting, reachable", peer{hasRow: true, member: true, row: row(PhaseWaiting)},
			0, contrib{counted: true, eligible: true, waiting: true}},
		{"waiting, passed over", peer{hasRow: true, member: true, row: row(PhaseWaiting), skipped: true},
			0, contrib{counted: true, waiting: true}},
		{"waiting, dead", peer{hasRow: true, member: true, row: row(PhaseWaiting), reach: ReachDead},
			0, contrib{counted: true, unreachWaiting: true, memberGone: true}},
		{"running in slot 2", peer{hasRow: true, member: true, row: func() Row { r := row(PhaseRunning); r.Claim, r.Slot = 9, 2; return r }()},
			0, contrib{counted: true, runningR: true, unhealthy: true, occupies: true, slot: 2}},
		{"running, dead for less than a lease", peer{hasRow: true, member: true, reach: ReachDead, since: time.Second, row: func() Row { r := row(PhaseRunning); r.Claim = 9; return r }()},
			lease, contrib{counted: true, runningR: true, unhealthy: true, occupies: true, memberGone: true}},
		{"running, dead for a lease", peer{hasRow: true, member: true, reach: ReachDead, row: func() Row { r := row(PhaseRunning); r.Claim = 9; return r }()},
			lease, contrib{counted: true, runningR: true, memberGone: true}},
		{"succeeded: a rollback candidate", peer{hasRow: true, member: true, row: func() Row { r := row(PhaseSucceeded); r.Installed = "r2"; return r }()},
			0, contrib{counted: true, installedR: true, rbEligible: true, rbCandidate: true}},
		{"halted", peer{hasRow: true, member: true, row: func() Row { r := row(PhaseFailed); r.Halted = true; return r }()},
			0, contrib{counted: true, halted: true, rbEligible: true, rbCandidate: true}},
		{"another attempt", peer{hasRow: true, member: true, row: func() Row { r := row(PhaseWaiting); r.Attempt = 2; return r }()},
			0, contrib{counted: true}},
		{"another revision, the target installed", peer{hasRow: true, member: true, row: Row{Revision: "r3", Installed: "r2"}},
			0, contrib{counted: true, installedR: true}},
		{"a joiner", peer{hasRow: true, row: row(PhaseIdle)},
			0, contrib{counted: true, joiner: true}},
		{"a voter that left", peer{hasRow: true, member: true, reach: ReachLeft, row: row(PhaseWaiting)},
			0, contrib{counted: true, memberLeft: true}},
		{"a drained voter's accepted value", peer{hasRow: true, member: true, row: func() Row {
			r := row(PhaseIdle)
			r.Drained, r.AccBallot, r.AccHash = true, Ballot{Round: 2, Node: "x"}, 77
			return r
		}()}, 0, contrib{counted: true, acc: accKey{Ballot{Round: 2, Node: "x"}, 77}}},
		{"no row", peer{member: true}, 0, contrib{}},
	} {
		p := tc.p
		p.host = "p"
		if got := s.contribOf(&p, tc.now, self, 1, false, lease); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

// TestStrategyCountersIncremental: counters kept by apply over random row
// updates equal a recount from scratch.
func TestStrategyCountersIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := stratFor(manifest.Deployment{Strategy: manifest.Rolling}, 20)
	var peers []*peer
	for i := range 20 {
		p := &peer{host: fmt.Sprintf("h%d", i), member: i < 16}
		p.rank, p.rbRank = s.ranks(p.host, p.member)
		peers = append(peers, p)
	}
	self := peers[0]
	phases := []Phase{PhaseWaiting, PhaseRunning, PhaseSucceeded, PhaseFailed, PhaseRollingBack}
	for step := range 2000 {
		p := peers[rng.IntN(len(peers))]
		p.hasRow = true
		p.row = Row{Revision: "r2", Attempt: 1, Phase: phases[rng.IntN(len(phases))], Installed: []string{"r1", "r2"}[rng.IntN(2)]}
		if p.row.Phase.Running() {
			p.row.Claim, p.row.Slot = 1, uint32(rng.IntN(3))
		}
		p.reach = []Reach{ReachAlive, ReachAlive, ReachDead, ReachSuspect}[rng.IntN(4)]
		p.skipped = rng.IntN(5) == 0
		c := s.contribOf(p, 0, self, 1, false, time.Second)
		s.apply(p, self, p.c, -1)
		s.apply(p, self, c, +1)
		p.c = c
		if step%100 != 0 {
			continue
		}
		fresh := stratFor(manifest.Deployment{Strategy: manifest.Rolling}, 20)
		for _, q := range peers {
			fresh.apply(q, self, fresh.contribOf(q, 0, self, 1, false, time.Second), +1)
		}
		a, b := s, fresh
		a.progressAt, b.progressAt = 0, 0
		if fmt.Sprintf("%+v", countersOf(&a)) != fmt.Sprintf("%+v", countersOf(&b)) {
			t.Fatalf("step %d: incremental %+v, recount %+v", step, countersOf(&a), countersOf(&b))
		}
	}
}

func countersOf(s *strategy) []any {
	return []any{s.runningR, s.installedR, s.unreachWaiting, s.unhealthy, s.haltSeen, s.waitingAll, s.joiners,
		s.membersGone, s.membersLeft, s.eligBefore, s.rbEligBefore, s.waitBefore, s.rbWaitBefore, s.occupied}
}

func TestStrategyForward(t *testing.T) {
	canary := manifest.Deployment{Strategy: manifest.Canary, Canary: manifest.Quantity{Set: true, Value: 2}, Batch: manifest.Quantity{Set: true, Value: 3}}
	rolling := manifest.Deployment{Strategy: manifest.Rolling, Batch: manifest.Quantity{Set: true, Value: 2}}
	explicit := rolling
	explicit.MinimumHealthy = manifest.Quantity{Set: true, Value: 7}
	const bake = 10 * time.Second
	for _, tc := range []struct {
		name                          string
		d                             manifest.Deployment
		installed, running, unhealthy int
		failed, unreachWaiting        int
		bakeFrom, now                 time.Duration
		window, budget                int
		ok                            bool
		wantBakeFrom                  time.Duration
	}{
		{name: "canary step", d: canary, installed: 1, running: 1, window: 2, budget: 0, ok: true},
		{name: "canary step, one more", d: canary, installed: 1, window: 2, budget: 1, ok: true},
		{name: "canary baked from now", d: canary, installed: 2, now: time.Second, ok: false, wantBakeFrom: time.Second},
		{name: "canary baking", d: canary, installed: 2, bakeFrom: time.Second, now: bake, ok: false, wantBakeFrom: time.Second},
		{name: "canary baked", d: canary, installed: 2, bakeFrom: time.Second, now: bake + time.Second, window: 3, budget: 1 << 30, ok: true, wantBakeFrom: time.Second},
		{name: "rolling: min healthy bounds the budget", d: rolling, unhealthy: 1, failed: 1, window: 2, budget: 10 - 8 - 2, ok: true},
		{name: "explicit min healthy counts unreachable waiting hosts", d: explicit, unhealthy: 1, unreachWaiting: 1, window: 2, budget: 10 - 7 - 2, ok: true},
	} {
		s := stratFor(tc.d, 10)
		s.installedR, s.runningR, s.unhealthy, s.unreachWaiting, s.bakeFrom = tc.installed, tc.running, tc.unhealthy, tc.unreachWaiting, tc.bakeFrom
		for i := range tc.failed {
			s.failed[fmt.Sprint(i)] = true
		}
		w, b, ok := s.forward(tc.now, bake)
		if ok != tc.ok || ok && (w != tc.window || b != tc.budget) || s.bakeFrom != tc.wantBakeFrom {
			t.Errorf("%s: window %d budget %d ok %v bakeFrom %s, want %d %d %v %s", tc.name, w, b, ok, s.bakeFrom, tc.window, tc.budget, tc.ok, tc.wantBakeFrom)
		}
	}
}

func TestStrategySlots(t *testing.T) {
	s := stratFor(manifest.Deployment{Strategy: manifest.Rolling, Batch: manifest.Quantity{Set: true, Value: 4}}, 10)
	s.occupied = map[uint32]int{1: 1, 2: 2, 7: 1} // 7 is outside the window (an older, larger one)
	if got := s.freeSlots(4); got != 2 {
		t.Errorf("free slots %d, want 2", got)
	}
	for pos, want := range []uint32{0, 3} {
		if got, ok := s.freeSlot(pos, 4); !ok || got != want {
			t.Errorf("free slot of index %d: %d %v, want %d", pos, got, ok, want)
		}
	}
	if _, ok := s.freeSlot(2, 4); ok {
		t.Errorf("a third free slot in a window of 4 with 2 taken")
	}
	if got := s.freeSlots(0); got != 10-3 {
		t.Errorf("all-at-once: %d free, want the group less the occupied", got)
	}
}

func TestStrategyRanksAndPassOver(t *testing.T) {
	s := stratFor(manifest.Deployment{Strategy: manifest.OneAtATime}, 4)
	peers := map[string]*peer{}
	for i, h := range []string{"a", "b", "c", "d", "j"} {
		p := &peer{host: h, member: h != "j", hasRow: true}
		p.rank, p.rbRank = s.ranks(h, p.member)
		p.c.eligible = true
		_ = i
		peers[h] = p
	}
	if j := peers["j"]; j.rank>>63 != 1 || j.rbRank>>63 != 1 {
		t.Errorf("a joiner does not go after the voters")
	}
	// self: the last voter in the order
	var voters []*peer
	for _, p := range peers {
		if p.member {
			voters = append(voters, p)
		}
	}
	slices.SortFunc(voters, func(a, b *peer) int { return cmpRank(a.rank, b.rank) })
	self := voters[3]
	got := hostsOf(passOver(peers, self, false, 2))
	if want := hostsOf(voters[:2]); !slices.Equal(got, want) {
		t.Errorf("passes over %v, want the first two ahead %v", got, want)
	}
	voters[0].skipped = true
	if got := hostsOf(passOver(peers, self, false, 5)); !slices.Equal(got, hostsOf(voters[1:3])) {
		t.Errorf("passes over %v, want those ahead not passed over yet", got)
	}
}

func TestStrategyLastGood(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rows   []Row
		halted bool
		want   string
	}{
		{"nobody has anything: the target", []Row{{Revision: "r2", Phase: PhaseWaiting}}, false, "r2"},
		{"the target, no rollout under way", []Row{{Revision: "r2", Installed: "r2", Phase: PhaseSucceeded}, {Revision: "r2", Installed: "r1", Phase: PhaseSucceeded}}, false, "r2"},
		{"under way: what most have", []Row{{Revision: "r2", Installed: "r1", Phase: PhaseWaiting}, {Revision: "r2", Installed: "r1"}, {Revision: "r2", Installed: "r2", Phase: PhaseSucceeded}}, false, "r1"},
		{"halted, nothing else installed", []Row{{Revision: "r2", Installed: "r2", Phase: PhaseSucceeded}}, true, ""},
		{"a tie: the smaller name", []Row{{Revision: "r2", Installed: "r1", Phase: PhaseWaiting}, {Installed: "r0"}}, false, "r0"},
	} {
		s := stratFor(manifest.Deployment{}, 3)
		self := &peer{host: "me", hasRow: true}
		peers := map[string]*peer{"me": self}
		for i, r := range tc.rows {
			peers[fmt.Sprint(i)] = &peer{host: fmt.Sprint(i), hasRow: true, row: r}
		}
		if got := s.lastGood(peers, self, tc.halted); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStrategyRetargetAndHalts(t *testing.T) {
	s := stratFor(manifest.Deployment{Strategy: manifest.OneAtATime}, 3)
	if s.halts(false) {
		t.Errorf("halts without failures")
	}
	s.failed["x"] = true
	s.bakeFrom, s.aborts = time.Second, 2
	if !s.halts(false) || s.halts(true) {
		t.Errorf("one-at-a-time: the first failure halts, once")
	}
	if s.retarget(s.tgt) {
		t.Errorf("the same target is new")
	}
	if !s.retarget(target{rev: "r3", attempt: 1, set: true}) || len(s.failed) != 0 || s.bakeFrom != 0 || s.aborts != 0 {
		t.Errorf("after a new target: failed %v bakeFrom %s aborts %d", s.failed, s.bakeFrom, s.aborts)
	}
	s.haltSeen = 1
	if !s.halts(false) {
		t.Errorf("a row that halted does not halt")
	}
	if !s.halted(map[string]Halt{"r3": {Attempt: 1}}) || s.halted(map[string]Halt{"r3": {Attempt: 2}}) {
		t.Errorf("halted reads the wrong attempt")
	}
}
