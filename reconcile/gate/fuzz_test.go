package gate

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// answerDoer answers every request with one status and body.
type answerDoer struct {
	status int
	body   []byte
}

func (d answerDoer) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: d.status, Status: http.StatusText(d.status),
		Body: io.NopCloser(bytes.NewReader(d.body)), Header: http.Header{}, Request: req}, nil
}

// FuzzPrometheusAnswer feeds arbitrary answers of a Prometheus server (outside
// input) to the evaluator: it must never panic, always give a result, and
// never pass a sample that has no value unless no_data says pass.
func FuzzPrometheusAnswer(f *testing.F) {
	for _, s := range []string{
		vector("0.001"), vector("0.001", "NaN", "+Inf"), vector(),
		`{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]}}`,
		`{"status":"success","data":{"resultType":"scalar","result":[1]}}`,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":null,"value":null}]}}`,
		`{"status":"error","errorType":"bad_data","error":"parse error"}`,
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		`{"status":"success","warnings":["w"],"data":{"resultType":"vector","result":[]}}`,
		`{"status":"success","data":null}`, `[]`, `null`, `<html>`,
	} {
		f.Add(200, []byte(s))
	}
	f.Add(503, []byte(`{"status":"error","errorType":"unavailable","error":"x"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		for _, pol := range []manifest.NoData{manifest.NoDataFail, manifest.NoDataPass} {
			g := manifest.Gate{Name: "f", Prometheus: &manifest.PrometheusCheck{URL: "http://p:9090", Query: "q"},
				Success: cond(t, "all(result < 0.01)"), Failure: cond(t, "any(result > 0.5)"),
				Interval: time.Second, Timeout: time.Second, Count: 1, FailureLimit: 1, InconclusiveLimit: 1, NoData: pol}
			ev := &Evaluator{Client: func(manifest.TLS, Files) (Doer, error) { return answerDoer{status, body}, nil }}
			s := ev.Evaluate(context.Background(), g, Vars{})
			if s.Result != Pass && s.Result != Fail && s.Result != Inconclusive {
				t.Fatalf("no result: %+v", s)
			}
			if s.Reason == "" || strings.ContainsAny(s.Reason, "\n") && !strings.Contains(string(body), "\n") {
				t.Fatalf("reason %q", s.Reason)
			}
			if s.Result == Pass && status != 200 {
				t.Fatalf("passed on HTTP %d: %s", status, s)
			}
			if s.Result == Pass && len(dropNaN(s.Values)) == 0 && !(s.NoData && pol == manifest.NoDataPass) {
				t.Fatalf("passed without a value: %s", s)
			}
		}
	})
}
