package manifest

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate/expr"
)

const gatesHead = "version: 1\napplication: hello-web\ndeployment:\n  strategy: canary\n  canary: 1\n  batch: 50%\n  bake: 5m\n  gates:\n"

const gatesFull = gatesHead + `    - name: error-rate
      prometheus:
        url: https://prom.example:9090/
        query: sum(rate(http_requests_total{app="{{app}}",code=~"5..",host="{{ host }}"}[1m])) / sum(rate(http_requests_total{app="{{app}}"}[1m]))
        bearer_token_file: /etc/drover/prom-token
        tls: {ca_file: /etc/drover/prom-ca.pem}
      success: result < 0.01
      failure: result >= 0.05
      interval: 15s
      count: 8
      failure_limit: 2
      inconclusive_limit: 4
      no_data: inconclusive
      initial_delay: 1m
    - name: health
      when: host
      http:
        url: http://{{host}}:8080/healthz?rev={{revision}}
        expect_status: [200, 204]
        expect_body_regexp: '^ok {{revision}}$'
        basic_auth: {username: drover, password_file: /etc/drover/health-pass}
      interval: 5s
      timeout: 2s
    - name: p99-latency
      when: continuous
      prometheus:
        url: http://prom:9090
        query: histogram_quantile(0.99, sum by (le, host) (rate(http_request_duration_seconds_bucket[2m])))
      failure: any(result > 0.5)
`

func mustExpr(t *testing.T, s string) *expr.Expr {
	t.Helper()
	e, err := expr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGatesValid(t *testing.T) {
	m, err := Parse("m.yaml", []byte(gatesFull))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []Gate{{
		Name: "error-rate", When: WhenBake,
		Prometheus: &PrometheusCheck{
			URL:   "https://prom.example:9090/",
			Query: `sum(rate(http_requests_total{app="{{app}}",code=~"5..",host="{{ host }}"}[1m])) / sum(rate(http_requests_total{app="{{app}}"}[1m]))`,
			Auth:  Auth{BearerTokenFile: "/etc/drover/prom-token", TLS: TLS{CAFile: "/etc/drover/prom-ca.pem"}},
		},
		Success: mustExpr(t, "result < 0.01"), Failure: mustExpr(t, "result >= 0.05"),
		Interval: 15 * time.Second, Timeout: 10 * time.Second, InitialDelay: time.Minute,
		Count: 8, FailureLimit: 2, InconclusiveLimit: 4, NoData: NoDataInconclusive,
	}, {
		Name: "health", When: WhenHost,
		HTTP: &HTTPCheck{
			URL: "http://{{host}}:8080/healthz?rev={{revision}}", ExpectStatus: []int{200, 204},
			ExpectBodyRegexp: "^ok {{revision}}$",
			Auth:             Auth{BasicAuth: &BasicAuth{Username: "drover", PasswordFile: "/etc/drover/health-pass"}},
		},
		Interval: 5 * time.Second, Timeout: 2 * time.Second,
		Count: 1, FailureLimit: 1, InconclusiveLimit: 3,
	}, {
		Name: "p99-latency", When: WhenContinuous,
		Prometheus: &PrometheusCheck{URL: "http://prom:9090",
			Query: "histogram_quantile(0.99, sum by (le, host) (rate(http_request_duration_seconds_bucket[2m])))"},
		Failure:  mustExpr(t, "any(result > 0.5)"),
		Interval: 30 * time.Second, Timeout: 10 * time.Second,
		Count: 0, FailureLimit: 1, InconclusiveLimit: 3, NoData: NoDataFail,
	}}
	if !reflect.DeepEqual(m.Deployment.Gates, want) {
		for i := range want {
			if i < len(m.Deployment.Gates) && !reflect.DeepEqual(m.Deployment.Gates[i], want[i]) {
				t.Errorf("gate %d:\ngot  %+v\nwant %+v", i, m.Deployment.Gates[i], want[i])
			}
		}
		t.Fatalf("got %d gates, want %d", len(m.Deployment.Gates), len(want))
	}
	m2, err := Parse("formatted", Format(m))
	if err != nil {
		t.Fatalf("Parse(Format): %v\n%s", err, Format(m))
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip differs:\n%s", Format(m))
	}
	// The daemon persists the manifest's Deployment as JSON.
	b, err := json.Marshal(m.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	var d Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, m.Deployment) {
		t.Fatalf("JSON round trip differs: %s", b)
	}
}

func TestGateDefaults(t *testing.T) {
	for _, tt := range []struct {
		strategy string
		when     When
	}{{"canary\n  canary: 1", WhenBake}, {"rolling\n  batch: 2", WhenBatch}, {"one-at-a-time", WhenBatch}} {
		in := "version: 1\napplication: a\ndeployment:\n  strategy: " + tt.strategy +
			"\n  gates:\n    - name: g\n      prometheus: {url: 'http://p:9090', query: up}\n      success: result == 1\n"
		m, err := Parse("m.yaml", []byte(in))
		if err != nil {
			t.Fatalf("%s: %v", tt.strategy, err)
		}
		g := m.Deployment.Gates[0]
		want := Gate{Name: "g", When: tt.when, Prometheus: &PrometheusCheck{URL: "http://p:9090", Query: "up"},
			Success: mustExpr(t, "result == 1"), Interval: 30 * time.Second, Timeout: 10 * time.Second,
			Count: 1, FailureLimit: 1, InconclusiveLimit: 3, NoData: NoDataFail}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.strategy, g, want)
		}
	}
	// A short interval bounds the default timeout.
	m, err := Parse("m.yaml", []byte("version: 1\napplication: a\ndeployment:\n  gates:\n    - {name: g, http: {url: 'http://h/'}, interval: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := m.Deployment.Gates[0]; g.Timeout != 3*time.Second || !reflect.DeepEqual(g.HTTP.ExpectStatus, []int{200}) || g.NoData != "" {
		t.Fatalf("got %+v", g)
	}
}

func TestGatesInvalid(t *testing.T) {
	prom := "      prometheus: {url: 'http://p:9090', query: up}\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"not a list", "    name: x\n", []string{"m.yaml:8: deployment.gates must be a list"}},
		{"misspelt keys", "    - name: g\n      prometheus: {url: 'http://p:9090', qeury: up}\n      sucess: result < 1\n      intreval: 5s\n", []string{
			`m.yaml:10: deployment.gates[0].prometheus: unknown key "qeury"; did you mean "query"?`,
			`m.yaml:11: deployment.gates[0]: unknown key "sucess"; did you mean "success"?`,
			`m.yaml:12: deployment.gates[0]: unknown key "intreval"; did you mean "interval"?`}},
		{"misspelt name and url", "    - nmae: g\n      http: {ulr: 'http://h/'}\n", []string{
			`m.yaml:9: deployment.gates[0]: unknown key "nmae"; did you mean "name"?`,
			`m.yaml:10: deployment.gates[0].http: unknown key "ulr"; did you mean "url"?`}},
		{"both checks", "    - name: g\n" + prom + "      http: {url: 'http://h/'}\n      success: result < 1\n", []string{
			"m.yaml:11: deployment.gates[0]: give either prometheus or http, not both"}},
		{"neither check, no name", "    - interval: 5s\n", []string{
			"m.yaml:9: deployment.gates[0].name is required", "m.yaml:9: deployment.gates[0]: give one of prometheus"}},
		{"bad condition with column", "    - name: g\n" + prom + "      success: result < 0.01 & result > 0\n      failure: result > 5%\n", []string{
			`m.yaml:11: deployment.gates[0].success "result < 0.01 & result > 0": column 15: unexpected character '&' (and is &&)`,
			`m.yaml:12: deployment.gates[0].failure "result > 5%": column 10:`}},
		{"limits and counts", "    - name: g\n" + prom + "      success: result < 1\n      failure_limit: 0\n      inconclusive_limit: x\n      count: 1001\n", []string{
			"m.yaml:12: deployment.gates[0].failure_limit 0: want from 1 to 1000",
			`m.yaml:13: deployment.gates[0].inconclusive_limit "x": want a whole number`,
			"m.yaml:14: deployment.gates[0].count 1001: want from 1 to 1000"}},
		{"durations", "    - name: g\n" + prom + "      success: result < 1\n      interval: 10ms\n      timeout: soon\n      initial_delay: -1s\n", []string{
			`m.yaml:12: deployment.gates[0].interval "10ms": want between 1s and 1h0m0s`,
			`m.yaml:13: deployment.gates[0].timeout "soon": want a duration`,
			`m.yaml:14: deployment.gates[0].initial_delay "-1s": want between 0s and 1h0m0s`}},
		{"timeout past interval", "    - name: g\n" + prom + "      success: result < 1\n      interval: 5s\n      timeout: 6s\n", []string{
			"m.yaml:13: deployment.gates[0].timeout 6s: must be at most the interval (5s)"}},
		{"enums with suggestions", "    - name: g\n" + prom + "      success: result < 1\n      when: bkae\n      no_data: fial\n", []string{
			`m.yaml:12: deployment.gates[0].when "bkae": want bake, batch, host, continuous; did you mean "bake"?`,
			`m.yaml:13: deployment.gates[0].no_data "fial": want fail, inconclusive, pass; did you mean "fail"?`}},
		{"count on continuous", "    - name: g\n" + prom + "      success: result < 1\n      when: continuous\n      count: 3\n", []string{
			"m.yaml:13: deployment.gates[0].count: a continuous gate samples for as long as the rollout runs"}},
		{"duplicate and bad names", "    - name: g\n" + prom + "      success: result < 1\n    - name: g\n" + prom + "      success: result < 1\n    - name: Bad Name\n" + prom + "      success: result < 1\n", []string{
			`m.yaml:12: deployment.gates[1]: name "g" is already used by deployment.gates[0]`,
			`m.yaml:15: deployment.gates[2].name "Bad Name": use 1-63 lowercase`}},
		{"templates", "    - name: g\n      prometheus: {url: 'http://p:9090/{{hots}}', query: 'up{x=\"{{ revison }}\"} + {{app'}\n      success: result < 1\n", []string{
			"m.yaml:10: deployment.gates[0].prometheus.url: column 15: unknown template {{hots}}; did you mean {{host}}?",
			"m.yaml:10: deployment.gates[0].prometheus.query: column 7: unknown template {{revison}}; did you mean {{revision}}?"}},
		{"unclosed template", "    - name: g\n      prometheus: {url: 'http://p:9090', query: 'up + {{app'}\n      success: result < 1\n", []string{
			"m.yaml:10: deployment.gates[0].prometheus.query: column 6: {{ is not closed with }}"}},
		{"urls", "    - name: a\n      prometheus: {url: 'ftp://p', query: up}\n      success: result < 1\n    - name: b\n      http: {url: 'https://user:s3cret@h/'}\n    - name: c\n      http: {url: '/healthz'}\n", []string{
			"m.yaml:10: deployment.gates[0].prometheus.url: want an http:// or https:// URL",
			"m.yaml:13: deployment.gates[1].http.url: credentials in the URL are refused",
			"m.yaml:15: deployment.gates[2].http.url: want an http:// or https:// URL"}},
		{"http specifics", "    - name: h\n      http: {url: 'http://h/', expect_status: [99, ok], expect_body: ok, expect_body_regexp: '(', tls: {insecure_skip_verify: true}}\n      success: result < 1\n      no_data: pass\n", []string{
			`m.yaml:10: deployment.gates[0].http.expect_status "99": want an HTTP status code`,
			`m.yaml:10: deployment.gates[0].http.expect_status "ok": want an HTTP status code`,
			`m.yaml:10: deployment.gates[0].http.expect_body_regexp "(": missing closing )`,
			"m.yaml:10: deployment.gates[0].http: give either expect_body",
			"m.yaml:10: deployment.gates[0].http.tls: applies only to an https:// URL",
			"m.yaml:11: deployment.gates[0].success: http gates are judged by expect_status and expect_body",
			"m.yaml:12: deployment.gates[0].no_data: applies only to prometheus gates"}},
		{"credentials", "    - name: g\n      prometheus:\n        url: https://p\n        query: up\n        bearer_token_file: token\n        basic_auth: {username: u}\n        tls: {ca_file: /ca.pem, insecure_skip_verify: true}\n      success: result < 1\n", []string{
			`m.yaml:13: deployment.gates[0].prometheus.bearer_token_file "token": want an absolute path`,
			"m.yaml:14: deployment.gates[0].prometheus.basic_auth.password_file is required",
			"m.yaml:15: deployment.gates[0].prometheus.tls: ca_file and insecure_skip_verify contradict"}},
		{"bake gate on rolling", "", nil}, // replaced below
	}
	for _, tt := range tests {
		in := gatesHead + tt.in
		if tt.name == "bake gate on rolling" {
			in = "version: 1\napplication: a\ndeployment:\n  strategy: rolling\n  batch: 1\n  gates:\n    - name: g\n      when: bake\n" + prom + "      success: result < 1\n"
			tt.want = []string{"m.yaml:8: deployment.gates[0].when: bake gates apply only to the canary strategy, not rolling"}
		}
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(in))
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("Parse: got %v, want *Error", err)
			}
			if len(me.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(me.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := me.Problems[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d:\ngot  %q\nwant %q...", i, got, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("a password in a URL reached the error: %v", err)
			}
		})
	}
}

func TestSuggestTopLevel(t *testing.T) {
	_, err := Parse("m.yaml", []byte("version: 1\napplication: a\ndeployment:\n  stratgey: rolling\n"))
	if err == nil || !strings.Contains(err.Error(), `m.yaml:4: deployment: unknown key "stratgey"; did you mean "strategy"?`) {
		t.Fatalf("got %v", err)
	}
	_, err = Parse("m.yaml", []byte("version: 1\napplication: a\nzzz: 1\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown key "zzz" (known: version,`) {
		t.Fatalf("got %v", err)
	}
}

func TestExpandTemplate(t *testing.T) {
	vars := map[string]string{"app": "web", "host": "h-1", "revision": `r"1`, "group": "prod"}
	got := ExpandTemplate(`x{app="{{app}}",rev="{{ revision }}",g="{{group}}"} {{host}}`, vars, func(s string) string {
		return strings.ReplaceAll(s, `"`, `\"`)
	})
	if want := `x{app="web",rev="r\"1",g="prod"} h-1`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := ExpandTemplate("no templates", vars, nil); got != "no templates" {
		t.Fatal(got)
	}
}

func FuzzGates(f *testing.F) {
	f.Add([]byte(strings.TrimPrefix(gatesFull, gatesHead)))
	f.Add([]byte("    - {name: g, http: {url: 'http://{{host}}/', expect_status: 204}}\n"))
	f.Add([]byte("    - name: g\n      prometheus: {url: 'http://p', query: '{{app'}\n      failure: all(result > 1)\n      when: continuous\n"))
	f.Add([]byte("    - &a {name: g, http: {url: 'http://h'}}\n    - *a\n"))
	f.Fuzz(func(t *testing.T, section []byte) {
		data := append([]byte(gatesHead), section...)
		m, err := Parse("f.yaml", data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error is not a non-empty *Error: %v", err)
			}
			return
		}
		names := map[string]bool{}
		for _, g := range m.Deployment.Gates {
			if (g.Prometheus == nil) == (g.HTTP == nil) {
				t.Fatalf("gate %q: want exactly one check: %+v", g.Name, g)
			}
			if g.FailureLimit < 1 || g.InconclusiveLimit < 1 || g.Interval < time.Second || g.Timeout > g.Interval || g.Timeout <= 0 {
				t.Fatalf("gate %q: limits or durations out of range: %+v", g.Name, g)
			}
			if (g.When == WhenContinuous) != (g.Count == 0) {
				t.Fatalf("gate %q: count %d with when %s", g.Name, g.Count, g.When)
			}
			if g.Prometheus != nil && g.Success == nil && g.Failure == nil {
				t.Fatalf("gate %q: prometheus without a condition", g.Name)
			}
			if names[g.Name] {
				t.Fatalf("duplicate gate %q accepted", g.Name)
			}
			names[g.Name] = true
		}
		m2, err := Parse("formatted", Format(m))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, Format(m))
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%s", Format(m))
		}
	})
}

// TestExampleManifestsRoundTrip: every example manifest parses, and Format
// writes it back to an equal value (drover push writes manifests with
// Format).
func TestExampleManifestsRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../../deploy-examples/manifests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example manifests: %v", err)
	}
	gates := 0
	for _, f := range files {
		m, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		gates += len(m.Deployment.Gates)
		m2, err := Parse("formatted", Format(m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip: %v\n%s", f, err, Format(m))
		}
	}
	if gates == 0 {
		t.Fatal("no example manifest has gates")
	}
}
