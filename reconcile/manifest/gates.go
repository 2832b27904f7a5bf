package manifest

import (
	"errors"
	"fmt"
	"github.com/drover-dev/drover/internal/suggest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/reconcile/gate/expr"
)

// MaxGates is the most gates one manifest may declare.
const MaxGates = 16

// TemplateVars are the names a gate's url, query and expected body may
// use as {{name}}.
var TemplateVars = []string{"app", "group", "host", "revision"}

var gateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// TemplateError is a malformed template, with the 1-based column.
type TemplateError struct {
	Col int
	Msg string
}

func (e *TemplateError) Error() string { return fmt.Sprintf("column %d: %s", e.Col, e.Msg) }

// CheckTemplate reports the first malformed {{...}} in s: an unclosed one,
// or a name not in TemplateVars.
func CheckTemplate(s string) error {
	_, err := expand(s, nil, nil)
	return err
}

// ExpandTemplate replaces every {{name}} in s (spaces inside the braces are
// allowed) by escape(vars[name]). escape may be nil. s must have passed
// CheckTemplate; a malformed template is left as written.
func ExpandTemplate(s string, vars map[string]string, escape func(string) string) string {
	out, err := expand(s, vars, escape)
	if err != nil {
		return s
	}
	return out
}

func expand(s string, vars map[string]string, escape func(string) string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	var b strings.Builder
	rest, off := s, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return "", &TemplateError{Col: off + i + 1, Msg: "{{ is not closed with }}"}
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		known := false
		for _, v := range TemplateVars {
			if name == v {
				known = true
			}
		}
		if !known {
			msg := fmt.Sprintf("unknown template {{%s}}", name)
			if sg := suggest.Closest(name, TemplateVars); sg != "" {
				msg += fmt.Sprintf("; did you mean {{%s}}?", sg)
			} else {
				msg += " (known: {{" + strings.Join(TemplateVars, "}}, {{") + "}})"
			}
			return "", &TemplateError{Col: off + i + 1, Msg: msg}
		}
		b.WriteString(rest[:i])
		v := vars[name]
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
		rest, off = rest[i+j+2:], off+i+j+2
	}
}

// required reports a missing key of what, unless a misspelt key was
// already taken for it (one message for one mistake).
func (p *parser) required(line int, what, key, hint string) {
	if p.meant[what+"."+key] {
		return
	}
	p.addf(line, "%s.%s is required%s", what, key, hint)
}

// fields is mapping with each field's key made its full path
// (deployment.gates[0].interval), so that messages name the field.
func (p *parser) fields(n *yaml.Node, what string, known ...string) map[string]field {
	m := p.mapping(n, what, known...)
	for k, f := range m {
		f.key = what + "." + k
		m[k] = f
	}
	return m
}

func (p *parser) gates(gf field, d *Deployment) {
	n := resolve(gf.value)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.addf(gf.line, "deployment.gates must be a list of gates, not %s", kindName(n))
		return
	}
	if len(n.Content) > MaxGates {
		p.addf(gf.line, "deployment.gates: at most %d gates, not %d", MaxGates, len(n.Content))
		return
	}
	names := map[string]int{}
	for i, gn := range n.Content {
		what := fmt.Sprintf("deployment.gates[%d]", i)
		g, ok := p.gate(resolve(gn), what, d.Strategy)
		if !ok {
			continue
		}
		if first, dup := names[g.Name]; dup {
			p.addf(resolve(gn).Line, "%s: name %q is already used by deployment.gates[%d]", what, g.Name, first)
			continue
		}
		names[g.Name] = i
		d.Gates = append(d.Gates, g)
	}
}

var gateKeys = []string{"name", "when", "prometheus", "http", "success", "failure", "interval", "timeout",
	"initial_delay", "count", "failure_limit", "inconclusive_limit", "no_data"}

// gate parses one gate. ok is false when anything about it was wrong.
func (p *parser) gate(n *yaml.Node, what string, strategy Strategy) (Gate, bool) {
	before := p.Len()
	g := Gate{}
	fields := p.fields(n, what, gateKeys...)
	if fields == nil {
		return g, false
	}
	if f, ok := fields["name"]; !ok {
		p.required(n.Line, what, "name", "")
	} else if v, ok := p.str(f); ok {
		if !gateNameRE.MatchString(v) {
			p.addf(f.line, "%s %q: use 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit", f.key, v)
		}
		g.Name = v
	}

	g.When = WhenBatch
	if strategy == Canary {
		g.When = WhenBake
	}
	if f, ok := fields["when"]; ok {
		if v, ok := p.enum(f, "bake", "batch", "host", "continuous"); ok {
			g.When = When(v)
			if g.When == WhenBake && strategy != Canary {
				p.addf(f.line, "%s: bake gates apply only to the canary strategy, not %s (use batch or host)", f.key, strategy)
			}
		}
	}

	fp, hasProm := fields["prometheus"]
	fh, hasHTTP := fields["http"]
	switch {
	case hasProm && hasHTTP:
		p.addf(fh.line, "%s: give either prometheus or http, not both", what)
	case !hasProm && !hasHTTP:
		p.addf(n.Line, "%s: give one of prometheus: {url, query} or http: {url}", what)
	case hasProm:
		g.Prometheus = p.prometheus(fp)
	case hasHTTP:
		g.HTTP = p.httpCheck(fh)
	}

	for _, k := range []string{"success", "failure"} {
		f, ok := fields[k]
		if !ok {
			continue
		}
		if hasHTTP && !hasProm {
			p.addf(f.line, "%s: http gates are judged by expect_status and expect_body; success and failure apply to prometheus gates", f.key)
			continue
		}
		if v, ok := p.str(f); ok {
			e, err := expr.Parse(v)
			if err != nil {
				p.addf(f.line, "%s %q: %v", f.key, v, err)
				continue
			}
			if k == "success" {
				g.Success = e
			} else {
				g.Failure = e
			}
		}
	}
	if hasProm && !hasHTTP && !p.meant[what+".success"] && !p.meant[what+".failure"] &&
		fields["success"].value == nil && fields["failure"].value == nil {
		p.addf(n.Line, "%s: a prometheus gate needs success or failure (or both), for example success: result < 0.01", what)
	}

	g.Interval = DefaultGateInterval
	if f, ok := fields["interval"]; ok {
		g.Interval, _ = p.duration(f, time.Second, time.Hour)
	}
	g.Timeout = min(DefaultGateTimeout, g.Interval)
	if f, ok := fields["timeout"]; ok {
		if v, ok := p.duration(f, 100*time.Millisecond, time.Hour); ok {
			g.Timeout = v
			if g.Interval > 0 && v > g.Interval {
				p.addf(f.line, "%s %s: must be at most the interval (%s)", f.key, v, g.Interval)
			}
		}
	}
	if f, ok := fields["initial_delay"]; ok {
		g.InitialDelay, _ = p.duration(f, 0, time.Hour)
	}

	g.Count = DefaultGateCount
	if f, ok := fields["count"]; ok {
		if g.When == WhenContinuous {
			p.addf(f.line, "%s: a continuous gate samples for as long as the rollout runs; count does not apply", f.key)
		} else {
			g.Count, _ = p.integer(f, 1, 1000)
		}
	}
	if g.When == WhenContinuous {
		g.Count = 0
	}
	g.FailureLimit = DefaultGateFailureLimit
	if f, ok := fields["failure_limit"]; ok {
		g.FailureLimit, _ = p.integer(f, 1, 1000)
	}
	g.InconclusiveLimit = DefaultGateInconclusiveLimit
	if f, ok := fields["inconclusive_limit"]; ok {
		g.InconclusiveLimit, _ = p.integer(f, 1, 1000)
	}
	if hasProm && !hasHTTP {
		g.NoData = NoDataFail
	}
	if f, ok := fields["no_data"]; ok {
		if hasHTTP && !hasProm {
			p.addf(f.line, "%s: applies only to prometheus gates (an http check always has a status)", f.key)
		} else if v, ok := p.enum(f, "fail", "inconclusive", "pass"); ok {
			g.NoData = NoData(v)
		}
	}
	return g, p.Len() == before
}

func (p *parser) prometheus(f field) *PrometheusCheck {
	c := &PrometheusCheck{}
	fields := p.fields(f.value, f.key, "url", "query", "bearer_token_file", "basic_auth", "tls")
	if fields == nil {
		return c
	}
	if uf, ok := fields["url"]; !ok {
		p.required(f.line, f.key, "url", " (the Prometheus server, for example http://prometheus:9090)")
	} else {
		c.URL = p.checkURL(uf)
	}
	if qf, ok := fields["query"]; !ok {
		p.required(f.line, f.key, "query", " (a PromQL expression)")
	} else if v, ok := p.str(qf); ok {
		switch {
		case strings.TrimSpace(v) == "":
			p.addf(qf.line, "%s must not be empty", qf.key)
		case len(v) > 8192:
			p.addf(qf.line, "%s is longer than 8192 bytes", qf.key)
		default:
			if err := CheckTemplate(v); err != nil {
				p.addf(qf.line, "%s: %v", qf.key, err)
			}
		}
		c.Query = v
	}
	c.Auth = p.auth(fields, c.URL)
	return c
}

func (p *parser) httpCheck(f field) *HTTPCheck {
	c := &HTTPCheck{ExpectStatus: []int{200}}
	fields := p.fields(f.value, f.key, "url", "expect_status", "expect_body", "expect_body_regexp",
		"bearer_token_file", "basic_auth", "tls")
	if fields == nil {
		return c
	}
	if uf, ok := fields["url"]; !ok {
		p.required(f.line, f.key, "url", "")
	} else {
		c.URL = p.checkURL(uf)
	}
	if sf, ok := fields["expect_status"]; ok {
		c.ExpectStatus = p.statuses(sf)
	}
	bf, hasBody := fields["expect_body"]
	rf, hasRE := fields["expect_body_regexp"]
	if hasBody {
		if v, ok := p.str(bf); ok {
			if err := CheckTemplate(v); err != nil {
				p.addf(bf.line, "%s: %v", bf.key, err)
			}
			c.ExpectBody = v
		}
	}
	if hasRE {
		if v, ok := p.str(rf); ok {
			if err := CheckTemplate(v); err != nil {
				p.addf(rf.line, "%s: %v", rf.key, err)
			} else if _, err := regexp.Compile(ExpandTemplate(v, nil, nil)); err != nil {
				p.addf(rf.line, "%s %q: %s", rf.key, v, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
			c.ExpectBodyRegexp = v
		}
	}
	if hasBody && hasRE {
		p.addf(rf.line, "%s: give either expect_body (a substring) or expect_body_regexp, not both", f.key)
	}
	c.Auth = p.auth(fields, c.URL)
	return c
}

func (p *parser) statuses(f field) []int {
	n := resolve(f.value)
	var items []*yaml.Node
	switch n.Kind {
	case yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 || len(items) > 32 {
			p.addf(f.line, "%s: give 1 to 32 status codes", f.key)
			return []int{200}
		}
	default:
		items = []*yaml.Node{n}
	}
	out := make([]int, 0, len(items))
	for _, it := range items {
		v, ok := p.scalar(field{key: f.key, line: resolve(it).Line, value: it})
		if !ok {
			continue
		}
		c, err := strconv.Atoi(v)
		if err != nil || c < 100 || c > 599 || strings.TrimLeft(v, "0123456789") != "" {
			p.addf(resolve(it).Line, "%s %q: want an HTTP status code from 100 to 599", f.key, v)
			continue
		}
		out = append(out, c)
	}
	return out
}

// checkURL validates an http or https URL that may hold templates. Its
// text is what is kept; credentials in it are refused, so that the URL can
// be logged and shown.
func (p *parser) checkURL(f field) string {
	v, ok := p.str(f)
	if !ok {
		return ""
	}
	if err := CheckTemplate(v); err != nil {
		p.addf(f.line, "%s: %v", f.key, err)
		return v
	}
	u, err := url.Parse(ExpandTemplate(v, map[string]string{"app": "a", "group": "g", "host": "h", "revision": "r"}, nil))
	switch {
	case err != nil:
		p.addf(f.line, "%s: not a URL: %s", f.key, strings.TrimPrefix(errors.Unwrap(err).Error(), "parse "))
	case u.Scheme != "http" && u.Scheme != "https":
		p.addf(f.line, "%s: want an http:// or https:// URL", f.key)
	case u.Host == "":
		p.addf(f.line, "%s: the URL names no host", f.key)
	case u.User != nil:
		// Say nothing of the URL's text: it holds a secret.
		p.addf(f.line, "%s: credentials in the URL are refused (they would show in logs and status); use basic_auth with a password_file, or bearer_token_file", f.key)
		return ""
	case u.Fragment != "":
		p.addf(f.line, "%s: the URL must not have a #fragment", f.key)
	}
	return v
}

func (p *parser) auth(fields map[string]field, rawURL string) Auth {
	var a Auth
	if f, ok := fields["bearer_token_file"]; ok {
		a.BearerTokenFile = p.absFile(f)
	}
	if f, ok := fields["basic_auth"]; ok {
		ba := &BasicAuth{}
		bf := p.fields(f.value, f.key, "username", "password_file")
		if bf != nil {
			if uf, ok := bf["username"]; !ok {
				p.required(f.line, f.key, "username", "")
			} else if v, ok := p.str(uf); ok {
				if v == "" || strings.ContainsAny(v, ":\x00\r\n") {
					p.addf(uf.line, "%s: must not be empty or hold ':' or control characters", uf.key)
				}
				ba.Username = v
			}
			if pf, ok := bf["password_file"]; !ok {
				p.required(f.line, f.key, "password_file", " (a file holding the password; passwords are never written in a manifest)")
			} else {
				ba.PasswordFile = p.absFile(pf)
			}
		}
		a.BasicAuth = ba
		if a.BearerTokenFile != "" {
			p.addf(f.line, "%s: give either bearer_token_file or basic_auth, not both", f.key)
		}
	}
	if f, ok := fields["tls"]; ok {
		tf := p.fields(f.value, f.key, "ca_file", "insecure_skip_verify")
		if cf, ok := tf["ca_file"]; ok {
			a.TLS.CAFile = p.absFile(cf)
		}
		if sf, ok := tf["insecure_skip_verify"]; ok {
			a.TLS.InsecureSkipVerify, _ = p.boolean(sf)
		}
		if a.TLS.CAFile != "" && a.TLS.InsecureSkipVerify {
			p.addf(f.line, "%s: ca_file and insecure_skip_verify contradict each other; give one", f.key)
		}
		if strings.HasPrefix(rawURL, "http://") {
			p.addf(f.line, "%s: applies only to an https:// URL", f.key)
		}
	}
	return a
}

func (p *parser) absFile(f field) string {
	v, ok := p.str(f)
	if !ok {
		return ""
	}
	if !filepath.IsAbs(v) || strings.ContainsAny(v, "\x00\r\n") || len(v) > 4096 {
		p.addf(f.line, "%s %q: want an absolute path to a file on the host", f.key, v)
		return ""
	}
	return filepath.Clean(v)
}

func (p *parser) duration(f field, lo, hi time.Duration) (time.Duration, bool) {
	v, ok := p.str(f)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.addf(f.line, "%s %q: want a duration like 30s, 2m or 1h", f.key, v)
		return 0, false
	}
	if d < lo || d > hi {
		p.addf(f.line, "%s %q: want between %s and %s", f.key, v, lo, hi)
		return 0, false
	}
	return d, true
}

func (p *parser) integer(f field, lo, hi int) (int, bool) {
	v, ok := p.str(f)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || strings.TrimLeft(v, "0123456789") != "" {
		p.addf(f.line, "%s %q: want a whole number", f.key, v)
		return 0, false
	}
	if n < lo || n > hi {
		p.addf(f.line, "%s %d: want from %d to %d", f.key, n, lo, hi)
		return 0, false
	}
	return n, true
}

// enum returns a scalar that must be one of values.
func (p *parser) enum(f field, values ...string) (string, bool) {
	v, ok := p.str(f)
	if !ok {
		return "", false
	}
	for _, w := range values {
		if v == w {
			return v, true
		}
	}
	msg := fmt.Sprintf("%s %q: want %s", f.key, v, strings.Join(values, ", "))
	if s := suggest.Closest(v, values); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	p.addf(f.line, "%s", msg)
	return "", false
}
