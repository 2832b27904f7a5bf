package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// Health gates on this host (issue 13, reconcile/gate/DESIGN.md): the
// rollout's Node says which gates this host evaluates (fleet.Evaluating);
// this loop takes their samples when they are due, with the manifest's
// credentials (read from their files for each sample, never logged), and
// hands each to the fleet, whose Node decides the verdict. The Node owns
// the gate's run (resumed from gossip when this host takes over from
// another evaluator), so the daemon follows the Node's due times rather
// than a gate.Runner of its own, which would start from zero.

// GateStatus is one gate's merged verdict in `drover status`, the same on
// every host once gossip has delivered the evaluators' rows.
type GateStatus struct {
	Name string `json:"name"`
	When string `json:"when"`
	// Step is the step of the rollout whose verdict this is (0 = the
	// first: the canary step, the first batch or host).
	Step    int    `json:"step"`
	Verdict string `json:"verdict"` // pending, passed, failed, inconclusive
	// Value is the last sample's value the evaluator published (nil: none
	// yet, or no data).
	Value     *float64 `json:"value,omitempty"`
	Samples   int      `json:"samples"`
	Reason    string   `json:"reason,omitempty"`
	Evaluator string   `json:"evaluator,omitempty"`
}

func gateStatuses(gs []rollout.GateStatus) []GateStatus {
	var out []GateStatus
	for _, g := range gs {
		s := GateStatus{Name: g.Name, When: string(g.When), Step: g.Step, Verdict: g.Verdict.String(),
			Samples: g.Taken, Reason: g.Reason, Evaluator: g.Evaluator}
		if g.Taken > 0 && !math.IsNaN(g.Value) {
			v := g.Value
			s.Value = &v
		}
		out = append(out, s)
	}
	return out
}

// gateSampler takes one sample; *gate.Evaluator is one.
type gateSampler = gate.Sampler

// gateLoop runs the samples of the gates this host evaluates until ctx
// ends.
func (a *app) gateLoop(ctx context.Context, sampler gateSampler) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, c := range running {
			c()
		}
	}()
	inited := map[string]bool{}
	verdicts := map[string]string{}
	for {
		a.initGateMetrics(inited)
		a.logGateVerdicts(verdicts)
		jobs := a.fleet.Evaluating()
		want := map[string]rollout.GateJob{}
		for _, j := range jobs {
			want[jobKey(j)] = j
		}
		for k, c := range running {
			if _, ok := want[k]; !ok {
				c() // a verdict was reached, or another host evaluates it now
				delete(running, k)
			}
		}
		for k, j := range want {
			if running[k] != nil {
				continue
			}
			jctx, cancel := context.WithCancel(ctx)
			running[k] = cancel
			log := a.log.With("gate", j.Gate.Name, "step", j.Step, "revision", j.Revision)
			log.Info("evaluating gate: this host is its evaluator now", "when", j.Gate.When, "hosts", strings.Join(j.Hosts, ","))
			wg.Go(func() { a.gateJob(jctx, sampler, k, log) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200*time.Millisecond + time.Duration(rand.Int64N(int64(100*time.Millisecond)))):
		}
	}
}

// initGateMetrics zero-initialises drover_gate_evaluations_total for every
// gate the manifest declares, once per gate.
func (a *app) initGateMetrics(done map[string]bool) {
	if a.metrics == nil || a.metrics.GateEvaluations == nil {
		return
	}
	var gates []manifest.Gate
	if m := a.deploy.Manifest(); m != nil {
		gates = m.Deployment.Gates
	}
	for _, g := range gates {
		if done[g.Name] {
			continue
		}
		done[g.Name] = true
		for _, r := range []gate.Result{gate.Pass, gate.Fail, gate.Inconclusive} {
			a.metrics.GateEvaluations.WithLabelValues(a.cfg.Name, g.Name, r.String())
		}
	}
}

func jobKey(j rollout.GateJob) string {
	return fmt.Sprintf("%s\x00%s\x00%d\x00%d", j.Revision, j.Gate.Name, j.Step, j.Gen)
}

// currentJob is the job of key as the fleet's latest snapshot shows it.
func (a *app) currentJob(key string) (rollout.GateJob, bool) {
	for _, j := range a.fleet.Evaluating() {
		if jobKey(j) == key {
			return j, true
		}
	}
	return rollout.GateJob{}, false
}

// gateJob samples one gate when each sample is due, until ctx ends (the
// loop cancels it when the job is gone from Evaluating).
func (a *app) gateJob(ctx context.Context, sampler gateSampler, key string, log *slog.Logger) {
	lastDue := time.Duration(-1)
	for {
		j, ok := a.currentJob(key)
		if !ok {
			return
		}
		if j.Due == lastDue {
			// The sample is still on its way to the Node: look again soon.
			if !sleepCtx(ctx, 20*time.Millisecond) {
				return
			}
			continue
		}
		if wait := time.Until(a.fleet.TimeAt(j.Due)); wait > 0 && !sleepCtx(ctx, wait) {
			return
		}
		s := a.sampleGate(ctx, sampler, j)
		if ctx.Err() != nil {
			return // a sample cut short is no evidence
		}
		lastDue = j.Due
		a.recordGateSample(j, s, log)
		a.fleet.GateSample(j.Gate.Name, j.Step, s)
	}
}

// sampleGate takes one sample of j. An http gate whose URL names {{host}}
// under batch, bake or continuous is sampled once per host; the step's
// sample is the worst (fail > inconclusive > pass), with every value.
func (a *app) sampleGate(ctx context.Context, sampler gateSampler, j rollout.GateJob) gate.Sample {
	vars := gate.Vars{App: a.cfg.Name, Group: a.cfg.Group, Revision: a.revisionLabel(j.Revision), Host: hostsPattern(j.Hosts)}
	if j.Gate.When == manifest.WhenHost {
		vars.Host = a.host
	}
	if j.Gate.HTTP == nil || !strings.Contains(j.Gate.HTTP.URL, "{{host}}") || len(j.Hosts) <= 1 {
		if len(j.Hosts) == 1 {
			vars.Host = j.Hosts[0]
		}
		return sampler.Evaluate(ctx, j.Gate, vars)
	}
	rank := map[gate.Result]int{gate.Pass: 0, gate.Inconclusive: 1, gate.Fail: 2}
	var worst gate.Sample
	var values []gate.Value
	start := time.Now()
	for i, h := range j.Hosts {
		v := vars
		v.Host = h
		s := sampler.Evaluate(ctx, j.Gate, v)
		for _, x := range s.Values {
			x.Labels = fmt.Sprintf("{host=%q}", h)
			values = append(values, x)
		}
		if i == 0 || rank[s.Result] > rank[worst.Result] {
			worst = s
		}
		if ctx.Err() != nil {
			break
		}
	}
	worst.Values, worst.At, worst.Took = values, start, time.Since(start)
	return worst
}

// hostsPattern is {{host}} for a group of hosts: a regular expression that
// matches any of them (use =~); EscapePromQL doubles its backslashes for a
// PromQL string.
func hostsPattern(hosts []string) string {
	q := make([]string, len(hosts))
	for i, h := range hosts {
		q[i] = regexp.QuoteMeta(h)
	}
	return strings.Join(q, "|")
}

func (a *app) revisionLabel(id string) string {
	if r, ok := a.deploy.Known(id); ok && r.Label != "" {
		return r.Label
	}
	return id
}

// recordGateSample counts, logs and shows one sample: the log line quotes
// the query and the value (a Sample holds no credential).
func (a *app) recordGateSample(j rollout.GateJob, s gate.Sample, log *slog.Logger) {
	if m := a.metrics; m != nil && m.GateEvaluations != nil {
		m.GateEvaluations.WithLabelValues(a.cfg.Name, j.Gate.Name, s.Result.String()).Inc()
		v := math.NaN()
		for _, x := range s.Values {
			if !math.IsNaN(x.V) && (math.IsNaN(v) || x.V > v) {
				v = x.V
			}
		}
		m.GateLastValue.WithLabelValues(a.cfg.Name, j.Gate.Name).Set(v)
	}
	level := slog.LevelInfo
	if s.Result != gate.Pass {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "gate sample", "sample", s)
}

// logGateVerdicts logs each gate's merged verdict once when it changes, at
// warn for a failure or an inconclusive verdict.
func (a *app) logGateVerdicts(seen map[string]string) {
	for _, g := range a.fleet.Gates() {
		if g.Verdict == gate.VerdictPending {
			continue
		}
		k := fmt.Sprintf("%s/%d", g.Name, g.Step)
		v := g.Verdict.String() + "/" + g.Reason
		if seen[k] == v {
			continue
		}
		seen[k] = v
		level := slog.LevelInfo
		if g.Verdict != gate.VerdictPass {
			level = slog.LevelWarn
		}
		a.log.Log(context.Background(), level, "gate verdict", "gate", g.Name, "step", g.Step, "verdict", g.Verdict.String(),
			"value", g.Value, "evaluator", g.Evaluator, "reason", g.Reason)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
