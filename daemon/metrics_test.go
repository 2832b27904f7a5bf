package daemon

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsPassPromtool writes the metrics in the text exposition format
// and checks them with Prometheus's own linter.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, "1.2.3", "abc", "go1.26")
	if err != nil {
		t.Fatal(err)
	}
	// Give every vector a series so that promtool sees all of them.
	m.Deployments.WithLabelValues("hello", "succeeded").Inc()
	m.DeploymentDuration.WithLabelValues("hello").Observe(3)
	m.HookDuration.WithLabelValues("hello", "AfterInstall").Observe(0.2)
	m.HookFailures.WithLabelValues("hello", "ValidateService").Inc()
	m.ConfigReloads.WithLabelValues("applied").Inc()
	m.GossipMessagesDropped.WithLabelValues("malformed").Inc()
	m.GossipBytes.WithLabelValues("sent").Add(10)
	m.GateEvaluations.WithLabelValues("hello", "error-rate", "pass").Inc()
	m.GateLastValue.WithLabelValues("hello", "error-rate").Set(0.002)
	if err := reg.Register(NewStatusCollector(SampleStatus)); err != nil {
		t.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{ // DESIGN.md §10
		"drover_build_info", "drover_app_revision_info", "drover_app_desired_revision_info",
		"drover_deployments_total", "drover_deployment_duration_seconds", "drover_hook_duration_seconds",
		"drover_hook_failures_total", "drover_source_polls_total", "drover_source_last_success_timestamp_seconds",
		"drover_cluster_members", "drover_rollout_hosts", "drover_rollout_paused", "drover_rollout_halted",
		"drover_roster_epoch", "drover_roster_voters", "drover_roster_voter",
	} {
		if !names[want] {
			t.Errorf("metric %s is not exported", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestLastSuccessBeforeAnySuccess: an application whose source never
// answered since the agent started (a misspelled branch from the start)
// exports the time polling began as its last success, so that the stale
// alert fires for it as for a source that went away; after a success, the
// success's time.
func TestLastSuccessBeforeAnySuccess(t *testing.T) {
	started := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	st := SampleStatus()
	st.Apps[0].LastPoll, st.Apps[0].PollingSince = time.Time{}, started
	value := func() float64 {
		t.Helper()
		reg := prometheus.NewRegistry()
		if err := reg.Register(NewStatusCollector(func() Status { return st })); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "drover_source_last_success_timestamp_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("drover_source_last_success_timestamp_seconds is not exported before a success")
		return 0
	}
	if v := value(); v != float64(started.Unix()) {
		t.Errorf("before any success: %v, want the start of polling %d", v, started.Unix())
	}
	st.Apps[0].LastPoll = started.Add(time.Minute)
	if v := value(); v != float64(started.Add(time.Minute).Unix()) {
		t.Errorf("after a success: %v, want its time", v)
	}
}
