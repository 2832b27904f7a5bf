package rollout

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// sampleGates takes the due samples of every up host's gates with w.sample,
// as the daemon's Runner would, and records when a step's gate first passed
// in any row.
func (w *net) sampleGates() {
	if w.sample == nil {
		return
	}
	for _, h := range w.names {
		n := w.nodes[h]
		if n == nil || w.down[h] {
			continue
		}
		for _, j := range n.Evaluating() {
			if j.Due > w.now {
				continue
			}
			res := w.sample(h, j)
			s := gate.Sample{Gate: j.Gate.Name, Result: res, Values: []gate.Value{{V: 0.5}}, Query: j.Gate.Prometheus.Query,
				Reason: "result 0.5 " + res.String()}
			w.samples = append(w.samples, fmt.Sprintf("%s %s %d %s", h, j.Gate.Name, j.Step, res))
			n.GateSample(w.now, j.Gate.Name, j.Step, s)
			for _, g := range n.Row().Gates {
				if g.Verdict == gate.VerdictPass {
					if w.passedAt == nil {
						w.passedAt = map[int]time.Duration{}
					}
					if _, ok := w.passedAt[int(g.Step)]; !ok {
						w.passedAt[int(g.Step)] = w.now
					}
				}
			}
		}
	}
	w.flush()
}

// drive advances time in steps of 100 ms for d, ending every lifecycle
// that has run for 300 ms (ok decides its result), until every host settled.
func (w *net) drive(d time.Duration, ok func(h string) bool) {
	end := w.now + d
	for w.now < end {
		w.advance(100 * time.Millisecond)
		for _, h := range slices.Sorted(mapKeys(w.running)) {
			if w.now-w.startedAt[h] >= 300*time.Millisecond {
				w.finish(h, ok == nil || ok(h))
			}
		}
		settled := true
		for _, h := range w.names {
			if !w.down[h] && !w.nodes[h].Settled() {
				settled = false
			}
		}
		if settled && len(w.running) == 0 {
			return
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// order is the rollout order of w's hosts for revision r2 (every host a
// voter): what the steps are made of.
func (w *net) order() []string {
	o := slices.Clone(w.names)
	slices.SortFunc(o, func(a, b string) int { return cmpRank(hash2("r2", a)>>1, hash2("r2", b)>>1) })
	return o
}

func promGate(name string, when manifest.When, count, failLimit, inconcLimit int) manifest.Gate {
	return manifest.Gate{Name: name, When: when, Prometheus: &manifest.PrometheusCheck{URL: "http://prom:9090", Query: "sum(rate(errors_total[1m]))"},
		Interval: time.Second, Timeout: time.Second, Count: count, FailureLimit: failLimit, InconclusiveLimit: inconcLimit, NoData: manifest.NoDataFail}
}

func gatedDesired(s manifest.Strategy, batch int, gs ...manifest.Gate) Desired {
	d := desired(s)
	if batch > 0 {
		d.Deployment.Batch = manifest.Quantity{Value: batch, Set: true}
	}
	d.Deployment.Gates = gs
	return d
}

func pass(string, GateJob) gate.Result { return gate.Pass }

func TestGatePassProceeds(t *testing.T) {
	for _, tt := range []struct {
		name     string
		strategy manifest.Strategy
		batch    int
		hosts    int
		when     manifest.When
		steps    int
	}{
		{"one-at-a-time", manifest.OneAtATime, 0, 4, manifest.WhenBatch, 3}, // the last step has nothing to block
		{"rolling", manifest.Rolling, 2, 6, manifest.WhenBatch, 2},
		{"canary bake", manifest.Canary, 2, 5, manifest.WhenBake, 1}, // step 0 = 1 canary, then 2 + 2
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newNet(t, tt.hosts, "r1")
			w.sample = pass
			d := gatedDesired(tt.strategy, tt.batch, promGate("err", tt.when, 2, 1, 3))
			d.Deployment.Canary = manifest.Quantity{Value: 1, Set: true}
			w.setDesired(d)
			w.drive(2*time.Minute, nil)
			for _, h := range w.names {
				if r := w.nodes[h].Row(); r.Installed != "r2" || r.Phase != PhaseSucceeded {
					t.Errorf("%s: %+v", h, r)
				}
			}
			size := max(tt.batch, 1)
			stepOf := func(i int) int { return i / size }
			if tt.strategy == manifest.Canary {
				stepOf = func(i int) int { return min(i, 1+(i-1)/size) }
			}
			o := w.order()
			for i, h := range o {
				k := stepOf(i)
				if k == 0 || k > tt.steps {
					continue
				}
				p, ok := w.passedAt[k-1]
				if !ok || w.startedAt[h] < p {
					t.Errorf("%s (step %d) started at %s, step %d's gate passed at %s (%v)", h, k, w.startedAt[h], k-1, p, ok)
				}
			}
			if len(w.passedAt) != tt.steps {
				t.Errorf("gates passed for steps %v, want %d", w.passedAt, tt.steps)
			}
			if w.maxRun > size {
				t.Errorf("max concurrent %d", w.maxRun)
			}
			for _, h := range w.names {
				gs := w.nodes[h].Gates()
				if len(gs) != 1 || gs[0].Verdict != gate.VerdictPass || gs[0].Step != tt.steps-1 {
					t.Errorf("%s: gates %+v", h, gs)
				}
			}
		})
	}
}

func TestGateFailHaltsAndRollsBack(t *testing.T) {
	w := newNet(t, 6, "r1")
	w.sample = func(h string, j GateJob) gate.Result {
		if j.Step == 1 {
			return gate.Fail
		}
		return gate.Pass
	}
	w.setDesired(gatedDesired(manifest.Rolling, 2, promGate("err", manifest.WhenBatch, 1, 2, 3)))
	w.drive(2*time.Minute, nil)
	o := w.order()
	for i, h := range o {
		n := w.nodes[h]
		if !n.halted() {
			t.Errorf("%s: not halted", h)
		}
		r := n.Row()
		switch {
		case i < 4 && (r.Phase != PhaseRolledBack || r.Installed != "r1"):
			t.Errorf("%s (step %d) did not roll back: %+v", h, i/2, r)
		case i >= 4 && w.startedAt[h] != 0:
			t.Errorf("%s (step 2) started after step 1's gate failed", h)
		}
		gs := n.Gates()
		if len(gs) != 1 || gs[0].Verdict != gate.VerdictFail || gs[0].Step != 1 {
			t.Fatalf("%s: gates %+v", h, gs)
		}
		for _, want := range []string{"gate err failed", "value 0.5", "sum(rate(errors_total[1m]))", "2 consecutive failed samples"} {
			if !strings.Contains(gs[0].Reason, want) {
				t.Errorf("%s: reason %q lacks %q", h, gs[0].Reason, want)
			}
		}
	}
}

func TestGateInconclusivePausesAndResumeStartsAFreshRun(t *testing.T) {
	w := newNet(t, 3, "r1")
	bad := true
	w.sample = func(string, GateJob) gate.Result {
		if bad {
			return gate.Inconclusive
		}
		return gate.Pass
	}
	w.setDesired(gatedDesired(manifest.OneAtATime, 0, promGate("lat", manifest.WhenBatch, 1, 1, 2)))
	w.drive(10*time.Second, nil)
	o := w.order()
	for _, h := range w.names {
		f := w.nodes[h].Flag()
		if !f.Paused || !strings.HasPrefix(f.Reason, "gate lat inconclusive: value 0.5") || f.Node != o[0] {
			t.Fatalf("%s: flag %+v", h, f)
		}
	}
	if len(w.starts) != 1 {
		t.Fatalf("starts %v under the gate's pause", w.starts)
	}
	if j := w.nodes[o[0]].Evaluating(); len(j) != 0 {
		t.Fatalf("evaluates %v while paused", j)
	}
	bad = false
	w.nodes[o[2]].SetPaused(w.now, false)
	w.flush()
	resume := w.nodes[o[2]].Flag().Clock
	j := w.nodes[o[0]].Evaluating()
	if len(j) != 1 || j[0].Gen != resume || j[0].Step != 0 {
		t.Fatalf("after the resume the evaluator runs %+v, want gate lat of step 0 at gen %d", j, resume)
	}
	w.advance(50 * time.Millisecond)
	if g := w.nodes[o[0]].Row().Gates; len(g) != 1 || g[0].Taken != 1 || g[0].Gen != resume || g[0].Verdict != gate.VerdictPass {
		t.Fatalf("the fresh run's state: %+v (want 1 sample, passed)", g)
	}
	w.drive(time.Minute, nil)
	for _, h := range w.names {
		if r := w.nodes[h].Row(); r.Installed != "r2" {
			t.Errorf("%s: %+v", h, r)
		}
	}
}

func TestGateEvaluatorHandoff(t *testing.T) {
	for _, tt := range []struct {
		name     string
		strategy manifest.Strategy
		batch    int
		step     int // the step whose evaluator dies
	}{
		{"next host of the step", manifest.Rolling, 2, 0},
		{"a host of an earlier step", manifest.OneAtATime, 0, 1}, // a one-host step
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newNet(t, 4, "r1")
			w.sample = pass
			w.setDesired(gatedDesired(tt.strategy, tt.batch, promGate("err", manifest.WhenBatch, 4, 1, 3)))
			o := w.order()
			size := max(tt.batch, 1)
			e1 := o[tt.step*size]
			// Until the evaluator has published two samples of the step.
			for i := 0; i < 600; i++ {
				w.drive(100*time.Millisecond, nil)
				if g := w.nodes[e1].Row().Gates; len(g) == 1 && g[0].Taken == 2 && int(g[0].Step) == tt.step {
					break
				}
			}
			if g := w.nodes[e1].Row().Gates; len(g) != 1 || g[0].Taken != 2 {
				t.Fatalf("evaluator %s: %+v", e1, g)
			}
			w.down[e1] = true
			for _, h := range w.names {
				if h != e1 {
					w.nodes[h].PeerChanged(w.now, e1, ReachDead)
				}
			}
			w.flush()
			e2 := o[tt.step*size+1]
			if tt.step*size+1 >= (tt.step+1)*size {
				e2 = o[0] // no other host in the step: the first of an earlier one
			}
			j := w.nodes[e2].Evaluating()
			if len(j) != 1 || j[0].Step != tt.step {
				t.Fatalf("%s evaluates %+v after %s died", e2, j, e1)
			}
			w.advance(50 * time.Millisecond)
			if g := stateOf(w.nodes[e2].Row(), "err", tt.step); g == nil || g.Taken != 3 {
				t.Fatalf("%s did not resume from the gossiped state (2 samples): %+v", e2, w.nodes[e2].Row().Gates)
			}
			w.drive(time.Minute, nil)
			for _, h := range w.names {
				if r := w.nodes[h].Row(); h != e1 && r.Installed != "r2" {
					t.Errorf("%s: %+v", h, r)
				}
			}
		})
	}
}

func stateOf(r Row, name string, step int) *GateState {
	for i, g := range r.Gates {
		if g.Name == name && int(g.Step) == step {
			return &r.Gates[i]
		}
	}
	return nil
}

func TestTwoEvaluatorsMergeToOneVerdict(t *testing.T) {
	w := newNet(t, 4, "r1")
	o := w.order()
	e1, e2 := o[0], o[1]
	w.sample = func(h string, j GateJob) gate.Result {
		if h == e1 {
			return gate.Fail
		}
		return gate.Pass
	}
	w.setDesired(gatedDesired(manifest.Rolling, 2, promGate("err", manifest.WhenBatch, 2, 2, 3)))
	// e2 wrongly believes e1 is gone: both evaluate step 0.
	both := false
	for i := 0; i < 300 && !both; i++ {
		w.drive(100*time.Millisecond, nil)
		w.nodes[e2].PeerChanged(w.now, e1, ReachDead)
		w.flush()
		both = len(w.nodes[e1].Evaluating()) == 1 && len(w.nodes[e2].Evaluating()) == 1
	}
	if !both {
		t.Fatalf("not two evaluators: %v / %v", w.nodes[e1].Evaluating(), w.nodes[e2].Evaluating())
	}
	w.drive(time.Minute, nil)
	for _, h := range w.names {
		n := w.nodes[h]
		gs := n.Gates()
		if len(gs) != 1 || gs[0].Verdict != gate.VerdictFail || gs[0].Evaluator != e1 || !n.halted() {
			t.Errorf("%s: gates %+v halted %v", h, gs, n.halted())
		}
		if r := n.Row(); r.Installed != "r1" {
			t.Errorf("%s did not roll back: %+v", h, r)
		}
	}
	var verdicts []string
	for _, h := range []string{e1, e2} {
		for _, g := range w.nodes[h].Row().Gates {
			verdicts = append(verdicts, h+" "+g.Verdict.String())
		}
	}
	if !slices.Contains(verdicts, e2+" passed") {
		t.Errorf("e2 never reached its own verdict: %v", verdicts)
	}
}

func TestHostGateHoldsTheSlot(t *testing.T) {
	w := newNet(t, 3, "r1")
	o := w.order()
	w.sample = func(h string, j GateJob) gate.Result {
		if h == o[1] {
			return gate.Fail
		}
		return gate.Pass
	}
	w.setDesired(gatedDesired(manifest.OneAtATime, 0, promGate("health", manifest.WhenHost, 3, 1, 3)))
	w.drive(time.Second, nil) // o[0] ran its lifecycle and samples its host gate
	n0 := w.nodes[o[0]]
	if r := n0.Row(); r.Phase != PhaseRunning || r.Event != "host gates" || r.Claim == 0 || r.Installed != "r2" {
		t.Fatalf("%s during its host gate: %+v", o[0], r)
	}
	if len(w.starts) != 1 {
		t.Fatalf("starts %v while the first host's gate holds its slot", w.starts)
	}
	w.drive(time.Minute, nil)
	if p := w.startedAt[o[1]]; p < w.startedAt[o[0]]+2*time.Second {
		t.Errorf("%s started at %s, before %s's 3 samples (from %s)", o[1], p, o[0], w.startedAt[o[0]])
	}
	for i, h := range o {
		n := w.nodes[h]
		r := n.Row()
		if !n.halted() {
			t.Errorf("%s: not halted", h)
		}
		switch i {
		case 0:
			if r.Phase != PhaseRolledBack || r.Installed != "r1" {
				t.Errorf("%s: %+v", h, r)
			}
		case 1: // its own gate failed: rolled back, keeps its failure
			if r.Phase != PhaseRolledBack || r.Installed != "r1" || !strings.Contains(r.Result, "gate health failed") {
				t.Errorf("%s: %+v", h, r)
			}
		case 2:
			if w.startedAt[h] != 0 {
				t.Errorf("%s started after the halt", h)
			}
		}
	}
}

// A verdict is stored before it is sent (A2): an evaluator restarted after
// the pass comes back with it in its row, and nobody evaluates the step
// again (the simulator's seed 7036 re-evaluated it when it was not).
func TestEvaluatorVerdictSurvivesRestart(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.sample = pass
	w.setDesired(gatedDesired(manifest.OneAtATime, 0, promGate("err", manifest.WhenBatch, 2, 1, 3)))
	o := w.order()
	for i := 0; i < 100 && w.passedAt[0] == 0; i++ {
		w.drive(100*time.Millisecond, nil)
	}
	if g := stateOf(w.st[o[0]].Row, "err", 0); g == nil || g.Verdict != gate.VerdictPass {
		t.Fatalf("the stored row of %s: %+v", o[0], w.st[o[0]].Row.Gates)
	}
	w.restart(o[0])
	w.flush()
	for _, h := range w.names {
		if j := w.nodes[h].Evaluating(); len(j) != 0 && j[0].Step == 0 {
			t.Errorf("%s evaluates step 0 again: %+v", h, j)
		}
		if gs := w.nodes[h].Gates(); len(gs) != 1 || gs[0].Verdict != gate.VerdictPass {
			t.Errorf("%s: %+v", h, gs)
		}
	}
}

// The daemon stores Persisted as JSON, which has no NaN: the state of a
// gate whose last sample had no data (an inconclusive gate's, as a rule)
// must still be stored (A2 holds every message until it is), and come back.
func TestPersistedGateStateWithoutDataIsStored(t *testing.T) {
	p := Persisted{Row: Row{Host: "a", Gates: []GateState{
		{Name: "lat", Step: 1, Gen: 3, Verdict: gate.VerdictInconclusive, Taken: 2, InconcStreak: 2, Value: math.NaN(), Reason: "gate lat inconclusive"},
		{Name: "err", Step: 1, Verdict: gate.VerdictPass, Taken: 3, Value: 0.25},
	}}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("a gate without data cannot be stored: %v", err)
	}
	var q Persisted
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	g := q.Row.Gates
	if len(g) != 2 || !math.IsNaN(g[0].Value) || g[0].Reason != "gate lat inconclusive" || g[0].InconcStreak != 2 || g[0].Gen != 3 ||
		g[1].Value != 0.25 || g[1].Verdict != gate.VerdictPass || g[1].Taken != 3 {
		t.Errorf("stored and read back: %+v\n%s", g, b)
	}
}

// TestContinuousGate: a continuous gate blocks nothing while it passes
// (the rollout completes), and its failure mid-rollout halts every host:
// those that installed the revision roll back, and no host starts after
// the failing sample.
func TestContinuousGate(t *testing.T) {
	t.Run("passing", func(t *testing.T) {
		w := newNet(t, 6, "r1")
		w.sample = pass
		w.setDesired(gatedDesired(manifest.Rolling, 2, promGate("errs", manifest.WhenContinuous, 1, 1, 3)))
		w.drive(2*time.Minute, nil)
		for _, h := range w.names {
			if r := w.nodes[h].Row(); r.Installed != "r2" || r.Phase != PhaseSucceeded || w.nodes[h].halted() {
				t.Errorf("%s under a passing continuous gate: %+v", h, r)
			}
		}
		if len(w.samples) == 0 {
			t.Error("the continuous gate was never sampled")
		}
	})
	t.Run("failing", func(t *testing.T) {
		w := newNet(t, 6, "r1")
		var failedAt time.Duration
		w.sample = func(h string, j GateJob) gate.Result {
			if failedAt == 0 {
				failedAt = w.now
			}
			return gate.Fail
		}
		w.setDesired(gatedDesired(manifest.Rolling, 2, promGate("errs", manifest.WhenContinuous, 1, 1, 3)))
		w.drive(2*time.Minute, nil)
		if failedAt == 0 {
			t.Fatal("the continuous gate was never sampled")
		}
		started := 0
		for _, h := range w.names {
			n := w.nodes[h]
			if !n.halted() {
				t.Errorf("%s: not halted by the failed continuous gate", h)
			}
			if r := n.Row(); r.Installed != "r1" {
				t.Errorf("%s: installed %s after the halt, want r1 (rolled back or never started)", h, r.Installed)
			}
			if at, ok := w.startedAt[h]; ok && at != 0 {
				started++
				if at > failedAt {
					t.Errorf("%s started r2 at %s, after the gate failed at %s", h, at, failedAt)
				}
			}
		}
		if started == len(w.names) {
			t.Errorf("every host started r2: the failure stopped nothing")
		}
		for _, h := range w.names {
			if gs := w.nodes[h].Gates(); len(gs) != 1 || gs[0].Verdict != gate.VerdictFail {
				t.Errorf("%s: gates %+v, want the failed continuous gate", h, gs)
			}
		}
	})
}
