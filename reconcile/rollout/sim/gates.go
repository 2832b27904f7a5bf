package sim

import (
	"fmt"
	"time"

	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// GateScript gives a simulated rollout health gates whose samples a script
// decides (drover simulate --gate-fail-at / --gate-inconclusive-at): every
// sample passes, except those of step FailAt, which fail, and those of step
// InconclusiveAt, which are inconclusive until the operator resumes the
// pause they cause (then they pass). The Nodes decide everything else as
// they do in the daemon: who evaluates, when a verdict is reached, what it
// does to the fleet (reconcile/rollout/PROTOCOL.md §10).
type GateScript struct {
	FailAt         int // step; -1: none
	InconclusiveAt int // step; -1: none
	// Count and Interval of the gate Run adds when the deployment has none
	// (a batch gate, a bake gate for canary); defaults 2 and 5 s.
	Count    int
	Interval time.Duration
	// ResumeAfter is how long after an inconclusive verdict the operator
	// runs drover resume (default 20 s).
	ResumeAfter time.Duration
}

// gateState is the simulator's global record of gates, for the checks.
type gateState struct {
	passed    map[int]time.Duration // step → when its gate first passed in any row
	failed    bool
	inconc    bool                     // the scripted inconclusive verdict came (later samples pass)
	pause     rollout.Flag             // the flag the inconclusive verdict set
	last      map[string]time.Duration // gate/step → last sample (any host)
	scheduled map[string]bool
	interval  time.Duration
	bound     time.Duration
}

func (s *Sim) initGates() {
	sc := *s.cfg.Gates
	if sc.Count == 0 {
		sc.Count = 2
	}
	if sc.Interval == 0 {
		sc.Interval = 5 * time.Second
	}
	if sc.ResumeAfter == 0 {
		sc.ResumeAfter = 20 * time.Second
	}
	if len(s.cfg.Deployment.Gates) == 0 {
		when := manifest.WhenBatch
		if s.cfg.Deployment.Strategy == manifest.Canary {
			when = manifest.WhenBake
		}
		s.cfg.Deployment.Gates = []manifest.Gate{{Name: "sim", When: when,
			Prometheus: &manifest.PrometheusCheck{URL: "http://prometheus:9090", Query: `sum(rate(errors_total{host=~"{{host}}"}[1m]))`},
			Interval:   sc.Interval, Timeout: sc.Interval, Count: sc.Count, FailureLimit: 2, InconclusiveLimit: 2, NoData: manifest.NoDataFail}}
	}
	s.gates = &gateState{passed: map[int]time.Duration{}, last: map[string]time.Duration{}, scheduled: map[string]bool{}, interval: sc.Interval}
	// A group gate waits for a crashed or cut-off evaluator for at most
	// memberlist's dead verdict (probe interval + suspicion timeout, as
	// simulated), a gossip round of the verdict and the new evaluator's
	// next sample (one interval, plus what a sample takes).
	s.gates.bound = s.cfg.Params.ProbeInterval + s.tsusp + 2*time.Second + sc.Interval + sampleTime
	s.cfg.Gates = &sc
}

// sampleTime bounds how long a simulated sample takes.
const sampleTime = 200 * time.Millisecond

func gateJobKey(j rollout.GateJob) string {
	return fmt.Sprintf("%s/%d/%d/%d", j.Gate.Name, j.Step, j.Gen, j.Due)
}

// scheduleGates schedules the samples of h's gate jobs when they are due.
func (s *Sim) scheduleGates(h *host) {
	for _, j := range h.node.Evaluating() {
		k := h.name + "/" + gateJobKey(j)
		if s.gates.scheduled[k] {
			continue
		}
		s.gates.scheduled[k] = true
		took := time.Duration(s.rng.Int64N(int64(sampleTime)))
		s.push(event{at: s.virtual(h, j.Due) + took, kind: evGateSample, host: h.id, gen: h.gen, dep: gateJobKey(j), d: took})
	}
}

// gateSample takes one scripted sample for the job e names, if h still
// evaluates it.
func (s *Sim) gateSample(e *event) {
	h := s.hosts[e.host]
	delete(s.gates.scheduled, h.name+"/"+e.dep)
	if !h.up || h.paused || e.gen != h.gen {
		return
	}
	var job *rollout.GateJob
	for _, j := range h.node.Evaluating() {
		if gateJobKey(j) == e.dep {
			job = &j
			break
		}
	}
	if job == nil {
		return
	}
	sc := *s.cfg.Gates
	res := gate.Pass
	switch {
	case job.Step == sc.FailAt:
		res = gate.Fail
	case job.Step == sc.InconclusiveAt && !s.gates.inconc:
		res = gate.Inconclusive
	}
	smp := gate.Sample{Gate: job.Gate.Name, Result: res, Values: []gate.Value{{V: 0.01}}, Query: job.Gate.Prometheus.Query,
		Reason: "scripted " + res.String(), Took: e.d}
	key := fmt.Sprintf("%s/%s/%d", job.Revision, job.Gate.Name, job.Step)
	if last, ok := s.gates.last[key]; ok && s.gapCounts() {
		if gap := s.now - last; gap > s.res.GateMaxGap {
			s.res.GateMaxGap = gap
		}
	}
	s.gates.last[key] = s.now
	s.res.Faults["gate-sample"]++
	s.trace("%s samples gate %s of step %d of %s (gen %d): %s", h.name, job.Gate.Name, job.Step, job.Revision, job.Gen, res)
	s.runThen(h, &reconcile.Input{Calls: []reconcile.Call{{Kind: reconcile.CallGateSample, Gate: job.Gate.Name, Step: job.Step, Sample: smp}}}, func() {
		for _, g := range h.node.Row().Gates {
			switch {
			case g.Verdict == gate.VerdictPass:
				if _, ok := s.gates.passed[int(g.Step)]; !ok {
					s.gates.passed[int(g.Step)] = s.now
					s.trace("gate %s of step %d passed at %s", g.Name, g.Step, h.name)
				}
			case g.Verdict == gate.VerdictFail && !s.gates.failed:
				s.gates.failed = true
				s.res.Faults["gate-fail"]++
				s.trace("gate %s of step %d failed at %s: %s", g.Name, g.Step, h.name, g.Reason)
			case g.Verdict == gate.VerdictInconclusive && !s.gates.inconc:
				s.gates.inconc = true
				s.gates.pause = h.node.Flag()
				s.res.Faults["gate-inconclusive"]++
				s.trace("gate %s of step %d inconclusive at %s: flag %+v", g.Name, g.Step, h.name, s.gates.pause)
				clear(s.gates.last)
				s.push(event{at: s.now + sc.ResumeAfter, kind: evGateResume, host: -1})
			}
		}
	})
}

// gapCounts: the time between two samples of one gate counts against the
// bound only while nothing but crashes and loss disturbs the fleet (a
// partition may cut every host that could evaluate off the majority, and a
// pause stops sampling on purpose).
func (s *Sim) gapCounts() bool {
	return !s.partitioned && len(s.cuts) == 0 && !s.op.Paused && !(s.gates.inconc && s.gates.pause.Paused && s.op.Clock < s.gates.pause.Clock)
}

// gateResume is the operator's drover resume after the gate's pause, at a
// host whose view shows that pause (tried again a second later if none).
func (s *Sim) gateResume() {
	var cands []*host
	for _, h := range s.hosts {
		if f := h.node.Flag(); h.up && h.joined && !h.paused && f.Paused && !flagNewer(s.gates.pause, f) {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		s.push(event{at: s.now + time.Second, kind: evGateResume, host: -1})
		return
	}
	h := cands[s.rng.IntN(len(cands))]
	s.runThen(h, &reconcile.Input{Calls: []reconcile.Call{{Kind: reconcile.CallPaused, Paused: false}}}, func() {
		s.op = h.node.Flag()
		clear(s.gates.last)
		s.res.Faults["gate-resume"]++
		s.trace("operator: drover resume at %s after the gate's pause (flag %+v)", h.name, s.op)
	})
}

// checkGateStart: a forward start of step k needs every gate of every step
// before it passed (G1), and none comes under the gate's pause (G2).
func (s *Sim) checkGateStart(h *host, d rollout.Decision) {
	if d.Rollback || d.Slotless {
		return
	}
	k := h.node.GateStep()
	if s.cfg.Deployment.Strategy == manifest.Canary && s.cfg.Deployment.Gates[0].When == manifest.WhenBake {
		k = min(k, 1) // a bake gate judges the canary step only
	}
	for j := 0; j < k; j++ {
		if _, ok := s.gates.passed[j]; !ok {
			s.violation("gates: %s (step %d) started %s before step %d's gates passed", h.name, k, d.Deployment, j)
			break
		}
	}
	if s.gates.inconc && h.knew == s.gates.pause && s.gates.pause.Paused {
		s.violation("gates: %s started %s under the gate's pause %+v it knew", h.name, d.Deployment, s.gates.pause)
	}
}

// checkGatesEnd: a failed gate halted every host; the rollout got past an
// inconclusive one only through the resume.
func (s *Sim) checkGatesEnd() {
	if !s.res.Completed {
		return
	}
	for _, h := range s.hosts {
		if !h.joined || !h.up {
			continue
		}
		r := h.node.Row()
		if s.gates.failed && !r.Halted {
			s.violation("gates: the gate failed, %s did not halt (%s)", h.name, r.Phase)
		}
	}
	if s.cfg.Gates.FailAt >= 0 && !s.gates.failed {
		// the step may not exist in a small group; only a step that ran
		// must have failed
		if _, ok := s.gates.passed[s.cfg.Gates.FailAt]; ok {
			s.violation("gates: step %d's gate passed; the script fails it", s.cfg.Gates.FailAt)
		}
	}
}
