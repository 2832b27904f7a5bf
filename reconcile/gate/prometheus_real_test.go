package gate

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// These tests run a real Prometheus (Debian's prometheus package; CI
// installs it) scraping a real test app every second, and evaluate gates
// against it.

const promBinary = "/usr/bin/prometheus"

// testApp is an app exposing request counters with client_golang, as a
// real service would: demo_requests_total{app,code}.
type testApp struct {
	requests *prometheus.CounterVec
	srv      *httptest.Server
}

func newTestApp(t *testing.T) *testApp {
	reg := prometheus.NewRegistry()
	a := &testApp{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_requests_total", Help: "Requests served, by app and status code.",
	}, []string{"app", "code"})}
	reg.MustRegister(a.requests)
	// web serves 100 requests without an error; idle serves none (0/0).
	a.requests.WithLabelValues("web", "200").Add(100)
	a.requests.WithLabelValues("web", "500")
	a.requests.WithLabelValues("idle", "200")
	a.requests.WithLabelValues("idle", "500")
	a.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(a.srv.Close)
	return a
}

// promServer is a running Prometheus.
type promServer struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promPassword is the password of user drover on the test Prometheus, and
// promPasswordHash its bcrypt hash (cost 4) for Prometheus' web config.
const (
	promPassword     = "real-pr0m-pass"
	promPasswordHash = "$2a$04$I0PkcFz2LngjWibQ5F3qAOPKSNuH9SEcHUSsfrjYFNKyG6qiJ3u9C"
)

// startPrometheus starts Prometheus on a free loopback port scraping
// target every second, with basic auth for user drover / promPassword.
func startPrometheus(t *testing.T, target string) *promServer {
	password := promPassword
	t.Helper()
	if _, err := os.Stat(promBinary); err != nil {
		t.Skipf("needs Debian's prometheus package (%s): apt-get install prometheus; .ci/run installs it", promBinary)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"+
		"scrape_configs:\n  - job_name: app\n    static_configs: [{targets: [%q]}]\n", strings.TrimPrefix(target, "http://"))
	web := fmt.Sprintf("basic_auth_users:\n  drover: %q\n", promPasswordHash)
	for name, body := range map[string]string{"prometheus.yml": cfg, "web.yml": web} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &promServer{done: make(chan struct{}), log: &bytes.Buffer{}}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p.url = "http://" + addr
	p.cmd = exec.Command(promBinary,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--web.config.file="+filepath.Join(dir, "web.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Prometheus dies with the test binary, even one killed by a timeout.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	// Ready when /-/ready answers 200 (with the credentials web.yml asks for).
	waitFor(t, 60*time.Second, "prometheus /-/ready", func() bool {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited: %s", p.log)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, p.url+"/-/ready", nil)
		req.SetBasicAuth("drover", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// stop stops Prometheus (idempotent) and waits for it.
func (p *promServer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls cond every 100 ms until it holds, or fails the test at the
// deadline. Polling a condition, never sleeping as synchronisation.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		<-tick.C
	}
}

func TestRealPrometheus(t *testing.T) {
	const password = promPassword
	app := newTestApp(t)
	prom := startPrometheus(t, app.srv.URL)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := manifest.Auth{BasicAuth: &manifest.BasicAuth{Username: "drover", PasswordFile: pwFile}}
	ev := &Evaluator{}
	vars := Vars{App: "web", Group: "web-prod", Host: "web-1", Revision: "r2"}
	gate := func(query, success, failure string, noData manifest.NoData) manifest.Gate {
		g := promGate(t, prom.url, query, success, failure, noData)
		g.Name, g.Timeout = "error-rate", 5*time.Second
		g.Prometheus.Auth = auth
		return g
	}
	const errorRate = `sum(demo_requests_total{app="{{app}}",code=~"5.."}) / sum(demo_requests_total{app="{{app}}"})`
	errGate := gate(errorRate, "result < 0.01", "result >= 0.05", manifest.NoDataFail)

	// valueIs waits until Prometheus has scraped the app's counter at v.
	valueIs := func(app, code string, v float64) func() bool {
		return func() bool {
			g := gate(fmt.Sprintf(`demo_requests_total{app=%q,code=%q}`, app, code), fmt.Sprintf("result == %g", v), "", manifest.NoDataInconclusive)
			return ev.Evaluate(context.Background(), g, vars).Result == Pass
		}
	}
	waitFor(t, 30*time.Second, "the app's series in prometheus", valueIs("web", "200", 100))

	t.Run("healthy passes", func(t *testing.T) {
		s := ev.Evaluate(context.Background(), errGate, vars)
		if s.Result != Pass || len(s.Values) != 1 || s.Values[0].V != 0 {
			t.Fatalf("got %s", s)
		}
		want := `sum(demo_requests_total{app="web",code=~"5.."}) / sum(demo_requests_total{app="web"})`
		if s.Query != want || s.URL != prom.url+"/api/v1/query" {
			t.Fatalf("query %q at %q", s.Query, s.URL)
		}
		t.Logf("%s", s)
	})

	t.Run("a gate from a manifest", func(t *testing.T) {
		yml := fmt.Sprintf(`version: 1
application: web
deployment:
  strategy: canary
  canary: 1
  batch: 1
  gates:
    - name: error-rate
      prometheus:
        url: %s
        query: %s
        basic_auth: {username: drover, password_file: %s}
      success: result < 0.01
      failure: result >= 0.05
`, prom.url, strconv.Quote(errorRate), pwFile)
		m, err := manifest.Parse("manifest.yaml", []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		g := m.Deployment.Gates[0]
		if g.When != manifest.WhenBake || g.NoData != manifest.NoDataFail {
			t.Fatalf("defaults: %+v", g)
		}
		if s := ev.Evaluate(context.Background(), g, vars); s.Result != Pass {
			t.Fatalf("got %s", s)
		}
	})

	t.Run("no data follows no_data", func(t *testing.T) {
		for _, pol := range []struct {
			p    manifest.NoData
			want Result
		}{{manifest.NoDataFail, Fail}, {manifest.NoDataInconclusive, Inconclusive}, {manifest.NoDataPass, Pass}} {
			g := gate(`sum(demo_requests_total{app="no-such-app"})`, "result < 0.01", "", pol.p)
			s := ev.Evaluate(context.Background(), g, vars)
			if s.Result != pol.want || !s.NoData || !strings.Contains(s.Reason, "empty vector") {
				t.Errorf("no_data %s: got %s", pol.p, s)
			}
		}
		// 0/0 is NaN: an app without traffic has no error rate.
		s := ev.Evaluate(context.Background(), errGate, Vars{App: "idle"})
		if s.Result != Fail || !s.NoData || !strings.Contains(s.Reason, "NaN") {
			t.Errorf("idle app: got %s", s)
		}
	})

	t.Run("bad query is inconclusive", func(t *testing.T) {
		s := ev.Evaluate(context.Background(), gate(`sum(demo_requests_total`, "result < 1", "", ""), vars)
		if s.Result != Inconclusive || !strings.Contains(s.Reason, "prometheus answered 400: bad_data") {
			t.Fatalf("got %s", s)
		}
	})

	t.Run("wrong password is inconclusive", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, []byte("nope"), 0o600)
		g := errGate
		g.Prometheus = &manifest.PrometheusCheck{URL: prom.url, Query: errorRate,
			Auth: manifest.Auth{BasicAuth: &manifest.BasicAuth{Username: "drover", PasswordFile: bad}}}
		s := ev.Evaluate(context.Background(), g, vars)
		if s.Result != Inconclusive || s.Status != http.StatusUnauthorized {
			t.Fatalf("got %s (status %d)", s, s.Status)
		}
	})

	t.Run("errors going bad fail the gate", func(t *testing.T) {
		// A continuous gate sampling every second, failing after two
		// consecutive failures, watches the app while its errors rise. (A
		// generous inconclusive_limit: a loaded CI machine may time out a
		// sample, which must not end the test as inconclusive.)
		g := errGate
		g.When, g.Count, g.Interval, g.Timeout, g.FailureLimit, g.InconclusiveLimit = manifest.WhenContinuous, 0, time.Second, time.Second, 2, 10
		samples := make(chan Sample, 100)
		rn := &Runner{Sampler: ev, Clock: RealClock{}, OnSample: func(s Sample, _ Verdict) { samples <- s }}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		type out struct {
			v   Verdict
			why string
			err error
		}
		done := make(chan out, 1)
		go func() {
			v, why, err := rn.Run(ctx, g, vars)
			done <- out{v, why, err}
		}()
		// Healthy first: a passing sample (an inconclusive one, a timeout
		// on a loaded machine, is let by).
		for s := <-samples; s.Result != Pass; s = <-samples {
			if s.Result == Fail {
				t.Fatalf("a healthy sample failed: %s", s)
			}
		}
		bad := time.Now()
		app.requests.WithLabelValues("web", "500").Add(20) // 20/120 ≈ 0.17
		o := <-done
		took := time.Since(bad)
		if o.v != VerdictFail || o.err != nil || !strings.Contains(o.why, "2 consecutive failed samples") || !strings.Contains(o.why, "meets failure result >= 0.05") {
			t.Fatalf("got %s %q %v", o.v, o.why, o.err)
		}
		t.Logf("errors rose → gate failed in %s (scrape 1s, interval 1s, failure_limit 2): %s", took.Round(time.Millisecond), o.why)
		// The same query, evaluated once more, agrees.
		waitFor(t, 30*time.Second, "errors scraped", valueIs("web", "500", 20))
		if s := ev.Evaluate(context.Background(), errGate, vars); s.Result != Fail || s.Values[0].V < 0.16 || s.Values[0].V > 0.17 {
			t.Fatalf("got %s", s)
		}
	})

	t.Run("prometheus stopped is inconclusive", func(t *testing.T) {
		prom.stop()
		s := ev.Evaluate(context.Background(), errGate, vars)
		if s.Result != Inconclusive || !strings.Contains(s.Reason, "prometheus: unreachable:") || s.Err == "" {
			t.Fatalf("got %s (err %q)", s, s.Err)
		}
		if strings.Contains(fmt.Sprintf("%+v", s), password) {
			t.Fatal("the password is in the sample")
		}
		t.Logf("%s", s)
	})
}
