// Package gate evaluates a rollout's health gates (issue 13): it takes one
// sample of a gate's Prometheus query or HTTP check (Evaluator.Evaluate),
// and decides a gate's verdict from its samples over time (Run). Which host
// evaluates, when, and what the fleet does with a verdict is the rollout's
// business (DESIGN.md in this directory); this package does no scheduling
// of its own beyond Runner, a small loop over Run with an injected clock.
//
// Credentials are read from their files for every sample and never appear
// in a Sample, an error or a log line: a secret read for a request is
// redacted from every text the sample carries.
package gate

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Result is the outcome of one sample.
type Result uint8

// Sample results.
const (
	Pass Result = iota + 1
	Fail
	Inconclusive
)

func (r Result) String() string {
	switch r {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Inconclusive:
		return "inconclusive"
	}
	return "result(" + strconv.Itoa(int(r)) + ")"
}

// Value is one number a sample measured: a scalar, one series of a vector
// (Labels like {host="web-1"}), or an HTTP check's status code.
type Value struct {
	Labels string
	V      float64
}

// Sample is one evaluation of a gate. No field ever holds a credential.
type Sample struct {
	Gate   string
	Result Result
	Values []Value // what was measured (NaN series included, as reported)
	NoData bool    // an empty result (or only NaN), judged by no_data
	Query  string  // the PromQL as sent, or "GET " + the URL of an HTTP check
	URL    string  // the endpoint the request went to
	Status int     // HTTP status of the answer; 0 when there was none
	Reason string  // one line: why this result
	Err    string  // the error that made the sample inconclusive, if any
	At     time.Time
	Took   time.Duration
}

// String is the sample as a log line's message part: gate, result, the
// query and the value.
func (s Sample) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gate %s: %s: %s", s.Gate, s.Result, s.Reason)
	if s.Query != "" {
		fmt.Fprintf(&b, " (query %q", s.Query)
		if s.URL != "" && !strings.HasPrefix(s.Query, "GET ") {
			fmt.Fprintf(&b, " at %s", s.URL)
		}
		b.WriteString(")")
	}
	return b.String()
}

// LogValue makes a sample a log/slog group: gate, result, value, query,
// url, status, reason, error, took. Like every field of a sample it holds
// no credential.
//
//	log.Info("gate sample", "sample", s)
func (s Sample) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("gate", s.Gate),
		slog.String("result", s.Result.String()),
	}
	if len(s.Values) > 0 {
		attrs = append(attrs, slog.String("value", FormatValues(s.Values, 5)))
	}
	if s.NoData {
		attrs = append(attrs, slog.Bool("no_data", true))
	}
	attrs = append(attrs, slog.String("query", s.Query), slog.String("url", s.URL))
	if s.Status != 0 {
		attrs = append(attrs, slog.Int("status", s.Status))
	}
	attrs = append(attrs, slog.String("reason", s.Reason))
	if s.Err != "" {
		attrs = append(attrs, slog.String("error", s.Err))
	}
	attrs = append(attrs, slog.Duration("took", s.Took))
	return slog.GroupValue(attrs...)
}

var _ slog.LogValuer = Sample{}

// FormatValues formats values for a message: "0.0123" for one unlabelled
// value, "{host="a"} 0.1, {host="b"} 0.2" for series (at most max, then
// "and N more").
func FormatValues(vs []Value, max int) string {
	if len(vs) == 1 && vs[0].Labels == "" {
		return formatFloat(vs[0].V)
	}
	var b strings.Builder
	for i, v := range vs {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(vs)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if v.Labels != "" {
			b.WriteString(v.Labels)
			b.WriteString(" ")
		}
		b.WriteString(formatFloat(v.V))
	}
	return b.String()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// Vars are the values of a gate's templates.
type Vars struct {
	App, Group, Host, Revision string
}

func (v Vars) m() map[string]string {
	return map[string]string{"app": v.App, "group": v.Group, "host": v.Host, "revision": v.Revision}
}

// Doer sends one HTTP request. *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Files reads credential and CA files.
type Files interface {
	ReadFile(name string) ([]byte, error)
}

type osFiles struct{}

func (osFiles) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Evaluator takes samples. The zero value is ready: real HTTP, files from
// disk, the wall clock. It keeps no state between samples and is safe for
// concurrent use (when Client, Files and Now are).
type Evaluator struct {
	// Client returns the HTTP client for a check's TLS settings. nil: a
	// fresh client per sample (so a rotated CA file takes effect), which
	// neither follows redirects nor keeps connections.
	Client func(manifest.TLS, Files) (Doer, error)
	Files  Files            // nil: the local filesystem
	Now    func() time.Time // nil: time.Now
}

// maxPromBody and maxHTTPBody bound what is read of an answer.
const (
	maxPromBody = 8 << 20
	maxHTTPBody = 1 << 20
)

func (e *Evaluator) files() Files {
	if e.Files == nil {
		return osFiles{}
	}
	return e.Files
}

func (e *Evaluator) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// DefaultClient builds a client for one check: the TLS settings (the CA
// file read now), no redirects (a redirect is answered as it is: an
// HTTP check compares its status, a Prometheus gate reports it), no
// connection reuse across samples.
func DefaultClient(t manifest.TLS, files Files) (Doer, error) {
	cfg := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // asked for in the manifest
	if t.CAFile != "" {
		pem, err := files.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             http.ProxyFromEnvironment,
			TLSClientConfig:   cfg,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Evaluate takes one sample of g with the templates' values vars. It never
// fails: what goes wrong is an inconclusive sample saying why.
func (e *Evaluator) Evaluate(ctx context.Context, g manifest.Gate, vars Vars) Sample {
	s := Sample{Gate: g.Name, At: e.now()}
	var secrets []string
	switch {
	case g.Prometheus != nil:
		secrets = e.prometheus(ctx, g, vars, &s)
	case g.HTTP != nil:
		secrets = e.httpCheck(ctx, g, vars, &s)
	default:
		s.Result, s.Reason = Inconclusive, "the gate has no check"
	}
	s.Took = e.now().Sub(s.At)
	redact(&s, secrets)
	return s
}

// request builds a request with the check's credentials, read now. It
// returns the secrets it put in the request, for redaction.
func (e *Evaluator) request(ctx context.Context, method, url string, body io.Reader, a manifest.Auth) (*http.Request, []string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "drover-gate")
	var secrets []string
	if a.BearerTokenFile != "" {
		b, err := e.files().ReadFile(a.BearerTokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read bearer_token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, nil, fmt.Errorf("bearer_token_file %s is empty", a.BearerTokenFile)
		}
		secrets = append(secrets, tok)
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ba := a.BasicAuth; ba != nil {
		b, err := e.files().ReadFile(ba.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read basic_auth.password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		secrets = append(secrets, pw)
		req.SetBasicAuth(ba.Username, pw)
		secrets = append(secrets, strings.TrimPrefix(req.Header.Get("Authorization"), "Basic "))
	}
	return req, secrets, nil
}

func (e *Evaluator) client(t manifest.TLS) (Doer, error) {
	if e.Client != nil {
		return e.Client(t, e.files())
	}
	return DefaultClient(t, e.files())
}

// do sends req, bounded by the gate's timeout, and reads at most max bytes
// of the answer. A transport error is described for a person.
//
// Secrets are redacted from the body at once, before any part of it can be
// cut into a message: an excerpt cut in the middle of a secret would
// otherwise leak its start (a server that echoes headers does that).
func (e *Evaluator) do(ctx context.Context, g manifest.Gate, t manifest.TLS, req *http.Request, max int64, secrets []string) (*http.Response, []byte, error) {
	c, err := e.client(t)
	if err != nil {
		return nil, nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	resp, err := c.Do(req.WithContext(tctx))
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, nil, fmt.Errorf("stopped: %w", ctx.Err())
		case errors.Is(err, context.DeadlineExceeded) || tctx.Err() != nil:
			return nil, nil, fmt.Errorf("no answer within the timeout (%s)", g.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the sample already
		}
		return nil, nil, fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return nil, nil, fmt.Errorf("the answer did not complete within the timeout (%s)", g.Timeout)
		}
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	if int64(len(body)) > max {
		return resp, nil, fmt.Errorf("the answer is larger than %d bytes", max)
	}
	for _, sec := range secrets {
		if sec != "" {
			body = bytes.ReplaceAll(body, []byte(sec), []byte("[redacted]"))
		}
	}
	return resp, body, nil
}

// judge turns the values of a Prometheus sample into its result with the
// gate's conditions: failure first (it wins when both hold), then success.
// With only success, not meeting it fails; with only failure, not meeting
// it passes; with both, meeting neither is inconclusive.
func judge(g manifest.Gate, s *Sample, values []float64) {
	vs := FormatValues(s.Values, 5)
	if g.Failure != nil {
		ok, err := g.Failure.Eval(values)
		if err != nil {
			s.Result, s.Err = Inconclusive, err.Error()
			s.Reason = fmt.Sprintf("result %s: failure %s: %v", vs, g.Failure, err)
			return
		}
		if ok {
			s.Result, s.Reason = Fail, fmt.Sprintf("result %s meets failure %s", vs, g.Failure)
			return
		}
	}
	if g.Success == nil {
		s.Result, s.Reason = Pass, fmt.Sprintf("result %s does not meet failure %s", vs, g.Failure)
		return
	}
	ok, err := g.Success.Eval(values)
	switch {
	case err != nil:
		s.Result, s.Err = Inconclusive, err.Error()
		s.Reason = fmt.Sprintf("result %s: success %s: %v", vs, g.Success, err)
	case ok:
		s.Result, s.Reason = Pass, fmt.Sprintf("result %s meets success %s", vs, g.Success)
	case g.Failure != nil:
		s.Result, s.Reason = Inconclusive, fmt.Sprintf("result %s meets neither success %s nor failure %s", vs, g.Success, g.Failure)
	default:
		s.Result, s.Reason = Fail, fmt.Sprintf("result %s does not meet success %s", vs, g.Success)
	}
}

// noData applies the gate's no_data policy.
func noData(g manifest.Gate, s *Sample, why string) {
	s.NoData = true
	switch g.NoData {
	case manifest.NoDataPass:
		s.Result = Pass
	case manifest.NoDataInconclusive:
		s.Result = Inconclusive
	default:
		s.Result = Fail
	}
	pol := g.NoData
	if pol == "" {
		pol = manifest.NoDataFail
	}
	s.Reason = fmt.Sprintf("no data: %s (no_data: %s)", why, pol)
}

// dropNaN returns the values that are numbers.
func dropNaN(vs []Value) []float64 {
	out := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v.V) {
			out = append(out, v.V)
		}
	}
	return out
}

// redact replaces every secret in the sample's texts.
func redact(s *Sample, secrets []string) {
	for _, sec := range secrets {
		if len(sec) < 1 {
			continue
		}
		for _, f := range []*string{&s.Reason, &s.Err, &s.Query, &s.URL} {
			*f = strings.ReplaceAll(*f, sec, "[redacted]")
		}
		for i := range s.Values {
			s.Values[i].Labels = strings.ReplaceAll(s.Values[i].Labels, sec, "[redacted]")
		}
	}
}

// formatLabels formats a series' labels as PromQL would select them.
func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "" // an aggregate without labels reads as its value alone
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// excerpt is the start of an answer's body, one line, for a message.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
