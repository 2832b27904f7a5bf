package packaging

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/reconcile/manifest"
)

const (
	rulesFile     = "deploy-examples/prometheus/drover-rules.yaml"
	rulesTestFile = "deploy-examples/prometheus/drover-rules.test.yaml"
	dashboardFile = "deploy-examples/grafana/drover-dashboard.json"
)

// TestAlertRulesPassPromtool: promtool check rules, and the rules' unit
// tests (each alert fires on a synthetic fleet, and not where it must not).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "Debian package prometheus; .ci/run installs it")
	root := repoRoot(t)
	if r := run(t, time.Minute, root, nil, promtool, "check", "rules", rulesFile); r.err != nil {
		t.Fatalf("promtool check rules: %v\n%s", r.err, r)
	}
	if r := run(t, 2*time.Minute, filepath.Dir(filepath.Join(root, rulesTestFile)), nil, promtool, "test", "rules", filepath.Base(rulesTestFile)); r.err != nil {
		t.Fatalf("promtool test rules: %v\n%s", r.err, r)
	}
}

// rulesFileDoc is the part of a Prometheus rules file the tests read.
type rulesFileDoc struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func ruleQueries(t *testing.T) map[string]string {
	t.Helper()
	var doc rulesFileDoc
	if err := yaml.Unmarshal(readFile(t, rulesFile), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

// TestAlertRulesCoverIssue checks that the alerts issue 6 asks for exist.
func TestAlertRulesCoverIssue(t *testing.T) {
	q := ruleQueries(t)
	for _, a := range []string{"DroverRolloutHalted", "DroverHostDeploymentFailed", "DroverSourceStale", "DroverAgentDown", "DroverClusterMembersLost"} {
		if _, ok := q["alert "+a]; !ok {
			t.Errorf("no alert %s in %s", a, rulesFile)
		}
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// dashboardQueries returns every PromQL query of the dashboard: panel
// targets and template variable queries.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[fmt.Sprintf("panel %q %s", p.Title, tg.RefID)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		// label_values(METRIC{...}, LABEL): the metric selector and the label.
		if m := regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`).FindStringSubmatch(q.Query); m != nil {
			out["variable "+v.Name] = fmt.Sprintf("max by (%s) (%s)", m[2], m[1])
		} else {
			out["variable "+v.Name] = q.Query
		}
	}
	return out
}

// TestDashboard checks the dashboard's shape: recent schema, a datasource
// variable every query uses, and the panels issue 6 asks for.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (Grafana 9+)", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && strings.Contains(string(v.Query), "prometheus") {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not use ${datasource}", v.Name)
		}
	}
	if !hasDS {
		t.Error("no datasource template variable of type prometheus named datasource")
	}
	ids := map[int]bool{}
	titles := map[string]string{} // title -> all its queries
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q does not use ${datasource}", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q target %s does not use ${datasource}", p.Title, tg.RefID)
				}
				titles[p.Title] += tg.Expr + "\n"
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, want := range []struct{ title, query string }{
		{"Fleet revision map", "drover_app_revision_info"},
		{"Rollout progress", "drover_rollout_hosts"},
		{"Hook duration p95", "histogram_quantile(0.95, sum by (app, event, le) (rate(drover_hook_duration_seconds_bucket"},
		{"Failures", "drover_hook_failures_total"},
		{"Failures", `drover_deployments_total{job=~"$job",app=~"$app",result="failed"}`},
		{"Source freshness", "time() - drover_source_last_success_timestamp_seconds"},
		{"Cluster members", "drover_cluster_members"},
	} {
		if !strings.Contains(titles[want.title], want.query) {
			t.Errorf("panel %q: no query with %s", want.title, want.query)
		}
	}
}

// family is what the tests need to know of an exported metric family.
type family struct {
	typ    dto.MetricType
	labels map[string]bool
}

// exportedMetrics returns the metric families a running agent exports: a
// real agent in this process that has polled, deployed once and failed
// once (only vectors with a series show up in a scrape), scraped over HTTP.
func exportedMetrics(t *testing.T) map[string]family {
	t.Helper()
	return runningAgentMetrics(t)
}

// populatedRegistry registers the agent's metrics and gives each vector a
// series with empty label values, so that every family is gathered.
func populatedRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	if _, err := daemon.NewMetrics(rec, "test", "test", "go"); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.collectors {
		touch(t, c)
	}
	// The state metrics are computed from the agent's status at scrape
	// time; a sample fleet gives every one of them series.
	if err := reg.Register(daemon.NewStatusCollector(daemon.SampleStatus)); err != nil {
		t.Fatal(err)
	}
	return reg
}

// recordingRegisterer remembers what is registered through it.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// touch creates one series of a vector, finding its number of labels by
// trying (the vector says no until the count is right).
func touch(t *testing.T, c prometheus.Collector) {
	t.Helper()
	try := func(get func(...string) error) {
		for n := 0; n <= 16; n++ {
			if get(make([]string, n)...) == nil {
				return
			}
		}
		t.Fatalf("cannot create a series of %T", c)
	}
	switch v := c.(type) {
	case *prometheus.GaugeVec:
		try(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	case *prometheus.CounterVec:
		try(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	case *prometheus.HistogramVec:
		try(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	case *prometheus.SummaryVec:
		try(func(l ...string) error { _, err := v.GetMetricWithLabelValues(l...); return err })
	}
}

// fromRegistry gathers a registry into families.
func fromRegistry(t *testing.T, g prometheus.Gatherer) map[string]family {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		addFamily(out, mf)
	}
	return out
}

// fromScrape reads the families of a /metrics endpoint.
func fromScrape(t *testing.T, url string) map[string]family {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		addFamily(out, mf)
	}
	return out
}

func addFamily(out map[string]family, mf *dto.MetricFamily) {
	f := family{typ: mf.GetType(), labels: map[string]bool{}}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			f.labels[lp.GetName()] = true
		}
	}
	out[mf.GetName()] = f
}

// TestScrapeMatchesRegistry: fromScrape and fromRegistry see the same
// families, so swapping one for the other in exportedMetrics is safe.
func TestScrapeMatchesRegistry(t *testing.T) {
	reg := populatedRegistry(t)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	want := fromRegistry(t, reg)
	got := fromScrape(t, srv.URL)
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: in the registry, not in the scrape", name)
			continue
		}
		if g.typ != w.typ || fmt.Sprint(sortedKeys(g.labels)) != fmt.Sprint(sortedKeys(w.labels)) {
			t.Errorf("%s: scrape %v %v, registry %v %v", name, g.typ, sortedKeys(g.labels), w.typ, sortedKeys(w.labels))
		}
	}
	if len(got) != len(want) {
		t.Errorf("scrape has %d families, registry %d", len(got), len(want))
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	metricRE  = regexp.MustCompile(`\b(drover_[a-zA-Z0-9_]+|up)\b(\{[^}]*\})?`)
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	groupRE   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	// Labels Prometheus adds to every scraped series, and le of buckets.
	targetLabels = map[string]bool{"job": true, "instance": true}
)

// queryProblems checks one PromQL query against the exported families:
// each metric exists (a histogram's _bucket, _sum and _count included),
// each label matcher names a label of its metric, and each grouping label
// is a label of some metric of the query.
func queryProblems(q string, exported map[string]family) []string {
	var problems []string
	known := map[string]bool{"le": false}
	for k := range targetLabels {
		known[k] = true
	}
	for _, m := range metricRE.FindAllStringSubmatch(q, -1) {
		name, sel := m[1], m[2]
		if name == "up" { // made by Prometheus for every target
			continue
		}
		f, ok := exported[name]
		if !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, found := strings.CutSuffix(name, suf); found {
					if hf, hok := exported[b]; hok && (hf.typ == dto.MetricType_HISTOGRAM || (suf != "_bucket" && hf.typ == dto.MetricType_SUMMARY)) {
						f, ok = hf, true
						if suf == "_bucket" {
							known["le"] = true
						}
					}
				}
			}
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not exported", name))
			continue
		}
		for l := range f.labels {
			known[l] = true
		}
		for _, mm := range matcherRE.FindAllStringSubmatch(sel, -1) {
			l := mm[1]
			if !f.labels[l] && !targetLabels[l] {
				problems = append(problems, fmt.Sprintf("metric %s has no label %q", name, l))
			}
		}
	}
	for _, g := range groupRE.FindAllStringSubmatch(q, -1) {
		for _, l := range strings.Split(g[1], ",") {
			l = strings.TrimSpace(l)
			if l != "" && !known[l] {
				problems = append(problems, fmt.Sprintf("label %q of %q is on no metric of the query", l, strings.TrimSpace(g[0])))
			}
		}
	}
	return problems
}

// TestQueriedMetricsAreExported: every metric and label that the alert
// rules and the dashboard query is exported by the agent.
func TestQueriedMetricsAreExported(t *testing.T) {
	exported := exportedMetrics(t)
	queries := ruleQueries(t)
	for k, v := range dashboardQueries(t, loadDashboard(t)) {
		queries[k] = v
	}
	if len(queries) < 10 {
		t.Fatalf("found only %d queries; is the extraction broken?", len(queries))
	}
	for where, q := range queries {
		for _, p := range queryProblems(q, exported) {
			t.Errorf("%s: %s\n  query: %s", where, p, strings.Join(strings.Fields(q), " "))
		}
	}
}

// TestQueryChecker shows that the check above can fail.
func TestQueryChecker(t *testing.T) {
	exported := exportedMetrics(t)
	tests := []struct {
		q    string
		want string // a problem containing this; "" for none
	}{
		{`sum by (app, event, le) (rate(drover_hook_duration_seconds_bucket{job="drover"}[5m]))`, ""},
		{`drover_deployments_total{result="failed"}`, ""},
		{`up{job="drover"} == 0`, ""},
		{`drover_deployment_total`, "drover_deployment_total is not exported"},
		{`drover_hook_failures_total{result="x"}`, `no label "result"`},
		{`sum by (revision) (drover_hook_failures_total)`, `label "revision"`},
		{`drover_build_info_bucket`, "not exported"},
		{`rate(drover_source_polls_total_count[5m])`, "not exported"},
	}
	for _, tc := range tests {
		got := strings.Join(queryProblems(tc.q, exported), "; ")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("queryProblems(%s) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

// TestManifests checks that every example manifest validates and that
// each strategy has one.
func TestManifests(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "deploy-examples", "manifests", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "deploy-examples", "push-s3", "s3-manifest.yaml"))
	strategies := map[manifest.Strategy]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse(rel, data)
			if err != nil {
				t.Fatalf("invalid:\n%v", err)
			}
			strategies[m.Deployment.Strategy] = true
			name := strings.TrimSuffix(filepath.Base(f), ".yaml")
			if s := manifest.Strategy(name); s == manifest.AllAtOnce || s == manifest.OneAtATime || s == manifest.Rolling || s == manifest.Canary {
				if m.Deployment.Strategy != s {
					t.Errorf("%s has strategy %s", rel, m.Deployment.Strategy)
				}
			}
			if name == "paused" && !m.Deployment.Paused {
				t.Errorf("%s is not paused", rel)
			}
			if name == "s3-manifest" && (m.Bundle.Key == "" || m.Bundle.SHA256 == "") {
				t.Errorf("%s: an S3 manifest names the bundle's key and sha256", rel)
			}
		})
	}
	for _, s := range []manifest.Strategy{manifest.AllAtOnce, manifest.OneAtATime, manifest.Rolling, manifest.Canary} {
		if !strategies[s] {
			t.Errorf("no example manifest for strategy %s", s)
		}
	}
}
