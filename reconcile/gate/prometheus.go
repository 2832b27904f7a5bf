package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// maxSeries bounds the series a gate's query may return.
const maxSeries = 10000

// promAnswer is the envelope of Prometheus' HTTP API.
type promAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

type promData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// EscapePromQL escapes a template's value for a PromQL string literal
// ("..." or '...'), so that a revision label with a quote cannot end the
// string it is spliced into.
func EscapePromQL(v string) string {
	q := strconv.Quote(v)
	return strings.ReplaceAll(q[1:len(q)-1], "'", `\'`)
}

// EscapeURL percent-encodes every byte of a template's value that is not
// unreserved (RFC 3986), which is right in a path and in a query alike.
func EscapeURL(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// prometheus takes an instant query sample (POST /api/v1/query, at the
// server's now). It returns the secrets it sent.
func (e *Evaluator) prometheus(ctx context.Context, g manifest.Gate, vars Vars, s *Sample) []string {
	c := g.Prometheus
	vm := vars.m()
	s.Query = manifest.ExpandTemplate(c.Query, vm, EscapePromQL)
	base, err := url.Parse(manifest.ExpandTemplate(c.URL, vm, EscapeURL))
	if err != nil {
		s.Result, s.Reason, s.Err = Inconclusive, "prometheus url does not parse", "bad url"
		return nil
	}
	base.User = nil
	endpoint := base.JoinPath("api", "v1", "query")
	s.URL = endpoint.Redacted()
	form := url.Values{"query": {s.Query}}
	req, secrets, err := e.request(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()), c.Auth)
	if err != nil {
		s.Result, s.Err = Inconclusive, err.Error()
		s.Reason = "prometheus: " + err.Error()
		return secrets
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, body, err := e.do(ctx, g, c.Auth.TLS, req, maxPromBody, secrets)
	if resp != nil {
		s.Status = resp.StatusCode
	}
	if err != nil {
		s.Result, s.Err = Inconclusive, err.Error()
		s.Reason = "prometheus: " + err.Error()
		return secrets
	}
	var ans promAnswer
	jerr := json.Unmarshal(body, &ans)
	if resp.StatusCode != http.StatusOK || jerr != nil || ans.Status != "success" {
		s.Result = Inconclusive
		switch {
		case jerr == nil && ans.Status == "error":
			s.Err = fmt.Sprintf("%s: %s", ans.ErrorType, ans.Error)
			s.Reason = fmt.Sprintf("prometheus answered %d: %s", resp.StatusCode, s.Err)
		case resp.StatusCode != http.StatusOK:
			s.Err = fmt.Sprintf("HTTP %d", resp.StatusCode)
			s.Reason = fmt.Sprintf("prometheus answered %s: %s", resp.Status, excerpt(body))
		default:
			s.Err = "not an answer of Prometheus' API"
			s.Reason = "prometheus: the answer is not Prometheus' API JSON: " + excerpt(body)
		}
		return secrets
	}
	var data promData
	if err := json.Unmarshal(ans.Data, &data); err != nil {
		s.Result, s.Err, s.Reason = Inconclusive, "malformed data", "prometheus: malformed data in the answer: "+err.Error()
		return secrets
	}
	switch data.ResultType {
	case "scalar":
		var pair []any
		if err := json.Unmarshal(data.Result, &pair); err != nil {
			s.Result, s.Err, s.Reason = Inconclusive, "malformed scalar", "prometheus: malformed scalar: "+err.Error()
			return secrets
		}
		v, err := sampleValue(pair)
		if err != nil {
			s.Result, s.Err, s.Reason = Inconclusive, err.Error(), "prometheus: "+err.Error()
			return secrets
		}
		s.Values = []Value{{V: v}}
	case "vector":
		var series []promSeries
		if err := json.Unmarshal(data.Result, &series); err != nil {
			s.Result, s.Err, s.Reason = Inconclusive, "malformed vector", "prometheus: malformed vector: "+err.Error()
			return secrets
		}
		if len(series) > maxSeries {
			s.Result, s.Err = Inconclusive, "too many series"
			s.Reason = fmt.Sprintf("prometheus: the query returned %d series, more than %d: aggregate it", len(series), maxSeries)
			return secrets
		}
		for _, se := range series {
			v, err := sampleValue(se.Value)
			if err != nil {
				s.Result, s.Err, s.Reason = Inconclusive, err.Error(), "prometheus: "+err.Error()
				return secrets
			}
			s.Values = append(s.Values, Value{Labels: formatLabels(se.Metric), V: v})
		}
	case "matrix":
		s.Result, s.Err = Inconclusive, "range vector"
		s.Reason = "prometheus: the query returned a range vector; a gate needs a scalar or an instant vector (wrap it, e.g. in rate(...[5m]))"
		return secrets
	default:
		s.Result, s.Err = Inconclusive, "unsupported result type "+strconv.Quote(data.ResultType)
		s.Reason = fmt.Sprintf("prometheus: the query returned a %s; a gate needs a scalar or an instant vector", data.ResultType)
		return secrets
	}
	values := dropNaN(s.Values)
	switch {
	case len(s.Values) == 0:
		noData(g, s, "the query returned an empty vector")
	case len(values) == 0:
		noData(g, s, "the query returned NaN (0/0: no requests in the window?)")
	default:
		judge(g, s, values)
	}
	if len(ans.Warnings) > 0 {
		s.Reason += "; prometheus warns: " + excerpt([]byte(strings.Join(ans.Warnings, "; ")))
	}
	return secrets
}

// sampleValue reads [timestamp, "value"].
func sampleValue(pair []any) (float64, error) {
	if len(pair) != 2 {
		return 0, fmt.Errorf("malformed sample %v", pair)
	}
	str, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("malformed sample value %v", pair[1])
	}
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed sample value %q", str)
	}
	return v, nil
}
