package rollout

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// Health gates in the rollout (PROTOCOL.md §10, reconcile/gate/DESIGN.md).
//
// A rollout of (revision, attempt) is a sequence of steps, fixed by the
// order (hash(revision, host)) and the policy: for canary, step 0 is the
// canary hosts and each batch after it one step; for rolling, each batch;
// for one-at-a-time, each host; for all-at-once, one step. The Node does no
// I/O: the daemon (or the simulator) asks Evaluating which gates this host
// samples, takes the samples and hands each to GateSample; the Node keeps
// one gate.Run per gate it evaluates and publishes the state in its own row.

// gateKey names one gate of one step.
type gateKey struct {
	name string
	step uint32
}

// gateRun is one gate this host evaluates.
type gateRun struct {
	g     manifest.Gate
	gen   uint64
	run   *gate.Run
	hosts []string // the step's hosts, for {{host}}
}

// holdState: the host's lifecycle succeeded and it holds its slot until its
// host gates pass (when: host).
type holdState struct {
	rev string
}

// gating is the health gates' seam of a Node: the view derived from the
// rows (nil: to be rebuilt), the runs of the gates this host evaluates, the
// states it publishes in its row, the gen they are of, and the hold of a
// host whose host gates run after its lifecycle succeeded. It reads the
// target and the group through a gateCtx and returns what changed; the
// Node publishes the states in its row and acts on verdicts (gates_node.go).
type gating struct {
	v    *gateView
	runs map[gateKey]*gateRun
	own  map[gateKey]GateState
	gen  uint64
	hold *holdState
}

// gateCtx is what the gates read of the rest of the Node: the target, its
// gates and policy, and the group (every voter has a peer: its place in the
// order, row or not).
type gateCtx struct {
	host    string
	rev     string
	attempt uint32
	gates   []manifest.Gate
	pol     Policy
	peers   map[string]*peer
	self    *peer
}

// gateView is what this node derives from the rows for gates, rebuilt when a
// row or a reachability changed (only for manifests that declare gates).
type gateView struct {
	order    []*peer // hosts of the rollout in the order
	steps    [][]*peer
	selfStep int // -1: this host is not in the order
	merged   map[gateKey]GateState
	owner    map[gateKey]string // the host whose row gave merged its state
	complete []bool             // per step: no host of it waits or may be running
	waiting  []bool             // per step: a host of it has a row waiting for the target
}

// GateJob is a gate this host must sample now.
type GateJob struct {
	Gate     manifest.Gate
	Step     int
	Gen      uint64
	Revision string
	// Hosts are the hosts the gate is about: for a host gate this host, for
	// a batch or bake gate the step's hosts, for a continuous gate every
	// host that started the revision. {{host}} stands for them.
	Hosts []string
	Due   time.Duration // local time the next sample is due
}

// GateStatus is a gate's merged verdict as this host sees it (the same on
// every host once gossip has delivered the evaluators' rows).
type GateStatus struct {
	Name      string
	When      manifest.When
	Step      int
	Verdict   gate.Verdict
	Value     float64
	Taken     int
	Reason    string
	Evaluator string // the host whose row carries the state shown ("" when none yet)
}

// gateBase maps the Node's local durations onto the times gate.Run uses.
var gateBase = time.Unix(0, 0)

// restore takes back the states this host published before it restarted
// (its persisted row): resumed by sync from its own last state. gen is
// the pause flag's clock at the last resume.
func (g *gating) restore(gs []GateState, gen uint64) {
	g.gen = gen
	for _, s := range gs {
		if g.own == nil {
			g.own = map[gateKey]GateState{}
		}
		g.own[gateKey{s.Name, s.Step}] = s
	}
}

// reset drops the runs and the states: the target changed.
func (g *gating) reset() { g.runs, g.own = nil, nil }

// invalidate drops the view: a row or a reachability changed.
func (g *gating) invalidate() { g.v = nil }

// newGen follows the pause flag: a resume (the flag's clock while not
// paused) starts a fresh run of every gate, and older inconclusive or
// pending states no longer count.
func (g *gating) newGen(f Flag) {
	if !f.Paused && g.gen != f.Clock {
		g.gen = f.Clock
		g.v = nil // its merge counts states of the gen
	}
}

func (c *gateCtx) hasGates(w manifest.When) bool {
	for _, g := range c.gates {
		if g.When == w {
			return true
		}
	}
	return false
}

// stepGates are the gates that judge step k and block the next one.
func (c *gateCtx) stepGates(k int) []manifest.Gate {
	var out []manifest.Gate
	for _, g := range c.gates {
		if g.When == manifest.WhenBatch || g.When == manifest.WhenBake && k == 0 && c.pol.Strategy == manifest.Canary {
			out = append(out, g)
		}
	}
	return out
}

// stepAt is the step of the host at position pos of the order.
func (c *gateCtx) stepAt(pos int) int {
	switch {
	case c.pol.Strategy == manifest.Canary:
		if pos < c.pol.Canary {
			return 0
		}
		return 1 + (pos-c.pol.Canary)/max(c.pol.Window, 1)
	case c.pol.Window == 0:
		return 0
	}
	return pos / c.pol.Window
}

func (c *gateCtx) targetRow(p *peer) bool {
	return p.hasRow && p.reach != ReachLeft && p.row.Revision == c.rev && p.row.Attempt == c.attempt
}

// startedPhase reports whether a row of the target shows its host started
// (or finished) its forward run.
func startedPhase(ph Phase) bool { return ph != PhaseIdle && ph != PhaseWaiting }

// phaseOf is where a host stands in the target's rollout: a host without
// a row of the target (the manifest has not reached it yet) waits, unless
// it has the target installed.
func (c *gateCtx) phaseOf(p *peer) Phase {
	switch {
	case c.targetRow(p):
		return p.row.Phase
	case p.hasRow && p.row.Installed == c.rev:
		return PhaseSucceeded
	}
	return PhaseWaiting
}

// view returns the gate view, rebuilt if something changed.
func (g *gating) view(c *gateCtx) *gateView {
	if g.v != nil {
		return g.v
	}
	v := &gateView{selfStep: -1, merged: map[gateKey]GateState{}, owner: map[gateKey]string{}}
	for _, p := range c.peers {
		if p.reach == ReachLeft || !p.member && !c.targetRow(p) {
			continue
		}
		if !startedPhase(c.phaseOf(p)) && !p.reach.Reachable() && p != c.self {
			continue // takes its turn at the end (DESIGN.md §8)
		}
		v.order = append(v.order, p)
	}
	slices.SortFunc(v.order, func(a, b *peer) int {
		if c := cmpRank(a.rank, b.rank); c != 0 {
			return c
		}
		return strings.Compare(a.host, b.host)
	})
	for i, p := range v.order {
		k := c.stepAt(i)
		for len(v.steps) <= k {
			v.steps = append(v.steps, nil)
			v.complete = append(v.complete, true)
			v.waiting = append(v.waiting, false)
		}
		v.steps[k] = append(v.steps[k], p)
		if p == c.self {
			v.selfStep = k
		}
		ph := c.phaseOf(p)
		if ph == PhaseWaiting && !p.skipped || ph == PhaseRunning && (p.c.unhealthy || p == c.self) {
			v.complete[k] = false
		}
		if ph == PhaseWaiting && c.targetRow(p) {
			v.waiting[k] = true // known to wait for the target (not merely without its row yet)
		}
		if !c.targetRow(p) {
			continue
		}
		for _, s := range p.row.Gates {
			key := gateKey{s.Name, s.Step}
			if s.Verdict != gate.VerdictPass && s.Verdict != gate.VerdictFail && s.Gen != g.gen {
				continue // an inconclusive or pending state from before the last resume
			}
			if cur, ok := v.merged[key]; !ok || gateRank(s) > gateRank(cur) {
				v.merged[key] = s
				v.owner[key] = p.host
			}
		}
	}
	g.v = v
	return v
}

// gateRank orders states for the merge: fail > inconclusive > pass >
// pending, and among pending ones the one with more samples.
func gateRank(g GateState) uint64 {
	r := map[gate.Verdict]uint64{gate.VerdictPending: 0, gate.VerdictPass: 1, gate.VerdictInconclusive: 2, gate.VerdictFail: 3}[g.Verdict]
	return r<<32 | uint64(g.Taken)
}

func final(v gate.Verdict) bool { return v != gate.VerdictPending }

// stepPassed reports whether step k no longer blocks the steps after it:
// every gate of it passed (merged over the rows; evaluators keep their
// verdicts in their rows for the whole rollout).
func (c *gateCtx) stepPassed(v *gateView, k int) bool {
	for _, g := range c.stepGates(k) {
		if m, ok := v.merged[gateKey{g.Name, uint32(k)}]; !ok || m.Verdict != gate.VerdictPass {
			return false
		}
	}
	return true
}

// allow reports whether this host's step may start: every step before
// it passed its gates.
func (g *gating) allow(c *gateCtx) bool {
	v := g.view(c)
	if v.selfStep <= 0 {
		return true
	}
	for k := 0; k < v.selfStep; k++ {
		if !c.stepPassed(v, k) {
			return false
		}
	}
	return true
}

// evaluator is the host that evaluates the group gates of step k: the
// first reachable host in the order whose row succeeded in step k, else in
// the steps before it (so that a one-host step whose host died still has
// one), else the first reachable host of the order. nil: none.
func (c *gateCtx) evaluator(v *gateView, k int) *peer {
	ok := func(p *peer) bool {
		return (p == c.self || p.reach.Reachable()) && c.phaseOf(p) == PhaseSucceeded && p.row.Installed == c.rev
	}
	for _, p := range v.steps[k] {
		if ok(p) {
			return p
		}
	}
	for j := 0; j < k; j++ {
		for _, p := range v.steps[j] {
			if ok(p) {
				return p
			}
		}
	}
	// None: the step's and the earlier steps' hosts are all out of reach
	// (step 0 of one-at-a-time, its host dead). The query is about the
	// step's hosts, not the evaluator's: any reachable host can run it.
	for _, p := range v.order {
		if p == c.self || p.reach.Reachable() {
			return p
		}
	}
	return nil
}

func hostsOf(ps []*peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.host
	}
	return out
}

// sync starts and stops this host's gate runs to match the view; active
// says whether any gate is evaluated now (the target has gates, the
// rollout neither halted nor paused, a roster exists). It reports whether
// the states to publish changed.
func (g *gating) sync(now time.Duration, c *gateCtx, active bool) bool {
	want := map[gateKey]*gateRun{}
	if active {
		v := g.view(c)
		gen := g.gen
		if g.hold != nil && v.selfStep >= 0 {
			for _, gt := range c.gates {
				if gt.When == manifest.WhenHost {
					want[gateKey{gt.Name, uint32(v.selfStep)}] = &gateRun{g: gt, gen: gen, hosts: []string{c.host}}
				}
			}
		}
		later := false // a host of a step after k waits: the gates of k have something to block
		for k := len(v.steps) - 1; k >= 0; k-- {
			gs := c.stepGates(k)
			blocks := later
			later = later || v.waiting[k]
			if len(gs) == 0 || !blocks || !v.complete[k] || c.stepPassed(v, k) {
				continue
			}
			if e := c.evaluator(v, k); e != c.self {
				continue
			}
			for _, gt := range gs {
				key := gateKey{gt.Name, uint32(k)}
				if m, ok := v.merged[key]; ok && final(m.Verdict) {
					continue
				}
				want[key] = &gateRun{g: gt, gen: gen, hosts: hostsOf(v.steps[k])}
			}
		}
		if c.hasGates(manifest.WhenContinuous) {
			var hosts []string
			var first *peer
			done := true
			for _, p := range v.order {
				ph := c.phaseOf(p)
				if startedPhase(ph) {
					hosts = append(hosts, p.host)
					if first == nil && (p == c.self || p.reach.Reachable()) && (ph == PhaseRunning || ph == PhaseSucceeded) {
						first = p
					}
				}
				if !startedPhase(ph) || ph == PhaseRunning {
					done = false
				}
			}
			if first == c.self && !done {
				for _, gt := range c.gates {
					key := gateKey{gt.Name, 0}
					if m, ok := v.merged[key]; gt.When == manifest.WhenContinuous && !(ok && final(m.Verdict)) {
						want[key] = &gateRun{g: gt, gen: gen, hosts: hosts}
					}
				}
			}
		}
	}
	changed := false
	for key, r := range g.runs {
		if w := want[key]; w == nil || w.gen != r.gen {
			delete(g.runs, key)
			if s, ok := g.own[key]; ok && !final(s.Verdict) {
				delete(g.own, key) // a pending state it no longer evaluates
			}
			changed = true
		}
	}
	for key, w := range want {
		if r := g.runs[key]; r != nil {
			r.hosts = w.hosts
			continue
		}
		// Resume from the state gossip brought (PROTOCOL.md §10): a
		// pending state of the same gen with the most samples.
		var from GateState
		if w.g.When != manifest.WhenHost {
			if m, ok := g.view(c).merged[key]; ok && m.Verdict == gate.VerdictPending && m.Gen == w.gen {
				from = m
			}
		}
		due := gateBase.Add(now)
		if from.Taken == 0 {
			due = due.Add(w.g.InitialDelay)
		}
		w.run = gate.ResumeRun(w.g, due, int(from.Taken), int(from.FailStreak), int(from.InconcStreak))
		if g.runs == nil {
			g.runs = map[gateKey]*gateRun{}
		}
		g.runs[key] = w
		if g.own == nil {
			g.own = map[gateKey]GateState{}
		}
		from.Name, from.Step, from.Gen, from.Verdict, from.Reason = key.name, key.step, w.gen, gate.VerdictPending, ""
		g.own[key] = from
		changed = true
	}
	return changed
}

// states are the own gate states to publish in the own row, in order of
// step and name, at most MaxRowGates (the oldest steps' verdicts go first).
func (g *gating) states() []GateState {
	gs := make([]GateState, 0, len(g.own))
	for _, s := range g.own {
		gs = append(gs, s)
	}
	slices.SortFunc(gs, func(a, b GateState) int {
		if a.Step != b.Step {
			return int(a.Step) - int(b.Step)
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(gs) > MaxRowGates {
		gs = gs[len(gs)-MaxRowGates:] // the oldest steps' verdicts go first
	}
	if len(gs) == 0 {
		gs = nil
	}
	return gs
}

// VerdictsChanged reports whether two rows of one host differ in the gate
// verdicts they carry (not in mere sample counts): a change peers act on,
// which the transport sends at once like a phase change, not only by gossip.
func VerdictsChanged(old, cur []GateState) bool {
	finals := func(gs []GateState) int {
		k := 0
		for _, g := range gs {
			if final(g.Verdict) {
				k++
			}
		}
		return k
	}
	if finals(old) != finals(cur) {
		return true
	}
	for _, g := range cur {
		if !final(g.Verdict) {
			continue
		}
		if !slices.ContainsFunc(old, func(o GateState) bool {
			return o.Name == g.Name && o.Step == g.Step && o.Gen == g.Gen && o.Verdict == g.Verdict
		}) {
			return true
		}
	}
	return false
}

// jobs are the gates this host samples now, in a stable order, for
// revision rev.
func (g *gating) jobs(rev string) []GateJob {
	out := make([]GateJob, 0, len(g.runs))
	for key, r := range g.runs {
		out = append(out, GateJob{Gate: r.g, Step: int(key.step), Gen: r.gen, Revision: rev,
			Hosts: slices.Clone(r.hosts), Due: r.run.Due().Sub(gateBase)})
	}
	slices.SortFunc(out, func(a, b GateJob) int {
		if a.Step != b.Step {
			return a.Step - b.Step
		}
		return strings.Compare(a.Gate.Name, b.Gate.Name)
	})
	return out
}

// sample records sample s of gate name for step, taken by this host and
// ended at now, in its run and its published state. ok is false for a
// gate this host does not evaluate (any more). For a fail or an
// inconclusive verdict why is the one line that says so; hostDone
// reports a pass of a host gate after which no host gate runs any more.
func (g *gating) sample(now time.Duration, name string, step int, s gate.Sample) (v gate.Verdict, when manifest.When, why string, hostDone, ok bool) {
	key := gateKey{name, uint32(step)}
	r := g.runs[key]
	if r == nil {
		return v, when, "", false, false
	}
	s.At = gateBase.Add(now - s.Took)
	v = r.run.Record(s)
	st := g.own[key]
	fail, inconc := r.run.Streaks()
	st.Taken, st.FailStreak, st.InconcStreak = uint32(r.run.Taken()), uint32(fail), uint32(inconc)
	st.Value = sampleValue(s)
	st.Verdict = v
	if v == gate.VerdictFail || v == gate.VerdictInconclusive {
		_, reason := r.run.Verdict()
		why = gateReason(name, v, s, reason)
		st.Reason = ClipString(why, MaxGateReason)
	}
	g.own[key] = st
	if final(v) {
		delete(g.runs, key)
	}
	if v == gate.VerdictPass && r.g.When == manifest.WhenHost && g.hold != nil {
		hostDone = true
		for k := range g.runs {
			if g.runs[k].g.When == manifest.WhenHost {
				hostDone = false
			}
		}
	}
	return v, r.g.When, why, hostDone, true
}

// sampleValue is what a row shows of a sample: the largest value, NaN when
// there was none.
func sampleValue(s gate.Sample) float64 {
	v := math.NaN()
	for _, x := range s.Values {
		if !math.IsNaN(x.V) && (math.IsNaN(v) || x.V > v) {
			v = x.V
		}
	}
	return v
}

// gateReason is the one line a halt or a pause gives: the gate, the value,
// the query and why.
func gateReason(name string, v gate.Verdict, s gate.Sample, why string) string {
	val := "no data"
	if len(s.Values) > 0 {
		val = gate.FormatValues(s.Values, 3)
	}
	return fmt.Sprintf("gate %s %s: value %s, query %q: %s", name, v, val, s.Query, why)
}

// status is every gate's merged state for the target, one entry per
// declared gate: the latest step with a state (or pending at step 0).
func (g *gating) status(c *gateCtx) []GateStatus {
	v := g.view(c)
	out := make([]GateStatus, 0, len(c.gates))
	for _, gt := range c.gates {
		st := GateStatus{Name: gt.Name, When: gt.When, Value: math.NaN()}
		best := -1
		for key, m := range v.merged {
			if key.name == gt.Name && int(key.step) > best {
				best = int(key.step)
				st.Step, st.Verdict, st.Value, st.Taken, st.Reason, st.Evaluator = int(key.step), m.Verdict, m.Value, int(m.Taken), m.Reason, v.owner[key]
			}
		}
		out = append(out, st)
	}
	return out
}
