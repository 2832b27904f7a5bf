package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/gate/expr"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/prometheus/client_golang/prometheus"
)

// metricValue is the value of the series of name with the given label
// values (in the order of the metric's labels), -1 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i, lp := range m.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// gateFleet is a fleet whose Node evaluates one gate: each sample moves
// the job's due time on, as the Node does, until want samples arrived.
type gateFleet struct {
	stubFleet
	mu      sync.Mutex
	job     *rollout.GateJob
	samples []gate.Sample
	want    int
}

func (f *gateFleet) Evaluating() []rollout.GateJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.job == nil {
		return nil
	}
	return []rollout.GateJob{*f.job}
}

func (f *gateFleet) GateSample(name string, step int, s gate.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.job == nil || name != f.job.Gate.Name || step != f.job.Step {
		return
	}
	f.samples = append(f.samples, s)
	f.job.Due += 10 * time.Millisecond
	if len(f.samples) >= f.want {
		f.job = nil // the verdict: the Node evaluates it no more
	}
}

// TimeAt: the job's due times are on the wall clock already.
func (f *gateFleet) TimeAt(d time.Duration) time.Time { return time.Unix(0, 0).Add(d) }

// TestGateLoopSamplesWhatTheNodeSays: the daemon samples the gate the Node
// names with the manifest's credentials (a bearer token file), the hosts of
// the step in {{host}} and the revision's label, hands every sample to the
// fleet, counts them (zero-initialised per result), keeps the last value,
// and logs each sample quoting the query and the value, never the token.
func TestGateLoopSamplesWhatTheNodeSays(t *testing.T) {
	const token = "s3cr3t-t0ken-value"
	var mu sync.Mutex
	var queries []string
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		queries = append(queries, r.FormValue("query"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.17"]}]}}`))
	}))
	defer prom.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := manifest.Gate{Name: "err", When: manifest.WhenBatch, Interval: time.Second, Timeout: time.Second, Count: 1, FailureLimit: 2, InconclusiveLimit: 3,
		NoData: manifest.NoDataFail, Failure: mustExpr(t, "result >= 0.05"),
		Prometheus: &manifest.PrometheusCheck{URL: prom.URL, Query: `sum(rate(errors_total{host=~"{{host}}",revision="{{revision}}"}[1m]))`,
			Auth: manifest.Auth{BearerTokenFile: tokenFile}}}
	f := &gateFleet{want: 2, job: &rollout.GateJob{Gate: g, Step: 1, Revision: "r2", Hosts: []string{"web.1", "web.2"}, Due: time.Duration(time.Now().UnixNano())}}
	f.roster = rollout.RosterState{Epoch: 1, Members: 1}
	a := statusApp(t, &f.stubFleet, manifest.Deployment{Gates: []manifest.Gate{g}})
	a.fleet = f
	var logs bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, "v", "c", "go")
	if err != nil {
		t.Fatal(err)
	}
	a.metrics = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.gateLoop(ctx, &gate.Evaluator{}); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.samples)
		f.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if len(f.samples) != 2 || f.samples[0].Result != gate.Fail {
		t.Fatalf("samples %+v", f.samples)
	}
	if want := `sum(rate(errors_total{host=~"web\\.1|web\\.2",revision="v2"}[1m]))`; len(queries) == 0 || queries[0] != want {
		t.Errorf("query %q, want %q", queries, want)
	}
	if v := metricValue(t, reg, "drover_gate_evaluations_total", "hello", "err", "fail"); v != 2 {
		t.Errorf("fail evaluations %v", v)
	}
	if v := metricValue(t, reg, "drover_gate_evaluations_total", "hello", "err", "inconclusive"); v != 0 {
		t.Errorf("inconclusive evaluations %v", v)
	}
	if v := metricValue(t, reg, "drover_gate_last_value", "hello", "err"); v != 0.17 {
		t.Errorf("last value %v", v)
	}
	out := logs.String()
	for _, want := range []string{"gate sample", "sample.result=fail", "sample.value=0.17", `sum(rate(errors_total{host=~`, "evaluating gate"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, token) {
		t.Errorf("the bearer token is in the log:\n%s", out)
	}
}

func mustExpr(t *testing.T, s string) *expr.Expr {
	t.Helper()
	e, err := expr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
