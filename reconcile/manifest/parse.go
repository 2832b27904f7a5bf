package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/problems"
	"github.com/drover-dev/drover/internal/suggest"
)

// MaxSize is the largest manifest accepted. A manifest is a few hundred
// bytes; anything near this limit is a mistake or an attack.
const MaxSize = 64 << 10

// Problem is one thing wrong with a manifest, located by line (0 when it
// concerns the whole file); its message names the field.
type Problem = problems.Problem

// Error lists every problem found in one manifest. Its message is one
// FILE:LINE: message line per problem. (A manifest has no warnings.)
type Error problems.Error

func (e *Error) Error() string { return (*problems.Error)(e).Error() }

// ErrNotFound is returned by Load and LoadDir when there is no manifest.
var ErrNotFound = errors.New("manifest not found")

// Load reads and parses the manifest at file.
func Load(file string) (*Manifest, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", file, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", file, err)
	}
	return Parse(file, data)
}

// ValidateDir checks DIR/manifest.yaml when it exists, for drover validate.
// It returns nil when there is no manifest, and an *Error (possibly wrapped)
// listing every problem otherwise.
func ValidateDir(dir string) error {
	_, err := Load(filepath.Join(dir, FileName))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

var (
	appNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// parser collects problems while walking the YAML node tree.
type parser struct {
	problems.List
	unknown int             // unknown keys seen so far
	meant   map[string]bool // "what.key" for each key a misspelt one was taken for
}

func (p *parser) addf(line int, format string, args ...any) { p.Addf(line, "", format, args...) }

// err returns the problems, in the order of the file (problems of one line
// in the order found).
func (p *parser) err() error { return &Error{Problems: p.Problems()} }

// Parse parses and validates a manifest. name is used in messages. Unknown
// keys, duplicate keys, wrong types and invalid values are all reported,
// each with its line, in one *Error.
func Parse(name string, data []byte) (*Manifest, error) {
	p := &parser{List: problems.List{File: name}}
	if len(data) > MaxSize {
		p.addf(0, "manifest is larger than %d bytes", MaxSize)
		return nil, p.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.addf(0, "manifest is empty")
		} else {
			p.addf(yamlErrLine(err), "invalid YAML: %s", yamlErrMsg(err))
		}
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.addf(extra.Line, "only one YAML document is allowed")
	} else if !errors.Is(err, io.EOF) {
		p.addf(yamlErrLine(err), "invalid YAML: %s", yamlErrMsg(err))
	}
	m := p.manifest(&doc)
	if p.Len() > 0 {
		return nil, p.err()
	}
	return m, nil
}

// yamlErrLine extracts the line from a yaml.v3 error ("yaml: line 3: ...").
func yamlErrLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		num, _, _ := strings.Cut(rest, ":")
		if n, err := strconv.Atoi(num); err == nil {
			return n
		}
	}
	return 0
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
	}
	return msg
}

// field is one key of a mapping with its value node.
type field struct {
	key   string
	line  int
	value *yaml.Node
}

// mapping returns the fields of a mapping node, reporting unknown and
// duplicate keys. known lists the accepted keys.
func (p *parser) mapping(n *yaml.Node, what string, known ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.addf(n.Line, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.addf(k.Line, "%s: keys must be strings", what)
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.addf(k.Line, "%s: duplicate key %q", what, k.Value)
			continue
		}
		ok := false
		for _, kn := range known {
			if k.Value == kn {
				ok = true
				break
			}
		}
		if !ok {
			p.unknown++
			if s := suggest.Closest(k.Value, known); s != "" {
				if p.meant == nil {
					p.meant = map[string]bool{}
				}
				p.meant[what+"."+s] = true
				p.addf(k.Line, "%s: unknown key %q; did you mean %q?", what, k.Value, s)
			} else {
				p.addf(k.Line, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
			}
			continue
		}
		out[k.Value] = field{key: k.Value, line: k.Line, value: v}
	}
	return out
}

// resolve follows aliases, bounded, so a hostile alias chain cannot loop.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an alias"
	}
}

// scalar returns the value of a scalar node, reporting anything else.
func (p *parser) scalar(f field) (string, bool) {
	n := resolve(f.value)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.addf(f.line, "%s must be a value, not %s", f.key, kindName(n))
		return "", false
	}
	return n.Value, true
}

// str returns a scalar as written. Plain scalars that YAML would read as
// numbers (a sha256 of digits, revision: 42) are taken as their text.
func (p *parser) str(f field) (string, bool) {
	return p.scalar(f)
}

func (p *parser) boolean(f field) (bool, bool) {
	v, ok := p.scalar(f)
	if !ok {
		return false, false
	}
	switch v {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.addf(f.line, "%s must be true or false, not %q", f.key, v)
	return false, false
}

func (p *parser) manifest(doc *yaml.Node) *Manifest {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			p.addf(0, "manifest is empty")
			return nil
		}
		root = doc.Content[0]
	}
	fields := p.mapping(root, "manifest", "version", "application", "revision", "bundle", "deployment")
	if fields == nil {
		return nil
	}
	m := &Manifest{}
	if f, ok := fields["version"]; !ok {
		p.addf(root.Line, "version is required (version: 1)")
	} else if v, ok := p.scalar(f); ok {
		if v != "1" {
			p.addf(f.line, "version %q is not supported (want 1)", v)
		} else {
			m.Version = 1
		}
	}
	if f, ok := fields["application"]; !ok {
		p.addf(root.Line, "application is required")
	} else if v, ok := p.str(f); ok {
		if !appNameRE.MatchString(v) {
			p.addf(f.line, "application %q: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", v)
		}
		m.Application = v
	}
	if f, ok := fields["revision"]; ok {
		if v, ok := p.str(f); ok {
			if len(v) > 200 || strings.ContainsAny(v, "\x00\n\r") {
				p.addf(f.line, "revision label must be one line of at most 200 characters")
			}
			m.Revision = v
		}
	}
	if f, ok := fields["bundle"]; !ok {
		m.Bundle.Path = "."
	} else {
		m.Bundle = p.bundle(f)
	}
	if f, ok := fields["deployment"]; ok {
		m.Deployment = p.deployment(f)
	} else {
		m.Deployment = Deployment{Strategy: OneAtATime, Rollback: RollbackOnFailure}
	}
	return m
}

func (p *parser) bundle(bf field) Bundle {
	var b Bundle
	fields := p.mapping(bf.value, "bundle", "path", "key", "sha256")
	if fields == nil {
		return b
	}
	fp, hasPath := fields["path"]
	fk, hasKey := fields["key"]
	fs, hasSum := fields["sha256"]
	if hasPath {
		if v, ok := p.str(fp); ok {
			if msg := checkRelPath(v, true); msg != "" {
				p.addf(fp.line, "bundle.path %q: %s", v, msg)
			}
			b.Path = path.Clean(v)
		}
	}
	if hasKey {
		if v, ok := p.str(fk); ok {
			if msg := checkRelPath(v, false); msg != "" {
				p.addf(fk.line, "bundle.key %q: %s", v, msg)
			}
			b.Key = v
		}
	}
	if hasSum {
		if v, ok := p.str(fs); ok {
			if !sha256RE.MatchString(v) {
				p.addf(fs.line, "bundle.sha256 must be 64 lowercase hex digits")
			}
			b.SHA256 = v
		}
	}
	switch {
	case hasPath && hasKey:
		p.addf(fk.line, "bundle: give either path (git, dir) or key (s3), not both")
	case hasKey && !hasSum:
		p.addf(fk.line, "bundle.sha256 is required with bundle.key")
	case hasSum && !hasKey:
		p.addf(fs.line, "bundle.sha256 only applies with bundle.key")
	case !hasPath && !hasKey:
		b.Path = "."
	}
	return b
}

// checkRelPath reports what is wrong with a path that must stay inside its
// root, or "" when it is fine. allowDot accepts "." (the root itself).
func checkRelPath(v string, allowDot bool) string {
	switch {
	case v == "":
		return "must not be empty"
	case len(v) > 1024:
		return "is too long"
	case strings.ContainsAny(v, "\x00\\"):
		return "must not contain NUL or backslashes"
	case strings.HasPrefix(v, "/"):
		return "must be relative"
	}
	c := path.Clean(v)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "must not leave the manifest's directory"
	}
	if c == "." && !allowDot {
		return "must name an object"
	}
	if !allowDot && strings.HasSuffix(v, "/") {
		return "must name an object, not a folder"
	}
	return ""
}

func (p *parser) deployment(df field) Deployment {
	d := Deployment{Strategy: OneAtATime, Rollback: RollbackOnFailure}
	fields := p.mapping(df.value, "deployment", "strategy", "batch", "canary", "bake",
		"minimum_healthy", "rollback", "ignore_application_stop_failures", "paused", "gates")
	if fields == nil {
		return d
	}
	if f, ok := fields["strategy"]; ok {
		if v, ok := p.str(f); ok {
			switch s := Strategy(v); s {
			case AllAtOnce, OneAtATime, Rolling, Canary:
				d.Strategy = s
			default:
				p.addf(f.line, "strategy %q: want all-at-once, one-at-a-time, rolling or canary", v)
			}
		}
	}
	if f, ok := fields["batch"]; ok {
		d.Batch = p.quantity(f, 1)
		if d.Strategy != Rolling && d.Strategy != Canary {
			p.addf(f.line, "batch applies only to the rolling and canary strategies, not %s", d.Strategy)
		}
	} else if d.Strategy == Rolling {
		p.addf(df.line, "deployment.batch is required with strategy rolling")
	}
	if f, ok := fields["canary"]; ok {
		d.Canary = p.quantity(f, 1)
		if d.Strategy != Canary {
			p.addf(f.line, "canary applies only to the canary strategy, not %s", d.Strategy)
		}
	} else if d.Strategy == Canary {
		p.addf(df.line, "deployment.canary is required with strategy canary")
	}
	if f, ok := fields["bake"]; ok {
		if v, ok := p.str(f); ok {
			dur, err := time.ParseDuration(v)
			switch {
			case err != nil:
				p.addf(f.line, "bake %q: want a duration like 90s, 2m or 1h", v)
			case dur < 0 || dur > 7*24*time.Hour:
				p.addf(f.line, "bake %q: want between 0s and 168h", v)
			default:
				d.Bake = dur
			}
		}
		if d.Strategy != Canary {
			p.addf(f.line, "bake applies only to the canary strategy, not %s", d.Strategy)
		}
	}
	if f, ok := fields["minimum_healthy"]; ok {
		d.MinimumHealthy = p.quantity(f, 0)
	}
	if f, ok := fields["rollback"]; ok {
		if v, ok := p.str(f); ok {
			switch r := Rollback(v); r {
			case RollbackOnFailure, RollbackNever:
				d.Rollback = r
			default:
				p.addf(f.line, "rollback %q: want on-failure or never", v)
			}
		}
	}
	if f, ok := fields["ignore_application_stop_failures"]; ok {
		d.IgnoreApplicationStopFailures, _ = p.boolean(f)
	}
	if f, ok := fields["paused"]; ok {
		d.Paused, _ = p.boolean(f)
	}
	if f, ok := fields["gates"]; ok {
		p.gates(f, &d)
	}
	return d
}

// quantity parses "25%" or a host count. Counts must be at least min;
// percentages lie in min..100.
func (p *parser) quantity(f field, min int) Quantity {
	v, ok := p.scalar(f)
	if !ok {
		return Quantity{}
	}
	q, err := ParseQuantity(v)
	if err != nil {
		p.addf(f.line, "%s: %v", f.key, err)
		return Quantity{}
	}
	if q.Value < min {
		p.addf(f.line, "%s %q: must be at least %d", f.key, v, min)
		return Quantity{}
	}
	return q
}

// ParseQuantity parses a host count ("3") or a percentage ("25%").
func ParseQuantity(s string) (Quantity, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	num := strings.TrimSpace(strings.TrimSuffix(t, "%"))
	if num == "" || len(num) > 6 || strings.TrimLeft(num, "0123456789") != "" {
		return Quantity{}, fmt.Errorf("%q: want a host count like 2 or a percentage like 25%%", s)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return Quantity{}, fmt.Errorf("%q: want a host count like 2 or a percentage like 25%%", s)
	}
	if pct && n > 100 {
		return Quantity{}, fmt.Errorf("%q: a percentage must be at most 100%%", s)
	}
	return Quantity{Set: true, Percent: pct, Value: n}, nil
}

// String formats q as written in a manifest ("3", "25%"), or "" when unset.
func (q Quantity) String() string {
	switch {
	case !q.Set:
		return ""
	case q.Percent:
		return strconv.Itoa(q.Value) + "%"
	default:
		return strconv.Itoa(q.Value)
	}
}
