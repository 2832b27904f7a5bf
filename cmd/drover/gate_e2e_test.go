package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
