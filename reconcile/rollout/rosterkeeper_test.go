package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of the roster seam on its own (rosterKeeper), without a Node.

// peersOf builds a group view: each spec is "host:reach:epoch" with reach
// one of alive, dead, left, or "-" for a host memberlist knows without a
// row; epoch is the epoch its row shows (no epoch: no row).
func peersOf(self string, specs ...string) map[string]*peer {
	ps := map[string]*peer{self: {host: self, hasRow: true}}
	for _, s := range specs {
		f := strings.Split(s, ":")
		p := &peer{host: f[0], hasRow: len(f) > 2}
		switch f[1] {
		case "dead":
			p.reach = ReachDead
		case "left":
			p.reach = ReachLeft
		}
		if p.hasRow {
			p.row.Epoch = uint64(f[2][0] - '0')
		}
		ps[p.host] = p
	}
	return ps
}

func keeper(host string, expect int, r Roster) rosterKeeper {
	return newRosterKeeper(Config{Host: host, BootstrapExpect: expect, Timing: bootTiming, Nonce: "nonce-" + host}, &Persisted{Roster: r}, 0)
}

var abc = Roster{Epoch: 3, Members: []string{"a", "b", "c"}, Lineage: "L"}

func TestRosterKeeperQuorum(t *testing.T) {
	for _, tc := range []struct {
		r        Roster
		expect   int
		need     int
		isMember bool
	}{
		{abc, 0, 2, true},
		{Roster{Epoch: 1, Members: []string{"a", "b", "c", "d"}}, 0, 3, true},
		{Roster{Epoch: 1, Members: []string{"b", "c"}}, 0, 2, false},
		{Roster{}, 5, 3, false}, // the first roster's quorum: ⌊N/2⌋+1
		{Roster{}, 0, 1, false},
	} {
		k := keeper("a", tc.expect, tc.r)
		if k.need != tc.need || k.isMember != tc.isMember || k.hash != hashMembers(tc.r.Members) {
			t.Errorf("%+v expect %d: need %d member %v, want %d %v", tc.r, tc.expect, k.need, k.isMember, tc.need, tc.isMember)
		}
	}
}

// TestRosterKeeperPaxos runs one instance of §4.1 between three keepers,
// with an earlier accepted value at one of them: the proposer must finish
// it, lineage included, and every acceptor is frozen once it accepted.
func TestRosterKeeperPaxos(t *testing.T) {
	ks := map[string]*rosterKeeper{}
	for _, h := range abc.Members {
		k := keeper(h, 0, abc)
		ks[h] = &k
	}
	peers := peersOf("a", "b:alive:3", "c:alive:3")
	earlier := Ballot{Round: 4, Node: "c"}
	ks["c"].promised, ks["c"].accepted, ks["c"].accValue, ks["c"].accLineage = earlier, earlier, []string{"a", "c"}, "L"

	prep := ks["a"].propose(0, []string{"a", "b", "c", "d"})
	if prep.Kind != KindPrepare || prep.Epoch != 3 || prep.Ballot != (Ballot{Round: 1, Node: "a"}) {
		t.Fatalf("prepare %+v", prep)
	}
	if got := ks["a"].acceptors(peers); !slices.Equal(got, abc.Members) {
		t.Errorf("acceptors %v, want the roster", got)
	}
	// c has promised round 4: it refuses and says so; a learns the round.
	p, changed := ks["c"].promise(&prep, peers)
	p.From = "c"
	if p.OK || changed || p.Ballot != earlier {
		t.Fatalf("c's promise to a lower ballot: %+v changed %v", p, changed)
	}
	if _, fetch, ok := ks["a"].onPromise(&p); ok || fetch || ks["a"].seenRound != 4 {
		t.Fatalf("refusal: ok %v fetch %v seenRound %d", ok, fetch, ks["a"].seenRound)
	}
	ks["a"].prop = nil
	prep = ks["a"].propose(0, []string{"a", "b", "c", "d"})
	if prep.Ballot.Round != 5 {
		t.Fatalf("retry at round %d, want 5", prep.Ballot.Round)
	}
	var accept Message
	for _, h := range []string{"a", "c"} { // a quorum, c reporting its accepted value
		p, changed := ks[h].promise(&prep, peers)
		p.From = h
		if !p.OK || !changed {
			t.Fatalf("%s's promise: %+v", h, p)
		}
		var ok bool
		accept, _, ok = ks["a"].onPromise(&p)
		if ok != (h == "c") {
			t.Fatalf("after %s's promise: phase 2 %v", h, ok)
		}
	}
	if !slices.Equal(accept.Members, []string{"a", "c"}) || accept.Lineage != "L" || accept.Ballot != prep.Ballot {
		t.Fatalf("accept %+v, want the value accepted earlier", accept)
	}
	for _, h := range abc.Members {
		if !ks[h].accept(&accept, peers) { // b promised nothing, so nothing higher either
			t.Errorf("%s refuses the accept", h)
		}
		if !ks[h].frozen() {
			t.Errorf("%s not frozen after accepting", h)
		}
	}
	// A lower ballot is refused now; an empty value always.
	if ks["c"].accept(&Message{Epoch: 3, Ballot: Ballot{Round: 4, Node: "z"}, Members: []string{"x"}}, peers) {
		t.Errorf("accepted a lower ballot")
	}
	if ks["c"].accept(&Message{Epoch: 3, Ballot: Ballot{Round: 9, Node: "z"}}, peers) {
		t.Errorf("accepted an empty value")
	}
	// Another epoch, or a non-member: no acceptor.
	if p, _ := ks["a"].promise(&Message{Epoch: 2, Ballot: Ballot{Round: 99}}, peers); p.OK {
		t.Errorf("promised for another epoch")
	}
	out := keeper("z", 0, abc)
	if p, _ := out.promise(&Message{Epoch: 3, Ballot: Ballot{Round: 99}}, peers); p.OK {
		t.Errorf("a non-member promised")
	}
	// A refusal from a later epoch asks for the roster.
	ks["a"].prop = nil
	prep = ks["a"].propose(0, []string{"a"})
	if _, fetch, _ := ks["a"].onPromise(&Message{From: "b", Epoch: 4, Round: prep.Ballot.Round, Holder: "a"}); !fetch {
		t.Errorf("refusal of a later epoch does not fetch the roster")
	}
}

func TestRosterKeeperActivation(t *testing.T) {
	val := []string{"a", "c"}
	acc := accKey{Ballot{Round: 5, Node: "a"}, hashMembers(val)}
	for _, tc := range []struct {
		name    string
		drained int
		holds   bool   // this host accepted the value
		lineage string // accepted with it
		want    Roster
	}{
		{"a majority drained", 2, true, "L", Roster{Epoch: 4, Members: val, Lineage: "L"}},
		{"no majority", 1, true, "L", Roster{}},
		{"value not held here", 2, false, "L", Roster{}},
		{"an older drover's value keeps the lineage", 2, true, "", Roster{Epoch: 4, Members: val, Lineage: "L"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keeper("b", 0, abc)
			if tc.holds {
				k.accepted, k.accValue, k.accLineage = acc.b, val, tc.lineage
			}
			for range tc.drained {
				k.countDrained(acc, +1)
			}
			if due := k.takeActivationDue(); due != (tc.drained >= 2) || k.takeActivationDue() {
				t.Errorf("activation due %v", due)
			}
			r, ok := k.activation()
			if ok != (tc.want.Epoch > 0) || ok && (r.Epoch != tc.want.Epoch || !slices.Equal(r.Members, tc.want.Members) || r.Lineage != tc.want.Lineage) {
				t.Errorf("activation %+v %v, want %+v", r, ok, tc.want)
			}
			k.countDrained(acc, -tc.drained)
			if len(k.accCounts) != 0 {
				t.Errorf("counts %v after removing every drained member", k.accCounts)
			}
		})
	}
}

func TestRosterKeeperAnswers(t *testing.T) {
	e1 := Roster{Epoch: 1, Members: []string{"a", "b"}}
	for _, tc := range []struct {
		name     string
		expect   int
		mine     Roster
		m        Message
		adopt    bool
		conflict bool
	}{
		{"a newer epoch", 0, abc, Message{Epoch: 4, Members: []string{"a"}}, true, false},
		{"an older epoch", 0, abc, Message{Epoch: 2, Members: []string{"a"}}, false, false},
		{"no members", 0, Roster{}, Message{Epoch: 4}, false, false},
		{"the same first roster", 0, e1, Message{Epoch: 1, Members: []string{"a", "b"}}, false, false},
		{"A4: a larger first roster wins", 0, e1, Message{Epoch: 1, Members: []string{"a", "b", "c"}}, true, false},
		{"A4: a smaller one loses", 0, e1, Message{Epoch: 1, Members: []string{"c"}}, false, false},
		{"bootstrap_expect: another first roster is a conflict", 3, e1, Message{Epoch: 1, Members: []string{"a", "b", "c"}}, false, true},
	} {
		k := keeper("a", tc.expect, tc.mine)
		r, adopt, conflict := k.onAnswer(&tc.m)
		if adopt != tc.adopt || conflict != tc.conflict || adopt && r.Epoch != tc.m.Epoch {
			t.Errorf("%s: adopt %v conflict %v (%+v), want %v %v", tc.name, adopt, conflict, r, tc.adopt, tc.conflict)
		}
		row := Row{Epoch: tc.m.Epoch, RosterHash: hashMembers(tc.m.Members)}
		if got := k.seen("x", &row); (got == seenFetch) != k.wants(&row) {
			t.Errorf("%s: seen %d but wants %v", tc.name, got, k.wants(&row))
		}
	}
}

func TestRosterKeeperBootPlan(t *testing.T) {
	const delay = time.Second // bootTiming.BootstrapDelay
	for _, tc := range []struct {
		name   string
		host   string
		expect int
		now    time.Duration
		peers  []string
		value  []string
		why    string
	}{
		{"A4: bootstrap delay", "a", 0, 0, []string{"b:alive:0"}, nil, "bootstrap delay"},
		{"A4: the first by name forms it", "a", 0, delay, []string{"b:alive:0", "c:dead:0"}, []string{"a", "b"}, ""},
		{"A4: the others wait for it", "b", 0, delay, []string{"a:alive:0"}, nil, "waits for a"},
		{"A4: a host without a row may know the roster", "a", 0, delay, []string{"b:-"}, nil, "waiting for row of b"},
		{"a row with a roster: fetch it", "a", 3, delay, []string{"b:alive:2"}, nil, "fetching the roster of epoch 2 from b"},
		{"expect: all seen", "a", 3, delay, []string{"b:alive:0", "c:alive:0"}, []string{"a", "b", "c"}, ""},
		{"expect: too many", "a", 2, delay, []string{"b:alive:0", "c:alive:0"}, nil, "3 hosts without a roster, more than bootstrap_expect 2"},
		{"expect: no majority", "a", 5, delay, []string{"b:alive:0"}, nil, "waiting for bootstrap_expect 5 hosts, 2 seen"},
		{"expect: a majority waits for the partial delay", "a", 3, delay, []string{"b:alive:0"}, nil, "a majority forms it without the others in 9s"},
		{"expect: a majority after the partial delay", "a", 3, 10 * time.Second, []string{"b:alive:0"}, []string{"a", "b"}, ""},
		{"expect: not the first by name", "b", 3, delay, []string{"a:alive:0", "c:alive:0"}, nil, "waits for a"},
	} {
		k := keeper(tc.host, tc.expect, Roster{})
		pl := k.bootPlan(tc.now, peersOf(tc.host, tc.peers...))
		if !slices.Equal(pl.value, tc.value) || !strings.Contains(pl.why, tc.why) {
			t.Errorf("%s: value %v why %q, want %v %q", tc.name, pl.value, pl.why, tc.value, tc.why)
		}
	}
}

func TestRosterKeeperChange(t *testing.T) {
	tm := bootTiming
	for _, tc := range []struct {
		name   string
		host   string
		peers  []string
		counts groupCounts
		remove string
		now    time.Duration
		want   []string
	}{
		{"nothing to change", "a", []string{"b:alive:3", "c:alive:3"}, groupCounts{quiet: true}, "", time.Hour, nil},
		{"a leave is removed", "a", []string{"b:alive:3", "c:left:3"}, groupCounts{membersLeft: 1}, "", 0, nil}, // its turn has not come
		{"a leave is removed once its turn came", "a", []string{"b:alive:3", "c:left:3"}, groupCounts{membersLeft: 1}, "", 3*tm.ProposeDelay + time.Millisecond, []string{"a", "b"}},
		{"a joiner when quiet", "a", []string{"b:alive:3", "c:alive:3", "d:alive:0"}, groupCounts{quiet: true, joiners: 1}, "", 3*tm.ProposeDelay + time.Millisecond, []string{"a", "b", "c", "d"}},
		{"no joiner mid-rollout", "a", []string{"b:alive:3", "c:alive:3", "d:alive:0"}, groupCounts{joiners: 1}, "", time.Hour, nil},
		{"operator's removal", "a", []string{"b:alive:3", "c:alive:3"}, groupCounts{}, "c", 3*tm.ProposeDelay + time.Millisecond, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := keeper(tc.host, 0, abc)
			peers := peersOf(tc.host, tc.peers...)
			for _, p := range peers {
				p.member = k.members[p.host]
			}
			if tc.remove != "" {
				k.remove(tc.remove)
			}
			k.change(time.Millisecond, peers, tc.counts, false) // the wish starts (0 is no wish)
			got := k.change(tc.now, peers, tc.counts, false)
			if !slices.Equal(got, tc.want) {
				t.Errorf("change %v, want %v", got, tc.want)
			}
		})
	}
	// Frozen: it finishes what it accepted, whatever it would want.
	k := keeper("a", 0, abc)
	k.accepted, k.accValue = Ballot{Round: 1, Node: "b"}, []string{"a", "b"}
	k.change(time.Millisecond, peersOf("a"), groupCounts{}, false)
	if got := k.change(time.Hour, peersOf("a"), groupCounts{}, false); !slices.Equal(got, k.accValue) {
		t.Errorf("frozen: proposes %v, want the accepted value", got)
	}
	// Adopting a roster without a removed host forgets the removal.
	k.remove("c")
	k.remove("z")
	k.adopt(Roster{Epoch: 4, Members: []string{"a", "b", "z"}})
	if k.forceRemove["c"] || !k.forceRemove["z"] || k.frozen() || k.accValue != nil || k.cur.Epoch != 4 {
		t.Errorf("after adopt: forceRemove %v frozen %v", k.forceRemove, k.frozen())
	}
}

func TestRosterKeeperPersist(t *testing.T) {
	st := Persisted{Roster: abc, Promised: Ballot{Round: 2, Node: "b"}, Accepted: Ballot{Round: 1, Node: "b"}, AccValue: []string{"a"}, AccLineage: "L"}
	k := newRosterKeeper(Config{Host: "a"}, &st, 0)
	var p Persisted
	k.persist(&p)
	if p.Roster.Epoch != 3 || !slices.Equal(p.Roster.Members, abc.Members) || p.Roster.Lineage != "L" || p.Promised != st.Promised ||
		p.Accepted != st.Accepted || !slices.Equal(p.AccValue, st.AccValue) || p.AccLineage != "L" {
		t.Fatalf("persisted %+v, want %+v", p, st)
	}
	p.Roster.Members[0] = "x"
	if k.cur.Members[0] != "a" {
		t.Errorf("persist shares the members with the keeper")
	}
}
