package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/internal/testenv/gittest"
)

// sourceMetrics are the source metrics of the fleet's app on one agent.
type sourceMetrics struct {
	polls       map[string]float64 // drover_source_polls_total by result
	lastSuccess float64            // drover_source_last_success_timestamp_seconds; 0 when absent
	invalid     float64            // drover_manifest_invalid
}

// scrapeSource reads an agent's metrics listener, as Prometheus does.
func scrapeSource(t *testing.T, addr string) sourceMetrics {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	out := sourceMetrics{polls: map[string]float64{}}
	for _, m := range mfs["drover_source_polls_total"].GetMetric() {
		var app, result string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "app":
				app = l.GetValue()
			case "result":
				result = l.GetValue()
			}
		}
		if app == fleetApp {
			out.polls[result] = m.GetCounter().GetValue()
		}
	}
	for _, m := range mfs["drover_source_last_success_timestamp_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "app" && l.GetValue() == fleetApp {
				out.lastSuccess = m.GetGauge().GetValue()
			}
		}
	}
	for _, m := range mfs["drover_manifest_invalid"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "app" && l.GetValue() == fleetApp {
				out.invalid = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// fleetAppStatus is the fleet app's part of st.
func fleetAppStatus(st *daemon.Status) daemon.AppStatus {
	for _, a := range st.Apps {
		if a.Name == fleetApp {
			return a
		}
	}
	return daemon.AppStatus{}
}

// TestSourceErrorsE2E: a branch that is not on the server, first because
// it went away, then because the config misspells it, is a source error:
// drover status names the branch and suggests the one that exists, the
// error polls are counted, and the last success does not advance, so the
// "source stale" alert can fire.
func TestSourceErrorsE2E(t *testing.T) {
	f := newFleet(t, 1, "all-at-once")
	f.waitFor(0, 90*time.Second, "v1 deployed", allOn(1, "v1"))
	a := f.agents[0]
	before := scrapeSource(t, a.metrics)
	if before.lastSuccess == 0 || before.polls["error"] != 0 {
		t.Fatalf("metrics before: %+v", before)
	}

	// The release branch is renamed on the server.
	gittest.Git(t, f.repo.Bare, "config", "receive.denyDeleteCurrent", "ignore")
	gittest.Git(t, f.repo.Work, "push", "-q", "origin", "HEAD:refs/heads/releases", ":refs/heads/release")
	st := f.waitFor(0, 30*time.Second, "the missing branch in status", func(st *daemon.Status) bool {
		return strings.Contains(fleetAppStatus(st).SourceError, `branch "release" not found (did you mean "releases"?)`)
	})
	if as := fleetAppStatus(st); as.Polls["error"] < 1 || as.Polls["empty"] != 0 || as.ManifestInvalid || as.Desired != "v1" {
		t.Fatalf("status with the branch gone: %+v", as)
	}
	r := drover(t, nil, "status", "--socket", a.socket)
	if r.code != 0 || !strings.Contains(r.stdout, "source error: ") || !strings.Contains(r.stdout, `branch "release" not found`) {
		t.Fatalf("drover status (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	first := scrapeSource(t, a.metrics)
	f.waitFor(0, 30*time.Second, "a second failed poll", func(st *daemon.Status) bool {
		return fleetAppStatus(st).Polls["error"] > uint64(first.polls["error"])
	})
	second := scrapeSource(t, a.metrics)
	if first.polls["error"] < 1 || second.polls["error"] <= first.polls["error"] || second.polls["empty"] != 0 {
		t.Fatalf("error polls did not increase: %v then %v", first.polls, second.polls)
	}
	if first.lastSuccess != before.lastSuccess || second.lastSuccess != before.lastSuccess {
		t.Fatalf("last success advanced while failing: %v, %v, %v", before.lastSuccess, first.lastSuccess, second.lastSuccess)
	}

	// Back: the error clears and the last success moves on.
	gittest.Git(t, f.repo.Work, "push", "-q", "origin", "HEAD:refs/heads/release")
	f.waitFor(0, 60*time.Second, "the source recovered", func(st *daemon.Status) bool { return fleetAppStatus(st).SourceError == "" })
	if m := scrapeSource(t, a.metrics); m.lastSuccess <= before.lastSuccess {
		t.Fatalf("last success after recovery %v, before %v", m.lastSuccess, before.lastSuccess)
	}

	// A misspelled branch in the configuration, reloaded.
	cfg, err := os.ReadFile(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(cfg), "branch: release", "branch: relase", 1)
	if bad == string(cfg) {
		t.Fatal("the fleet's config has no branch: release")
	}
	if err := os.WriteFile(a.cfg, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	st = f.waitFor(0, 30*time.Second, "the misspelled branch in status", func(st *daemon.Status) bool {
		return strings.Contains(fleetAppStatus(st).SourceError, `branch "relase" not found (did you mean "release"?); branches on the server: release, releases`)
	})
	polls := fleetAppStatus(st).Polls["error"]
	since := fleetAppStatus(st).PollingSince
	st = f.waitFor(0, 30*time.Second, "another failed poll", func(st *daemon.Status) bool { return fleetAppStatus(st).Polls["error"] > polls })
	// A new poller for the reloaded application: it never succeeded, so
	// the last success is when it began polling, and it does not advance:
	// the stale alert fires for it as for a source that went away.
	m := scrapeSource(t, a.metrics)
	if m.polls["error"] < 2 || m.polls["changed"] != 0 || since.IsZero() || fleetAppStatus(st).PollingSince != since ||
		math.Abs(m.lastSuccess-float64(since.UnixNano())/1e9) > 1e-3 {
		t.Fatalf("metrics with the misspelled branch: %+v; polling since %v", m, since)
	}
	log, _ := os.ReadFile(a.logPath)
	warned := 0
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, `branch \"relase\" not found`) {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("the misspelled branch was warned about %d times, want once", warned)
	}
}

// TestInvalidBundleRefusedE2E: a pushed revision whose appspec.yml has a
// hook timeout in minutes (CodeDeploy refuses it too) is refused by every
// host before any claims a slot or runs ApplicationStop: status shows the
// problem at its place in the repository, v1 stays installed, and the next
// valid push deploys.
func TestInvalidBundleRefusedE2E(t *testing.T) {
	f := newFleet(t, 2, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 deployed", allOn(2, "v1"))
	timeline := func() string {
		b, err := os.ReadFile(f.timeline)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := timeline()

	spec, err := os.ReadFile(filepath.Join(f.repo.Work, "app", "appspec.yml"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join(f.repo.Work, "app", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	badSpec := strings.Replace(string(spec), "timeout: 120", "timeout: 2m", 1)
	line := strings.Count(badSpec[:strings.Index(badSpec, "timeout: 2m")], "\n") + 1
	badMan := strings.Replace(string(man), `revision: "v1"`, `revision: "v2"`, 1)
	if badSpec == string(spec) || badMan == string(man) {
		t.Fatal("the fleet's bundle changed shape")
	}
	f.repo.Commit(t, "release v2 (hook timeout in minutes)", map[string]string{"app/appspec.yml": badSpec, "app/manifest.yaml": badMan})
	want := fmt.Sprintf("app/appspec.yml:%d: hooks.ApplicationStop[0].timeout: ", line)

	for i, a := range f.agents {
		st := f.waitFor(i, 30*time.Second, "the refused bundle in status", func(st *daemon.Status) bool {
			as := fleetAppStatus(st)
			// Three invalid polls: two poll intervals after the refusal,
			// time enough for a host to have started a lifecycle.
			return as.ManifestInvalid && strings.Contains(as.SourceError, want) && as.Polls["invalid"] >= 3
		})
		as := fleetAppStatus(st)
		if as.Desired != "v1" || strings.Contains(as.SourceError, "staging") || strings.Contains(as.SourceError, a.dir) {
			t.Errorf("%s: desired %q, source error %q", a.name, as.Desired, as.SourceError)
		}
		for _, h := range as.Hosts {
			if h.Revision != "v1" || (h.Target != "" && h.Target != "v1") || h.Phase == "running" || h.Claim != 0 {
				t.Errorf("%s sees %s: revision %q target %q phase %q claim %d", a.name, h.Host, h.Revision, h.Target, h.Phase, h.Claim)
			}
		}
		if m := scrapeSource(t, a.metrics); m.polls["invalid"] < 1 || m.invalid != 1 {
			t.Errorf("%s metrics: %+v", a.name, m)
		}
		b, err := os.ReadFile(filepath.Join(a.dir, "root", "srv", "hello", "index.html"))
		if err != nil || string(b) != "revision v1\n" {
			t.Errorf("%s: installed index.html %q (%v), want v1's", a.name, b, err)
		}
	}
	if after := timeline(); after != before {
		t.Fatalf("hooks ran for the refused revision:\n%s", strings.TrimPrefix(after, before))
	}
	r := drover(t, nil, "status", "--socket", f.agents[1].socket)
	if r.code != 0 || !strings.Contains(r.stdout, want+`must be a positive number of seconds, got "2m"`) {
		t.Fatalf("drover status (exit %d) does not show %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	log, _ := os.ReadFile(f.agents[0].logPath)
	if n := strings.Count(string(log), `level=ERROR msg="invalid revision ignored`); n != 1 {
		t.Errorf("the refusal was logged %d times, want once", n)
	}

	f.push("v3", "one-at-a-time", bundleOpts{})
	st := f.waitFor(0, 90*time.Second, "v3 deployed", allOn(2, "v3"))
	if as := fleetAppStatus(st); as.SourceError != "" || as.ManifestInvalid {
		t.Fatalf("after v3: source error %q, invalid %v", as.SourceError, as.ManifestInvalid)
	}
	if ivs := f.lifecycles("v2"); len(ivs) != 0 {
		t.Fatalf("v2 ran: %+v", ivs)
	}
}
