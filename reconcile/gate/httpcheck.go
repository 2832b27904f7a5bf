package gate

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// httpCheck takes one sample of an HTTP check: a GET whose status must be
// one of expect_status and whose body must contain expect_body (or match
// expect_body_regexp). No answer at all is inconclusive: the check could
// not look. It returns the secrets it sent.
func (e *Evaluator) httpCheck(ctx context.Context, g manifest.Gate, vars Vars, s *Sample) []string {
	c := g.HTTP
	vm := vars.m()
	u, err := url.Parse(manifest.ExpandTemplate(c.URL, vm, EscapeURL))
	if err != nil {
		s.Result, s.Reason, s.Err = Inconclusive, "http url does not parse", "bad url"
		return nil
	}
	u.User = nil
	s.URL = u.Redacted()
	s.Query = "GET " + s.URL
	req, secrets, err := e.request(ctx, http.MethodGet, u.String(), nil, c.Auth)
	if err != nil {
		s.Result, s.Err = Inconclusive, err.Error()
		s.Reason = "http: " + err.Error()
		return secrets
	}
	resp, body, err := e.do(ctx, g, c.Auth.TLS, req, maxHTTPBody, secrets)
	if resp != nil {
		s.Status = resp.StatusCode
		s.Values = []Value{{V: float64(resp.StatusCode)}} // an HTTP check's value is its status
	}
	if err != nil {
		s.Result, s.Err = Inconclusive, err.Error()
		s.Reason = "http: " + err.Error()
		return secrets
	}
	if !slices.Contains(c.ExpectStatus, resp.StatusCode) {
		want := make([]string, len(c.ExpectStatus))
		for i, c := range c.ExpectStatus {
			want[i] = strconv.Itoa(c)
		}
		s.Result = Fail
		s.Reason = fmt.Sprintf("status %d, want %s: %s", resp.StatusCode, strings.Join(want, " or "), excerpt(body))
		return secrets
	}
	switch {
	case c.ExpectBody != "":
		want := manifest.ExpandTemplate(c.ExpectBody, vm, nil)
		if !strings.Contains(string(body), want) {
			s.Result = Fail
			s.Reason = fmt.Sprintf("status %d, but the body does not contain %q: %s", resp.StatusCode, want, excerpt(body))
			return secrets
		}
		s.Result, s.Reason = Pass, fmt.Sprintf("status %d, body contains %q", resp.StatusCode, want)
	case c.ExpectBodyRegexp != "":
		src := manifest.ExpandTemplate(c.ExpectBodyRegexp, vm, regexp.QuoteMeta)
		re, err := regexp.Compile(src)
		if err != nil {
			s.Result, s.Err, s.Reason = Inconclusive, err.Error(), "http: expect_body_regexp: "+err.Error()
			return secrets
		}
		if !re.Match(body) {
			s.Result = Fail
			s.Reason = fmt.Sprintf("status %d, but the body does not match %s: %s", resp.StatusCode, src, excerpt(body))
			return secrets
		}
		s.Result, s.Reason = Pass, fmt.Sprintf("status %d, body matches %s", resp.StatusCode, src)
	default:
		s.Result, s.Reason = Pass, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return secrets
}
