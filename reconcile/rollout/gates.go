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

// Health gates in the rollout (gossip/PROTOCOL.md §10, reconcile/gate/DESIGN.md).
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

// gateView is what this node derives from the rows for gates, rebuilt when a
// row or a reachability changed (only for manifests that declare gates).
type gateView struct {
	order    []*peer // hosts of the rollout in the order
	stepOf   map[*peer]int
	steps    [][]*peer
	selfStep int // -1: this host is not in the order
	merged   map[gateKey]GateState
	owner    map[gateKey]string // the host whose row gave merged its state
	started  []bool             // per step: a host of this step has started (forward)
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

func (n *Node) gated() bool { return n.tgt.set && len(n.st.Desired.Deployment.Gates) > 0 }

func (n *Node) hasGates(w manifest.When) bool {
	for _, g := range n.st.Desired.Deployment.Gates {
		if g.When == w {
			return true
		}
	}
	return false
}

// stepGates are the gates that judge step k and block the next one.
func (n *Node) stepGates(k int) []manifest.Gate {
	var out []manifest.Gate
	for _, g := range n.st.Desired.Deployment.Gates {
		if g.When == manifest.WhenBatch || g.When == manifest.WhenBake && k == 0 && n.pol.Strategy == manifest.Canary {
			out = append(out, g)
		}
	}
	return out
}

// stepAt is the step of the host at position pos of the order.
func (n *Node) stepAt(pos int) int {
	switch {
	case n.pol.Strategy == manifest.Canary:
		if pos < n.pol.Canary {
			return 0
		}
		return 1 + (pos-n.pol.Canary)/max(n.pol.Window, 1)
	case n.pol.Window == 0:
		return 0
	}
	return pos / n.pol.Window
}

func (n *Node) targetRow(p *peer) bool {
	return p.hasRow && p.reach != ReachLeft && p.row.Revision == n.tgt.rev && p.row.Attempt == n.tgt.attempt
}

// startedPhase reports whether a row of the target shows its host started
// (or finished) its forward run.
func startedPhase(ph Phase) bool { return ph != PhaseIdle && ph != PhaseWaiting }

// phaseOf is where a host stands in the target's rollout: a host without
// a row of the target (the manifest has not reached it yet) waits, unless
// it has the target installed.
func (n *Node) phaseOf(p *peer) Phase {
	switch {
	case n.targetRow(p):
		return p.row.Phase
	case p.hasRow && p.row.Installed == n.tgt.rev:
		return PhaseSucceeded
	}
	return PhaseWaiting
}

// view returns the gate view, rebuilt if something changed.
func (n *Node) view() *gateView {
	if n.gview != nil {
		return n.gview
	}
	v := &gateView{selfStep: -1, merged: map[gateKey]GateState{}, owner: map[gateKey]string{}}
	for _, m := range n.roster.cur.Members {
		n.peer(m) // every voter has its place, row or not
	}
	for _, p := range n.peers {
		if p.reach == ReachLeft || !p.member && !n.targetRow(p) {
			continue
		}
		if !startedPhase(n.phaseOf(p)) && !p.reach.Reachable() && p != n.self {
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
		k := n.stepAt(i)
		for len(v.steps) <= k {
			v.steps = append(v.steps, nil)
			v.complete = append(v.complete, true)
			v.waiting = append(v.waiting, false)
		}
		v.steps[k] = append(v.steps[k], p)
		if p == n.self {
			v.selfStep = k
		}
		ph := n.phaseOf(p)
		if ph == PhaseWaiting && !p.skipped || ph == PhaseRunning && (p.c.unhealthy || p == n.self) {
			v.complete[k] = false
		}
		if ph == PhaseWaiting && n.targetRow(p) {
			v.waiting[k] = true // known to wait for the target (not merely without its row yet)
		}
		if !n.targetRow(p) {
			continue
		}
		for _, g := range p.row.Gates {
			key := gateKey{g.Name, g.Step}
			if g.Verdict != gate.VerdictPass && g.Verdict != gate.VerdictFail && g.Gen != n.gateGen {
				continue // an inconclusive or pending state from before the last resume
			}
			if cur, ok := v.merged[key]; !ok || gateRank(g) > gateRank(cur) {
				v.merged[key] = g
				v.owner[key] = p.host
			}
		}
	}
	n.gview = v
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
func (n *Node) stepPassed(v *gateView, k int) bool {
	for _, g := range n.stepGates(k) {
		if m, ok := v.merged[gateKey{g.Name, uint32(k)}]; !ok || m.Verdict != gate.VerdictPass {
			return false
		}
	}
	return true
}

// gatesAllow reports whether this host's step may start: every step before
// it passed its gates.
func (n *Node) gatesAllow() bool {
	v := n.view()
	if v.selfStep <= 0 {
		return true
	}
	for k := 0; k < v.selfStep; k++ {
		if !n.stepPassed(v, k) {
			return false
		}
	}
	return true
}

// evaluator is the host that evaluates the group gates of step k: the
// first reachable host in the order whose row succeeded in step k, else in
// the steps before it (so that a one-host step whose host died still has
// one), else the first reachable host of the order. nil: none.
func (n *Node) evaluator(v *gateView, k int) *peer {
	ok := func(p *peer) bool {
		return (p == n.self || p.reach.Reachable()) && n.phaseOf(p) == PhaseSucceeded && p.row.Installed == n.tgt.rev
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
		if p == n.self || p.reach.Reachable() {
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

// syncGates starts and stops this host's gate runs to match the view, and
// publishes their state in its row. Called at the end of evaluate.
func (n *Node) syncGates(now time.Duration) {
	if !n.st.Flag.Paused && n.gateGen != n.st.Flag.Clock {
		n.gateGen = n.st.Flag.Clock
		n.gview = nil // its merge counts states of the gen
	}
	want := map[gateKey]*gateRun{}
	if n.gated() && !n.halted() && !n.paused() && n.roster.cur.Epoch > 0 {
		v := n.view()
		gen := n.gateGen
		if n.hold != nil && v.selfStep >= 0 {
			for _, g := range n.st.Desired.Deployment.Gates {
				if g.When == manifest.WhenHost {
					want[gateKey{g.Name, uint32(v.selfStep)}] = &gateRun{g: g, gen: gen, hosts: []string{n.cfg.Host}}
				}
			}
		}
		later := false // a host of a step after k waits: the gates of k have something to block
		for k := len(v.steps) - 1; k >= 0; k-- {
			gs := n.stepGates(k)
			blocks := later
			later = later || v.waiting[k]
			if len(gs) == 0 || !blocks || !v.complete[k] || n.stepPassed(v, k) {
				continue
			}
			if e := n.evaluator(v, k); e != n.self {
				continue
			}
			for _, g := range gs {
				key := gateKey{g.Name, uint32(k)}
				if m, ok := v.merged[key]; ok && final(m.Verdict) {
					continue
				}
				want[key] = &gateRun{g: g, gen: gen, hosts: hostsOf(v.steps[k])}
			}
		}
		if n.hasGates(manifest.WhenContinuous) {
			var hosts []string
			var first *peer
			done := true
			for _, p := range v.order {
				ph := n.phaseOf(p)
				if startedPhase(ph) {
					hosts = append(hosts, p.host)
					if first == nil && (p == n.self || p.reach.Reachable()) && (ph == PhaseRunning || ph == PhaseSucceeded) {
						first = p
					}
				}
				if !startedPhase(ph) || ph == PhaseRunning {
					done = false
				}
			}
			if first == n.self && !done {
				for _, g := range n.st.Desired.Deployment.Gates {
					key := gateKey{g.Name, 0}
					if m, ok := v.merged[key]; g.When == manifest.WhenContinuous && !(ok && final(m.Verdict)) {
						want[key] = &gateRun{g: g, gen: gen, hosts: hosts}
					}
				}
			}
		}
	}
	changed := false
	for key, r := range n.gruns {
		if w := want[key]; w == nil || w.gen != r.gen {
			delete(n.gruns, key)
			if s, ok := n.gateOwn[key]; ok && !final(s.Verdict) {
				delete(n.gateOwn, key) // a pending state it no longer evaluates
			}
			changed = true
		}
	}
	for key, w := range want {
		if r := n.gruns[key]; r != nil {
			r.hosts = w.hosts
			continue
		}
		// Resume from the state gossip brought (PROTOCOL.md §10): a
		// pending state of the same gen with the most samples.
		var from GateState
		if w.g.When != manifest.WhenHost {
			if m, ok := n.view().merged[key]; ok && m.Verdict == gate.VerdictPending && m.Gen == w.gen {
				from = m
			}
		}
		due := gateBase.Add(now)
		if from.Taken == 0 {
			due = due.Add(w.g.InitialDelay)
		}
		w.run = gate.ResumeRun(w.g, due, int(from.Taken), int(from.FailStreak), int(from.InconcStreak))
		if n.gruns == nil {
			n.gruns = map[gateKey]*gateRun{}
		}
		n.gruns[key] = w
		if n.gateOwn == nil {
			n.gateOwn = map[gateKey]GateState{}
		}
		from.Name, from.Step, from.Gen, from.Verdict, from.Reason = key.name, key.step, w.gen, gate.VerdictPending, ""
		n.gateOwn[key] = from
		changed = true
	}
	if changed {
		n.publishGates(now)
	}
}

// publishGates writes the own gate states into the own row.
func (n *Node) publishGates(now time.Duration) {
	gs := make([]GateState, 0, len(n.gateOwn))
	for _, s := range n.gateOwn {
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
	n.self.row.Gates = gs
	n.dirty = true // stored before it is sent (A2): a restarted evaluator keeps its verdicts
	n.writeRow(now)
}

// GateStep is this host's step in the rollout order of its view (-1: none,
// or no gates), for the simulator's checks and status.
func (n *Node) GateStep() int {
	if !n.gated() {
		return -1
	}
	return n.view().selfStep
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

// Evaluating returns the gates this host samples now, in a stable order.
func (n *Node) Evaluating() []GateJob {
	out := make([]GateJob, 0, len(n.gruns))
	for key, r := range n.gruns {
		out = append(out, GateJob{Gate: r.g, Step: int(key.step), Gen: r.gen, Revision: n.tgt.rev,
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

// GateSample feeds one sample of gate name for step, taken by this host
// for a job of Evaluating. A sample of a gate this host does not evaluate
// (any more) is ignored. The sample is taken to have ended at now.
func (n *Node) GateSample(now time.Duration, name string, step int, s gate.Sample) {
	key := gateKey{name, uint32(step)}
	r := n.gruns[key]
	if r == nil {
		return
	}
	s.At = gateBase.Add(now - s.Took)
	v := r.run.Record(s)
	st := n.gateOwn[key]
	fail, inconc := r.run.Streaks()
	st.Taken, st.FailStreak, st.InconcStreak = uint32(r.run.Taken()), uint32(fail), uint32(inconc)
	st.Value = sampleValue(s)
	st.Verdict = v
	why := ""
	if v == gate.VerdictFail || v == gate.VerdictInconclusive {
		_, reason := r.run.Verdict()
		why = gateReason(name, v, s, reason)
		st.Reason = ClipString(why, MaxGateReason)
	}
	n.gateOwn[key] = st
	if final(v) {
		delete(n.gruns, key)
	}
	n.publishGates(now)
	switch v {
	case gate.VerdictFail:
		if r.g.When == manifest.WhenHost {
			n.endHold(now, false, why)
		} else {
			n.halt(now)
		}
	case gate.VerdictInconclusive:
		if !n.st.Flag.Paused {
			n.st.Flag = Flag{Paused: true, Clock: n.st.Flag.Clock + 1, Node: n.cfg.Host, Reason: ClipString(why, MaxFlagReason)}
			n.dirty = true
			n.out.Broadcast = append(n.out.Broadcast, Message{Kind: KindFlag, App: n.cfg.App, From: n.cfg.Host, Flag: n.st.Flag})
		}
	case gate.VerdictPass:
		if r.g.When == manifest.WhenHost && n.hold != nil {
			done := true
			for k := range n.gruns {
				if n.gruns[k].g.When == manifest.WhenHost {
					done = false
				}
			}
			if done {
				n.endHold(now, true, "")
			}
		}
	}
	n.evaluate(now)
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

// halt halts the target attempt (the path of PROTOCOL.md §5).
func (n *Node) halt(now time.Duration) {
	if n.halted() {
		return
	}
	if n.st.Halted == nil {
		n.st.Halted = map[string]Halt{}
	}
	n.st.Halted[n.tgt.rev] = Halt{ManifestID: n.st.Desired.ManifestID, Attempt: n.tgt.attempt}
	n.dirty = true
	n.self.row.Halted = true
	n.writeRow(now)
}

// endHold ends a host's wait for its host gates: passed, its run succeeded
// and it gives its slot back; failed, its run failed (it counts as a
// failure for halting) with the gate's reason as its result.
func (n *Node) endHold(now time.Duration, ok bool, result string) {
	if n.hold == nil {
		return
	}
	n.hold = nil
	r := &n.self.row
	r.Event = ""
	res := "succeeded"
	if ok {
		r.Phase, r.Result = PhaseSucceeded, "succeeded"
	} else {
		r.Phase, r.Result = PhaseFailed, ClipString(result, MaxString)
		res = "failed"
	}
	n.releaseClaim(now, res)
	n.dirty = true
	n.writeRow(now)
}

// Gates returns every gate's merged state for the current target, one entry
// per declared gate: the latest step with a state (or pending at step 0).
func (n *Node) Gates() []GateStatus {
	if !n.gated() {
		return nil
	}
	v := n.view()
	out := make([]GateStatus, 0, len(n.st.Desired.Deployment.Gates))
	for _, g := range n.st.Desired.Deployment.Gates {
		st := GateStatus{Name: g.Name, When: g.When, Value: math.NaN()}
		best := -1
		for key, m := range v.merged {
			if key.name == g.Name && int(key.step) > best {
				best = int(key.step)
				st.Step, st.Verdict, st.Value, st.Taken, st.Reason, st.Evaluator = int(key.step), m.Verdict, m.Value, int(m.Taken), m.Reason, v.owner[key]
			}
		}
		out = append(out, st)
	}
	return out
}
