package gate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate/expr"
	"github.com/drover-dev/drover/reconcile/manifest"
)

func cond(t *testing.T, s string) *expr.Expr {
	t.Helper()
	if s == "" {
		return nil
	}
	e, err := expr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func promGate(t *testing.T, url, query, success, failure string, noData manifest.NoData) manifest.Gate {
	return manifest.Gate{Name: "err-rate", Prometheus: &manifest.PrometheusCheck{URL: url, Query: query},
		Success: cond(t, success), Failure: cond(t, failure), Interval: time.Second, Timeout: time.Second,
		Count: 1, FailureLimit: 1, InconclusiveLimit: 1, NoData: noData}
}

// fakeProm answers /api/v1/query with what answer returns for the query,
// and records the requests.
type fakeProm struct {
	mu     sync.Mutex
	status int
	answer string
	reqs   []*http.Request
	forms  []string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = r.ParseForm()
	f.reqs = append(f.reqs, r)
	f.forms = append(f.forms, r.PostForm.Get("query"))
	if r.URL.Path != "/prom/api/v1/query" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	io.WriteString(w, f.answer)
}

func vector(vals ...string) string {
	var parts []string
	for i, v := range vals {
		parts = append(parts, fmt.Sprintf(`{"metric":{"host":"h%d"},"value":[1764748800.123,%q]}`, i, v))
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}}`
}

func TestEvaluatePrometheus(t *testing.T) {
	fp := &fakeProm{}
	srv := httptest.NewServer(fp)
	t.Cleanup(srv.Close)
	base := srv.URL + "/prom"
	tests := []struct {
		name             string
		status           int
		answer           string
		success, failure string
		noData           manifest.NoData
		want             Result
		noDataFlag       bool
		reason           string
		values           []Value
	}{
		{"scalar pass", 0, `{"status":"success","data":{"resultType":"scalar","result":[1764748800,"0.001"]}}`,
			"result < 0.01", "", "", Pass, false, "result 0.001 meets success result < 0.01", []Value{{V: 0.001}}},
		{"scalar fails success", 0, `{"status":"success","data":{"resultType":"scalar","result":[1764748800,"0.2"]}}`,
			"result < 0.01", "", "", Fail, false, "result 0.2 does not meet success result < 0.01", nil},
		{"one series", 0, vector("0.07"), "result < 0.01", "result >= 0.05", "", Fail, false, `result {host="h0"} 0.07 meets failure result >= 0.05`, []Value{{`{host="h0"}`, 0.07}}},
		{"between success and failure", 0, vector("0.03"), "result < 0.01", "result >= 0.05", "", Inconclusive, false, "meets neither", nil},
		{"only failure, not met", 0, vector("0.03"), "", "result >= 0.05", "", Pass, false, "does not meet failure", nil},
		{"several series, bare result", 0, vector("0.001", "0.002"), "result < 0.01", "", "", Inconclusive, false, "several series", nil},
		{"several series, all", 0, vector("0.001", "0.002"), "all(result < 0.01)", "", "", Pass, false, "", nil},
		{"several series, any fails", 0, vector("0.001", "0.2"), "all(result < 0.01)", "any(result > 0.1)", "", Fail, false, `{host="h1"} 0.2`, nil},
		{"NaN series dropped", 0, vector("NaN", "0.2"), "", "any(result > 0.1)", "", Fail, false, "", nil},
		{"+Inf is a value", 0, vector("+Inf"), "result < 1", "", "", Fail, false, "+Inf", nil},
		{"empty vector, default fail", 0, vector(), "result < 0.01", "", manifest.NoDataFail, Fail, true, "no data: the query returned an empty vector (no_data: fail)", nil},
		{"empty vector, inconclusive", 0, vector(), "result < 0.01", "", manifest.NoDataInconclusive, Inconclusive, true, "(no_data: inconclusive)", nil},
		{"empty vector, pass", 0, vector(), "result < 0.01", "", manifest.NoDataPass, Pass, true, "(no_data: pass)", nil},
		{"only NaN is no data", 0, vector("NaN"), "result < 0.01", "", manifest.NoDataInconclusive, Inconclusive, true, "NaN", nil},
		{"bad query", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}`,
			"result < 1", "", "", Inconclusive, false, "prometheus answered 400: bad_data: invalid parameter", nil},
		{"server error page", 502, `<html><body>Bad Gateway</body></html>`, "result < 1", "", "", Inconclusive, false, "prometheus answered 502 Bad Gateway: <html><body>Bad Gateway</body></html>", nil},
		{"not the API", 0, `hello`, "result < 1", "", "", Inconclusive, false, "not Prometheus' API JSON", nil},
		{"matrix", 0, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, "result < 1", "", "", Inconclusive, false, "range vector", nil},
		{"string", 0, `{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`, "result < 1", "", "", Inconclusive, false, "returned a string", nil},
		{"malformed value", 0, `{"status":"success","data":{"resultType":"scalar","result":[1,"zz"]}}`, "result < 1", "", "", Inconclusive, false, "malformed sample value", nil},
		{"warnings kept", 0, `{"status":"success","warnings":["PromQL info: metric might not be a counter"],"data":{"resultType":"scalar","result":[1,"0"]}}`, "result < 1", "", "", Pass, false, "prometheus warns: PromQL info", nil},
	}
	ev := &Evaluator{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp.mu.Lock()
			fp.status, fp.answer = tt.status, tt.answer
			fp.mu.Unlock()
			g := promGate(t, base, `up{job="x"}`, tt.success, tt.failure, tt.noData)
			s := ev.Evaluate(context.Background(), g, Vars{})
			if s.Result != tt.want || s.NoData != tt.noDataFlag || !strings.Contains(s.Reason, tt.reason) {
				t.Fatalf("got %s (no data %v) %q, want %s (no data %v) containing %q", s.Result, s.NoData, s.Reason, tt.want, tt.noDataFlag, tt.reason)
			}
			if tt.values != nil && !reflect.DeepEqual(s.Values, tt.values) {
				t.Fatalf("values %v, want %v", s.Values, tt.values)
			}
			if s.Query != `up{job="x"}` || s.URL != base+"/api/v1/query" || s.Gate != "err-rate" {
				t.Fatalf("query %q at %q", s.Query, s.URL)
			}
			if s.Result == Inconclusive && s.Err == "" && !s.NoData && !strings.Contains(s.Reason, "neither") {
				t.Fatalf("an inconclusive sample without an error text: %+v", s)
			}
		})
	}
}

func TestEvaluateTemplates(t *testing.T) {
	fp := &fakeProm{answer: vector("0")}
	srv := httptest.NewServer(fp)
	t.Cleanup(srv.Close)
	g := promGate(t, srv.URL+"/{{group}}/../prom", `rate(errors_total{app="{{app}}",host="{{host}}",rev="{{revision}}",g='{{group}}'}[1m])`, "result < 1", "", "")
	s := (&Evaluator{}).Evaluate(context.Background(), g, Vars{App: "web", Group: "a/b c", Host: "h-1", Revision: `r"1\`})
	want := `rate(errors_total{app="web",host="h-1",rev="r\"1\\",g='a/b c'}[1m])`
	if s.Query != want || fp.forms[0] != want {
		t.Fatalf("query as sent %q, recorded %q, want %q", fp.forms[0], s.Query, want)
	}
	if s.Result != Pass {
		t.Fatalf("got %s: %s", s.Result, s.Reason)
	}
}

func TestEvaluateTimeoutAndUnreachable(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	g := promGate(t, slow.URL, "up", "result == 1", "", "")
	g.Timeout = 200 * time.Millisecond
	s := (&Evaluator{}).Evaluate(context.Background(), g, Vars{})
	if s.Result != Inconclusive || !strings.Contains(s.Reason, "no answer within the timeout (200ms)") {
		t.Fatalf("slow server: got %s %q", s.Result, s.Reason)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g = promGate(t, "http://"+addr, "up", "result == 1", "", "")
	s = (&Evaluator{}).Evaluate(context.Background(), g, Vars{})
	if s.Result != Inconclusive || !strings.Contains(s.Reason, "prometheus: unreachable:") || !strings.Contains(s.Reason, "connection refused") {
		t.Fatalf("closed port: got %s %q", s.Result, s.Reason)
	}
}

// TestCredentialsNeverShown: a server that echoes every request header and
// the body back in an error page; neither the token nor the password may
// appear in any text of the sample.
func TestCredentialsNeverShown(t *testing.T) {
	const token, password = "tok-5ecr3t-abc", "pa55-w0rd-xyz"
	var mu sync.Mutex
	var gotAuth []string
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(500)
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
		u, p, _ := r.BasicAuth()
		fmt.Fprintf(w, "user %s pass %s\n", u, p)
	}))
	t.Cleanup(echo.Close)
	dir := t.TempDir()
	tokFile, pwFile := filepath.Join(dir, "token"), filepath.Join(dir, "pw")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)

	bearer := manifest.Auth{BearerTokenFile: tokFile}
	basic := manifest.Auth{BasicAuth: &manifest.BasicAuth{Username: "drover", PasswordFile: pwFile}}
	var gates []manifest.Gate
	for _, a := range []manifest.Auth{bearer, basic} {
		g := promGate(t, echo.URL, "up", "result == 1", "", "")
		g.Prometheus.Auth = a
		gates = append(gates, g)
		h := g
		h.Prometheus, h.Success = nil, nil
		h.HTTP = &manifest.HTTPCheck{URL: echo.URL + "/healthz", ExpectStatus: []int{200}, Auth: a}
		gates = append(gates, h)
	}
	for _, g := range gates {
		s := (&Evaluator{}).Evaluate(context.Background(), g, Vars{})
		if s.Result == Pass {
			t.Fatalf("a 500 passed: %+v", s)
		}
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("gate sample", "sample", s)
		all := fmt.Sprintf("%+v %s %#v %s", s, s, s, logged.String())
		// Not even a part of one (an excerpt cut inside a secret once
		// leaked its start): no 6 bytes of any secret.
		for _, sec := range []string{token, password, base64.StdEncoding.EncodeToString([]byte("drover:" + password))} {
			for i := 0; i+6 <= len(sec); i++ {
				if part := sec[i : i+6]; strings.Contains(all, part) && part != "drover" {
					t.Fatalf("part %q of a secret is in the sample:\n%s", part, all)
				}
			}
		}
		if !strings.Contains(s.Reason, "[redacted]") {
			t.Fatalf("the echo was not redacted (so the test proves nothing): %q", s.Reason)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"Bearer " + token, "Bearer " + token}
	if len(gotAuth) != 4 || gotAuth[0] != want[0] || gotAuth[1] != want[1] || !strings.HasPrefix(gotAuth[2], "Basic ") {
		t.Fatalf("the server saw Authorization %q", gotAuth)
	}

	// A missing token file is inconclusive and says which field.
	g := promGate(t, echo.URL, "up", "result == 1", "", "")
	g.Prometheus.Auth = manifest.Auth{BearerTokenFile: filepath.Join(dir, "missing")}
	s := (&Evaluator{}).Evaluate(context.Background(), g, Vars{})
	if s.Result != Inconclusive || !strings.Contains(s.Reason, "read bearer_token_file") {
		t.Fatalf("missing token file: %s %q", s.Result, s.Reason)
	}
}

func TestEvaluateHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprintf(w, "ok revision=%s\n", r.URL.Query().Get("rev"))
		case "/down":
			w.WriteHeader(503)
			io.WriteString(w, "draining")
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	vars := Vars{Revision: "r+1 (x)"}
	tests := []struct {
		name, path string
		status     []int
		body, re   string
		want       Result
		reason     string
	}{
		{"status ok", "/ok", []int{200}, "", "", Pass, "status 200"},
		{"body substring", "/ok?rev={{revision}}", []int{200}, "revision={{revision}}", "", Pass, `body contains "revision=r+1 (x)"`},
		{"body missing", "/ok?rev=other", []int{200}, "revision={{revision}}", "", Fail, "does not contain"},
		{"body regexp, templates quoted", "/ok?rev={{revision}}", []int{200}, "", `^ok revision={{revision}}\n$`, Pass, "matches"},
		{"body regexp fails", "/ok?rev=zzz", []int{200}, "", `^ok revision=r`, Fail, "does not match"},
		{"wrong status", "/down", []int{200, 204}, "", "", Fail, "status 503, want 200 or 204: draining"},
		{"expected 503", "/down", []int{503}, "", "", Pass, "status 503"},
		{"redirect not followed", "/moved", []int{200}, "", "", Fail, "status 302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := manifest.Gate{Name: "health", HTTP: &manifest.HTTPCheck{URL: srv.URL + tt.path, ExpectStatus: tt.status,
				ExpectBody: tt.body, ExpectBodyRegexp: tt.re}, Interval: time.Second, Timeout: time.Second, Count: 1, FailureLimit: 1, InconclusiveLimit: 1}
			s := (&Evaluator{}).Evaluate(context.Background(), g, vars)
			if s.Result != tt.want || !strings.Contains(s.Reason, tt.reason) {
				t.Fatalf("got %s %q, want %s containing %q", s.Result, s.Reason, tt.want, tt.reason)
			}
			if !strings.HasPrefix(s.Query, "GET "+srv.URL) || s.Status == 0 {
				t.Fatalf("query %q status %d", s.Query, s.Status)
			}
		})
	}
}

func TestEvaluateTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tls  manifest.TLS
		want Result
		has  string
	}{
		{"system roots refuse", manifest.TLS{}, Inconclusive, "certificate"},
		{"ca_file", manifest.TLS{CAFile: ca}, Pass, "status 200"},
		{"insecure", manifest.TLS{InsecureSkipVerify: true}, Pass, "status 200"},
		{"missing ca_file", manifest.TLS{CAFile: filepath.Join(dir, "nope")}, Inconclusive, "read tls.ca_file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := manifest.Gate{Name: "tls", HTTP: &manifest.HTTPCheck{URL: srv.URL, ExpectStatus: []int{200}, Auth: manifest.Auth{TLS: tt.tls}},
				Interval: time.Second, Timeout: time.Second, Count: 1, FailureLimit: 1, InconclusiveLimit: 1}
			s := (&Evaluator{}).Evaluate(context.Background(), g, Vars{})
			if s.Result != tt.want || !strings.Contains(s.Reason, tt.has) {
				t.Fatalf("got %s %q, want %s containing %q", s.Result, s.Reason, tt.want, tt.has)
			}
		})
	}
}

func TestSampleString(t *testing.T) {
	s := Sample{Gate: "err-rate", Result: Fail, Reason: "result 0.2 meets failure result > 0.1", Query: `sum(x)`, URL: "http://p/api/v1/query"}
	if got, want := s.String(), `gate err-rate: fail: result 0.2 meets failure result > 0.1 (query "sum(x)" at http://p/api/v1/query)`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	vs := []Value{{`{a="1"}`, 1}, {`{a="2"}`, 2}, {`{a="3"}`, 3}}
	if got := FormatValues(vs, 2); got != `{a="1"} 1, {a="2"} 2 and 1 more` {
		t.Fatal(got)
	}
}

func TestSampleLogValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	s := Sample{Gate: "err-rate", Result: Fail, Values: []Value{{V: 0.2}}, Query: `sum(x{a="b"})`,
		URL: "http://p/api/v1/query", Status: 200, Reason: "result 0.2 meets failure result > 0.1", Took: 12 * time.Millisecond}
	log.Warn("gate sample", "app", "web", "sample", s)
	want := `level=WARN msg="gate sample" app=web sample.gate=err-rate sample.result=fail sample.value=0.2 sample.query="sum(x{a=\"b\"})" sample.url=http://p/api/v1/query sample.status=200 sample.reason="result 0.2 meets failure result > 0.1" sample.took=12ms` + "\n"
	if buf.String() != want {
		t.Fatalf("got  %s\nwant %s", buf.String(), want)
	}
}

func TestEscape(t *testing.T) {
	if got := EscapeURL("a b/c?d&e=f~_.-"); got != "a%20b%2Fc%3Fd%26e%3Df~_.-" {
		t.Fatal(got)
	}
	if got := EscapePromQL(`a"b'c\d` + "\n"); got != `a\"b\'c\\d\n` {
		t.Fatal(got)
	}
}
