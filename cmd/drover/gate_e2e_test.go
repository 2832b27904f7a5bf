package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// gateTestApp is the fleet's application as Prometheus sees it: a real
// HTTP endpoint exposing demo_error_ratio (client_golang), which the test
// turns bad.
type gateTestApp struct {
	ratio prometheus.Gauge
	srv   *httptest.Server
}

func newGateTestApp(t *testing.T) *gateTestApp {
	reg := prometheus.NewRegistry()
	a := &gateTestApp{ratio: prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_error_ratio", Help: "Share of requests that failed."})}
	reg.MustRegister(a.ratio)
	a.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(a.srv.Close)
	return a
}

// startTestPrometheus runs Debian's Prometheus on a free loopback port,
// scraping target every second; it dies with the test binary.
func startTestPrometheus(t *testing.T, target string) string {
	t.Helper()
	const bin = "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("needs Debian's prometheus package (%s): apt-get install prometheus; .ci/run installs it", bin)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: app\n    static_configs: [{targets: [%q]}]\n",
		strings.TrimPrefix(target, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var log bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("prometheus exited: %s", log.String())
		default:
		}
		// Ready, and the target scraped: the query answers a sample.
		resp, err := http.Get(url + "/api/v1/query?query=demo_error_ratio")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(b.String(), `"value"`) {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape the test app in 60s: %s", log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func gateOf(st *daemon.Status) (daemon.GateStatus, bool) {
	for _, a := range st.Apps {
		if a.Name == fleetApp && len(a.Gates) > 0 {
			return a.Gates[0], true
		}
	}
	return daemon.GateStatus{}, false
}

func appOf(st *daemon.Status) *daemon.AppStatus {
	for i := range st.Apps {
		if st.Apps[i].Name == fleetApp {
			return &st.Apps[i]
		}
	}
	return nil
}

// TestFleetGateHaltsCanary (issue 13, done-when): three real agents, a real
// Prometheus scraping a real test app, a canary with a bake gate on the
// app's error ratio. The canary succeeds and its gate samples pass; then
// the metric turns bad, the gate fails within failure_limit × interval
// (plus the scrape), every host halts, the canary rolls back to v1, and no
// other host ever starts v2. The time from the metric turning bad to the
// halt is measured on every host.
func TestFleetGateHaltsCanary(t *testing.T) {
	app := newGateTestApp(t)
	prom := startTestPrometheus(t, app.srv.URL)
	const n = 3
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	const interval, failureLimit = time.Second, 2
	gates := fmt.Sprintf(`    - name: error-rate
      when: bake
      prometheus: {url: %q, query: 'max(demo_error_ratio)'}
      failure: result >= 0.1
      success: result < 0.1
      interval: %s
      count: 30
      failure_limit: %d
`, prom, interval, failureLimit)
	f.push("v2", "canary", bundleOpts{canary: "1", batch: "1", gates: gates})
	// The canary installed v2 and its gate passes samples.
	f.waitFor(0, 120*time.Second, "the bake gate sampling the canary", func(st *daemon.Status) bool {
		g, ok := gateOf(st)
		return ok && g.Samples >= 2 && g.Verdict == "pending"
	})
	bad := time.Now()
	app.ratio.Set(0.5)
	var mu sync.Mutex
	halted := map[string]time.Duration{}
	var wg sync.WaitGroup
	for i := range f.agents {
		wg.Go(func() {
			f.waitFor(i, 60*time.Second, "the halt", func(st *daemon.Status) bool {
				a := appOf(st)
				if a == nil || !a.Halted {
					return false
				}
				mu.Lock()
				halted[f.agents[i].name] = time.Since(bad)
				mu.Unlock()
				return true
			})
		})
	}
	wg.Wait()
	t.Logf("metric bad → halt seen in status: %v (failure_limit %d × interval %s, scrape 1s, status polled every 0.1s)", halted, failureLimit, interval)
	for h, d := range halted {
		if d > time.Duration(failureLimit)*interval+5*time.Second {
			t.Errorf("%s saw the halt %s after the metric turned bad", h, d)
		}
	}
	st := f.waitFor(0, 60*time.Second, "every host on v1 again", allOn(n, "v1"))
	a := appOf(st)
	g, _ := gateOf(st)
	if g.Verdict != "failed" || !strings.Contains(g.Reason, "demo_error_ratio") || !strings.Contains(g.Reason, "0.5") {
		t.Errorf("gate in status: %+v", g)
	}
	why := strings.Join(a.Why, "\n")
	if !strings.Contains(why, "halted: gate error-rate failed") {
		t.Errorf("why: %s", why)
	}
	if ivs := f.lifecycles("v2"); len(ivs) != 1 {
		t.Errorf("%d hosts ran v2, want only the canary: %+v", len(ivs), ivs)
	}
	// The evaluator counted its samples, and every host shows the verdict.
	for i := range f.agents {
		body := scrape(t, f.agents[i].metrics)
		if !strings.Contains(body, `drover_gate_verdict{app="hello",gate="error-rate",verdict="failed"} 1`) {
			t.Errorf("%s: no failed verdict in its metrics", f.agents[i].name)
		}
		if !strings.Contains(body, `drover_gate_evaluations_total{app="hello",gate="error-rate",result="inconclusive"}`) {
			t.Errorf("%s: drover_gate_evaluations_total not zero-initialised", f.agents[i].name)
		}
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// switchProxy stands for Prometheus at a fixed address and can be taken
// down (connections refused, as when Prometheus is down) and brought back.
type switchProxy struct {
	t      *testing.T
	addr   string
	target *url.URL
	srv    *http.Server
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{t: t, addr: ln.Addr().String(), target: u}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *switchProxy) serve(ln net.Listener) {
	p.srv = &http.Server{Handler: httputil.NewSingleHostReverseProxy(p.target)}
	go p.srv.Serve(ln)
}

func (p *switchProxy) down() {
	if p.srv != nil {
		p.srv.Close()
		p.srv = nil
	}
}

func (p *switchProxy) up() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("listen again on %s: %v", p.addr, err)
}

func (p *switchProxy) url() string { return "http://" + p.addr }

// TestFleetGateEvaluatorKilledAndPrometheusDown (issue 13, done-when): a
// batch gate over a real Prometheus; the host evaluating it is killed with
// SIGKILL mid-evaluation and another host resumes its samples (the
// rollout does not stall); then Prometheus goes down, the next step's gate
// turns inconclusive, the fleet pauses with the reason in status, nothing
// starts, and once Prometheus is back `drover resume` starts a fresh run
// that passes and the rollout completes.
func TestFleetGateEvaluatorKilledAndPrometheusDown(t *testing.T) {
	app := newGateTestApp(t)
	prom := newSwitchProxy(t, startTestPrometheus(t, app.srv.URL))
	const n = 3
	f := newFleet(t, n, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	gates := fmt.Sprintf(`    - name: err
      when: batch
      prometheus: {url: %q, query: 'max(demo_error_ratio)'}
      failure: result >= 0.1
      interval: 1s
      count: 4
      failure_limit: 2
      inconclusive_limit: 2
`, prom.url())
	f.push("v2", "one-at-a-time", bundleOpts{gates: gates})
	index := func(name string) int {
		for i, a := range f.agents {
			if a.name == name {
				return i
			}
		}
		t.Fatalf("no agent %s", name)
		return -1
	}
	var first daemon.GateStatus
	f.waitFor(0, 120*time.Second, "step 0's gate sampled", func(st *daemon.Status) bool {
		g, ok := gateOf(st)
		first = g
		return ok && g.Step == 0 && g.Samples >= 2 && g.Verdict == "pending" && g.Evaluator != ""
	})
	killed := index(first.Evaluator)
	other := (killed + 1) % n
	f.kill9(killed)
	tKill := time.Now()
	var took time.Duration
	f.waitFor(other, 60*time.Second, "another host resuming step 0's gate", func(st *daemon.Status) bool {
		g, ok := gateOf(st)
		if ok && g.Step == 0 && g.Evaluator != "" && g.Evaluator != first.Evaluator && g.Samples > first.Samples {
			took = time.Since(tKill)
			return true
		}
		return ok && g.Step > 0
	})
	st := f.waitFor(other, 60*time.Second, "step 0's gate passed", func(st *daemon.Status) bool {
		g, ok := gateOf(st)
		return ok && (g.Step == 0 && g.Verdict == "passed" || g.Step > 0)
	})
	g, _ := gateOf(st)
	t.Logf("evaluator %s killed after %d samples; another host resumed after %s; step 0: %+v", first.Evaluator, first.Samples, took, g)
	if took == 0 || took > 15*time.Second {
		t.Errorf("the gate's samples resumed %s after the evaluator was killed", took)
	}
	prom.down()
	tDown := time.Now()
	st = f.waitFor(other, 60*time.Second, "the fleet paused by the inconclusive gate", func(st *daemon.Status) bool {
		a := appOf(st)
		return a != nil && a.Paused && a.PausedBy == "gate"
	})
	a := appOf(st)
	why := strings.Join(a.Why, "\n")
	t.Logf("paused %s after Prometheus went down: %s", time.Since(tDown).Round(100*time.Millisecond), why)
	if !strings.Contains(why, "paused: gate err inconclusive") || !strings.Contains(why, "max(demo_error_ratio)") {
		t.Errorf("why: %s", why)
	}
	started := len(f.lifecycles("v2"))
	time.Sleep(3 * time.Second)
	if now := len(f.lifecycles("v2")); now != started {
		t.Errorf("%d hosts started v2 under the gate's pause", now-started)
	}
	prom.up()
	f.start(killed)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := daemon.NewClient(f.agents[other].socket).SetPaused(ctx, fleetApp, false); err != nil {
		t.Fatal(err)
	}
	st = f.waitFor(other, 120*time.Second, "v2 everywhere after the resume", allOn(n, "v2"))
	if a := appOf(st); a.Paused || a.Halted {
		t.Errorf("after the resume: paused %v (%s), halted %v", a.Paused, a.PauseReason, a.Halted)
	}
	if ivs := f.lifecycles("v2"); len(ivs) != n {
		t.Errorf("%d lifecycles of v2, want %d: %+v", len(ivs), n, ivs)
	}
}

// TestFleetGateNoData (issue 13, done-when): a query that returns no data
// follows the gate's no_data: fail (the default) halts the canary and rolls
// it back; pass lets the rollout go on to every host.
func TestFleetGateNoData(t *testing.T) {
	app := newGateTestApp(t)
	prom := startTestPrometheus(t, app.srv.URL)
	for _, tt := range []struct {
		noData string
		halts  bool
	}{{"", true}, {"pass", false}} {
		t.Run("no_data="+tt.noData, func(t *testing.T) {
			const n = 3
			f := newFleet(t, n, "one-at-a-time")
			f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
			gates := fmt.Sprintf(`    - name: missing
      when: bake
      prometheus: {url: %q, query: 'max(demo_metric_nobody_exports)'}
      failure: result >= 0.1
      interval: 1s
      count: 2
      failure_limit: 1
`, prom)
			if tt.noData != "" {
				gates += "      no_data: " + tt.noData + "\n"
			}
			f.push("v2", "canary", bundleOpts{canary: "1", batch: "2", gates: gates})
			if !tt.halts {
				st := f.waitFor(0, 120*time.Second, "v2 everywhere", allOn(n, "v2"))
				if g, _ := gateOf(st); g.Verdict != "passed" || g.Value != nil {
					t.Errorf("gate: %+v (want passed, no value)", g)
				}
				return
			}
			st := f.waitFor(0, 120*time.Second, "the halt and the canary's rollback", func(st *daemon.Status) bool {
				a := appOf(st)
				return a != nil && a.Halted && allOn(n, "v1")(st)
			})
			g, _ := gateOf(st)
			if g.Verdict != "failed" || !strings.Contains(g.Reason, "no data") {
				t.Errorf("gate: %+v", g)
			}
			if ivs := f.lifecycles("v2"); len(ivs) != 1 {
				t.Errorf("%d hosts ran v2, want only the canary", len(ivs))
			}
		})
	}
}
