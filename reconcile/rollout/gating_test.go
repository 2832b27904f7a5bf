package rollout

import (
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// Tests of the gates seam on its own (gating, gateCtx), without a Node: a
// group is a list of peers in the order (rank = position).

type gp struct {
	host      string
	phase     Phase
	installed bool // the target is installed
	reach     Reach
	nonMember bool
	gates     []GateState
}

// gateGroup builds the context of host self over the peers ps, for target
// r2 attempt 1 and policy pol.
func gateGroup(self string, pol Policy, gs []manifest.Gate, ps ...gp) *gateCtx {
	c := &gateCtx{host: self, rev: "r2", attempt: 1, gates: gs, pol: pol, peers: map[string]*peer{}}
	for i, x := range ps {
		p := &peer{host: x.host, hasRow: true, reach: x.reach, member: !x.nonMember, rank: uint64(i)}
		p.row = Row{Host: x.host, Revision: "r2", Attempt: 1, Phase: x.phase, Installed: "r1", Gates: x.gates}
		if x.installed {
			p.row.Installed = "r2"
		}
		p.c.unhealthy = x.phase.Running() && x.reach.Reachable()
		c.peers[x.host] = p
		if x.host == self {
			c.self = p
		}
	}
	return c
}

func TestGateStepAt(t *testing.T) {
	for _, tc := range []struct {
		pol  Policy
		want []int // the step of positions 0..
	}{
		{Policy{Strategy: manifest.Canary, Canary: 2, Window: 3}, []int{0, 0, 1, 1, 1, 2, 2}},
		{Policy{Strategy: manifest.Rolling, Window: 2}, []int{0, 0, 1, 1, 2}},
		{Policy{Strategy: manifest.OneAtATime, Window: 1}, []int{0, 1, 2, 3}},
		{Policy{Strategy: manifest.AllAtOnce, Window: 0}, []int{0, 0, 0}},
	} {
		c := gateCtx{pol: tc.pol}
		var got []int
		for pos := range tc.want {
			got = append(got, c.stepAt(pos))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: steps %v, want %v", tc.pol, got, tc.want)
		}
	}
}

func TestGateViewAndMerge(t *testing.T) {
	err := promGate("err", manifest.WhenBatch, 2, 2, 2)
	pol := Policy{Strategy: manifest.Rolling, Window: 2}
	st := func(v gate.Verdict, taken uint32, gen uint64) GateState {
		return GateState{Name: "err", Step: 0, Gen: gen, Verdict: v, Taken: taken}
	}
	for _, tc := range []struct {
		name     string
		ps       []gp
		steps    [][]string
		complete []bool
		waiting  []bool
		self     int
		merged   gate.Verdict
		owner    string
		allow    bool
	}{
		{name: "a pass outranks a pending state with more samples", ps: []gp{
			{host: "a", phase: PhaseSucceeded, installed: true, gates: []GateState{st(gate.VerdictPass, 2, 0)}},
			{host: "b", phase: PhaseSucceeded, installed: true, gates: []GateState{st(gate.VerdictPending, 5, 0)}},
			{host: "c", phase: PhaseRunning},
			{host: "d", phase: PhaseWaiting},
			{host: "e", phase: PhaseWaiting, reach: ReachDead}, // takes its turn at the end
		}, steps: [][]string{{"a", "b"}, {"c", "d"}}, complete: []bool{true, false}, waiting: []bool{false, true},
			self: 1, merged: gate.VerdictPass, owner: "a", allow: true},
		{name: "a fail outranks a pass", ps: []gp{
			{host: "a", phase: PhaseSucceeded, installed: true, gates: []GateState{st(gate.VerdictPass, 2, 0)}},
			{host: "b", phase: PhaseSucceeded, installed: true, gates: []GateState{st(gate.VerdictFail, 1, 0)}},
			{host: "d", phase: PhaseWaiting},
		}, steps: [][]string{{"a", "b"}, {"d"}}, complete: []bool{true, false}, waiting: []bool{false, true},
			self: 1, merged: gate.VerdictFail, owner: "b"},
		{name: "an inconclusive state of an older gen does not count", ps: []gp{
			{host: "a", phase: PhaseSucceeded, installed: true, gates: []GateState{st(gate.VerdictInconclusive, 2, 7)}},
			{host: "b", phase: PhaseWaiting},
			{host: "d", phase: PhaseWaiting},
		}, steps: [][]string{{"a", "b"}, {"d"}}, complete: []bool{false, false}, waiting: []bool{true, true},
			self: 1, merged: gate.VerdictPending},
		{name: "a joiner without a row of the target has no place", ps: []gp{
			{host: "a", phase: PhaseSucceeded, installed: true},
			{host: "d", phase: PhaseWaiting},
			{host: "j", phase: PhaseIdle, nonMember: true},
		}, steps: [][]string{{"a", "d"}}, complete: []bool{false}, waiting: []bool{true}, self: 0, merged: gate.VerdictPending, allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gateGroup("d", pol, []manifest.Gate{err}, tc.ps...)
			if tc.name == "a joiner without a row of the target has no place" {
				c.peers["j"].row.Revision = "r1"
			}
			var g gating
			v := g.view(c)
			var steps [][]string
			for _, s := range v.steps {
				steps = append(steps, hostsOf(s))
			}
			if !slices.EqualFunc(steps, tc.steps, slices.Equal) || !slices.Equal(v.complete, tc.complete) || !slices.Equal(v.waiting, tc.waiting) || v.selfStep != tc.self {
				t.Errorf("steps %v complete %v waiting %v self %d, want %v %v %v %d", steps, v.complete, v.waiting, v.selfStep, tc.steps, tc.complete, tc.waiting, tc.self)
			}
			m := v.merged[gateKey{"err", 0}]
			if m.Verdict != tc.merged || v.owner[gateKey{"err", 0}] != tc.owner {
				t.Errorf("merged %s from %q, want %s from %q", m.Verdict, v.owner[gateKey{"err", 0}], tc.merged, tc.owner)
			}
			if got := g.allow(c); got != tc.allow {
				t.Errorf("allow %v, want %v", got, tc.allow)
			}
			if g.view(c) != v {
				t.Errorf("the view was rebuilt without an invalidation")
			}
			g.invalidate()
			if g.view(c) == v {
				t.Errorf("the view was not rebuilt after an invalidation")
			}
		})
	}
}

func TestGateEvaluator(t *testing.T) {
	pol := Policy{Strategy: manifest.OneAtATime, Window: 1}
	for _, tc := range []struct {
		name string
		ps   []gp
		step int
		want string
	}{
		{"the step's host", []gp{{host: "a", phase: PhaseSucceeded, installed: true}, {host: "b", phase: PhaseSucceeded, installed: true}, {host: "c", phase: PhaseWaiting}}, 1, "b"},
		{"a host of an earlier step when the step's died", []gp{{host: "a", phase: PhaseSucceeded, installed: true}, {host: "b", phase: PhaseSucceeded, installed: true, reach: ReachDead}, {host: "c", phase: PhaseWaiting}}, 1, "a"},
		{"the first reachable host when none succeeded", []gp{{host: "a", phase: PhaseSucceeded, installed: true, reach: ReachDead}, {host: "c", phase: PhaseWaiting}}, 0, "c"},
	} {
		c := gateGroup("c", pol, nil, tc.ps...)
		var g gating
		v := g.view(c)
		if e := c.evaluator(v, tc.step); e == nil || e.host != tc.want {
			t.Errorf("%s: evaluator %v, want %s", tc.name, e, tc.want)
		}
	}
}

// TestGatingScript: the evaluator of step 0 starts a run once step 0 is
// complete and a later host waits, samples it to a pass, and a resume
// (a new gen) starts nothing new for a final verdict.
func TestGatingScript(t *testing.T) {
	err := promGate("err", manifest.WhenBatch, 2, 2, 2)
	err.Interval = time.Second
	pol := Policy{Strategy: manifest.OneAtATime, Window: 1}
	ps := []gp{{host: "a", phase: PhaseSucceeded, installed: true}, {host: "b", phase: PhaseWaiting}}
	c := gateGroup("a", pol, []manifest.Gate{err}, ps...)
	var g gating
	if !g.sync(0, c, true) {
		t.Fatalf("no run started")
	}
	jobs := g.jobs("r2")
	if len(jobs) != 1 || jobs[0].Gate.Name != "err" || jobs[0].Step != 0 || !slices.Equal(jobs[0].Hosts, []string{"a"}) || jobs[0].Revision != "r2" {
		t.Fatalf("jobs %+v", jobs)
	}
	if g.sync(0, c, true) {
		t.Errorf("a second sync changed something")
	}
	if s := g.states(); len(s) != 1 || s[0].Verdict != gate.VerdictPending {
		t.Errorf("states %+v", s)
	}
	pass := gate.Sample{Result: gate.Pass, Values: []gate.Value{{V: 0.5}}}
	for i, want := range []gate.Verdict{gate.VerdictPending, gate.VerdictPass} {
		v, when, _, hostDone, ok := g.sample(time.Duration(i)*time.Second, "err", 0, pass)
		if !ok || v != want || when != manifest.WhenBatch || hostDone {
			t.Fatalf("sample %d: %s %s hostDone %v ok %v, want %s", i, v, when, hostDone, ok, want)
		}
	}
	if _, _, _, _, ok := g.sample(3*time.Second, "err", 0, pass); ok {
		t.Errorf("a sample after the verdict was taken")
	}
	if s := g.states(); len(s) != 1 || s[0].Verdict != gate.VerdictPass || s[0].Taken != 2 || s[0].Value != 0.5 {
		t.Errorf("states after the pass: %+v", s)
	}
	// Not active (halted, paused, no roster): a pending run stops, its state goes.
	var h gating
	h.sync(0, c, true)
	if !h.sync(0, c, false) || len(h.runs) != 0 || len(h.states()) != 0 {
		t.Errorf("inactive: runs %v states %v", h.runs, h.states())
	}
	// A resume starts a fresh run: the old run is of another gen.
	h.sync(0, c, true)
	h.newGen(Flag{Clock: 4})
	if h.gen != 4 || h.v != nil {
		t.Fatalf("newGen: gen %d view %v", h.gen, h.v)
	}
	if !h.sync(0, c, true) || h.runs[gateKey{"err", 0}].gen != 4 {
		t.Errorf("no fresh run after a resume")
	}
	h.newGen(Flag{Paused: true, Clock: 5})
	if h.gen != 4 {
		t.Errorf("a pause changed the gen")
	}
}

// A host gate holds the slot: its pass ends the hold once no host gate
// runs; its fail reports why.
func TestGatingHostGate(t *testing.T) {
	hg := promGate("smoke", manifest.WhenHost, 1, 1, 2)
	pol := Policy{Strategy: manifest.OneAtATime, Window: 1}
	c := gateGroup("a", pol, []manifest.Gate{hg}, gp{host: "a", phase: PhaseRunning, installed: true}, gp{host: "b", phase: PhaseWaiting})
	g := gating{hold: &holdState{rev: "r2"}}
	g.sync(0, c, true)
	if j := g.jobs("r2"); len(j) != 1 || !slices.Equal(j[0].Hosts, []string{"a"}) {
		t.Fatalf("jobs %+v", j)
	}
	if v, when, _, hostDone, _ := g.sample(0, "smoke", 0, gate.Sample{Result: gate.Pass}); v != gate.VerdictPass || when != manifest.WhenHost || !hostDone {
		t.Errorf("pass: %s %s hostDone %v", v, when, hostDone)
	}
	g = gating{hold: &holdState{rev: "r2"}}
	g.sync(0, c, true)
	v, _, why, hostDone, _ := g.sample(0, "smoke", 0, gate.Sample{Result: gate.Fail, Query: "up", Reason: "down"})
	if v != gate.VerdictFail || hostDone || why == "" || g.states()[0].Reason != why {
		t.Errorf("fail: %s why %q hostDone %v states %+v", v, why, hostDone, g.states())
	}
}

func TestGatingRestore(t *testing.T) {
	var g gating
	g.restore([]GateState{{Name: "err", Step: 1, Verdict: gate.VerdictPass}}, 3)
	if g.gen != 3 || len(g.states()) != 1 || g.states()[0].Step != 1 {
		t.Errorf("restored %+v gen %d", g.states(), g.gen)
	}
	g.reset()
	if g.states() != nil || g.runs != nil {
		t.Errorf("after reset: %+v", g.states())
	}
}
