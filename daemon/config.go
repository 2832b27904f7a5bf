package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/problems"
	"github.com/drover-dev/drover/internal/suggest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"gopkg.in/yaml.v3"
)

// DefaultConfigPath is where packages install the configuration.
const DefaultConfigPath = "/etc/drover/drover.yaml"

// DefaultSocket is the API socket when the configuration names none.
const DefaultSocket = "/run/drover/drover.sock"

// maxBootstrapExpect bounds cluster.bootstrap_expect: a roster is a list of
// at most this many hosts on the wire (rollout.MaxList).
const maxBootstrapExpect = rollout.MaxList

// maxConfigSize bounds the configuration file read.
const maxConfigSize = 1 << 20

// Config is a validated /etc/drover/drover.yaml (DESIGN.md §5). Build it
// with LoadConfig or ParseConfig; a Config value is always valid.
type Config struct {
	Path         string        `yaml:"-"`
	Node         NodeConfig    `yaml:"node"`
	Cluster      ClusterConfig `yaml:"cluster"`
	API          APIConfig     `yaml:"api"`
	Systemd      string        `yaml:"systemd"`
	Applications []AppConfig   `yaml:"applications"`
	// Warnings are things that are allowed but probably wrong, each as
	// FILE:LINE: message; the agent logs them at start and reload.
	Warnings []string `yaml:"-"`
}

// NodeConfig describes this host.
type NodeConfig struct {
	Name     string            `yaml:"name"`
	Groups   []string          `yaml:"groups"`
	Labels   map[string]string `yaml:"labels"`
	StateDir string            `yaml:"state_dir"`
	Root     string            `yaml:"root"`
}

// ClusterConfig is how this host finds and talks to its peers.
type ClusterConfig struct {
	Bind           string   `yaml:"bind"`
	Advertise      string   `yaml:"advertise"`
	Join           []string `yaml:"join"`
	EncryptKeyFile string   `yaml:"encrypt_key_file"`
	// Profile sets memberlist's timing, and with it every timeout of the
	// rollout protocol: lan (default), wan (slow or lossy links), or local
	// (one machine: the demo, tests).
	Profile string `yaml:"profile"`
	// BootstrapExpect is the number of hosts that form each of this host's
	// groups (Consul's and Nomad's bootstrap_expect). With it a group's
	// first roster of voters is chosen by a majority of that many hosts, so
	// a partitioned new group cannot form two; 0 keeps the older rule, under
	// which the first host by name forms it alone (reconcile/rollout/PROTOCOL.md §4.4).
	// The same value on every host of the group.
	BootstrapExpect int `yaml:"bootstrap_expect"`
}

// APIConfig places the local API and the metrics listener.
type APIConfig struct {
	Socket        string `yaml:"socket"`
	MetricsListen string `yaml:"metrics_listen"`
}

// AppConfig is one application this fleet deploys.
type AppConfig struct {
	Name         string       `yaml:"name"`
	Group        string       `yaml:"group"`
	PollInterval Duration     `yaml:"poll_interval"`
	Source       SourceConfig `yaml:"source"`
	// Active is false when Group is not one of node.groups: the
	// application is configured fleet-wide but not deployed on this host.
	Active bool `yaml:"-"`
}

// SourceConfig holds exactly one source.
type SourceConfig struct {
	Git *GitSourceConfig `yaml:"git"`
	S3  *S3SourceConfig  `yaml:"s3"`
	Dir string           `yaml:"dir"`
}

// Kind names the configured source: "git", "s3" or "dir".
func (s SourceConfig) Kind() string {
	switch {
	case s.Git != nil:
		return "git"
	case s.S3 != nil:
		return "s3"
	default:
		return "dir"
	}
}

// GitSourceConfig is a branch of a git repository.
type GitSourceConfig struct {
	URL    string        `yaml:"url"`
	Branch string        `yaml:"branch"`
	Path   string        `yaml:"path"`
	Auth   GitAuthConfig `yaml:"auth"`
}

// GitAuthConfig names credential files; their content never enters logs.
type GitAuthConfig struct {
	TokenFile      string `yaml:"token_file"`
	SSHKeyFile     string `yaml:"ssh_key_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
}

// S3SourceConfig is a prefix of an S3 bucket.
type S3SourceConfig struct {
	Bucket   string `yaml:"bucket"`
	Prefix   string `yaml:"prefix"`
	Region   string `yaml:"region"`
	Endpoint string `yaml:"endpoint"`
}

// Duration is a time.Duration written as "30s", "2m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string. Its errors are *yaml.TypeError,
// so that the decoder goes on and reports the other problems too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 30s or 2m, found %s", n.Line, describeNode(n))}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration such as 30s or 2m", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// ConfigError lists every problem of a configuration file, one
// FILE:LINE: field: message each, in the order of their lines.
type ConfigError struct {
	Problems []string
	// Warnings are the warnings of the parts that could be checked.
	Warnings []string
}

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// LoadConfig reads, decodes strictly, defaults and validates a file.
func LoadConfig(path string) (*Config, error) {
	data, err := ReadConfigFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ReadConfigFile reads a configuration file, bounded in size.
func ReadConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config %s is larger than %d bytes", path, maxConfigSize)
	}
	return data, nil
}

var yamlLineRE = regexp.MustCompile(`^\s*(?:yaml: )?line (\d+): (.*)$`)

// ParseConfig decodes and validates configuration text; name is used in
// messages. It reports every problem it finds, not only the first: the
// shape of the YAML tree is checked against Config first (unknown keys,
// wrong types, bad durations), the parts that fit are decoded, and the
// result is validated, leaving out fields that already have a problem.
func ParseConfig(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ConfigError{Problems: problems.Strings(yamlProblems(name, err))}
	}
	v := &validator{list: problems.List{File: name}, root: &root, bad: map[string]bool{}}
	cfg := &Config{}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		budget := maxShapeNodes
		if v.shape(doc, reflect.TypeFor[Config](), "", doc.Line, 0, &budget) {
			// shape replaced what does not fit by zero values and
			// dropped unknown and repeated keys, so what is left decodes.
			if err := doc.Decode(cfg); err != nil {
				for _, p := range yamlProblems(name, err) {
					v.list.Add(p)
				}
			}
		}
	}
	cfg.Path = name
	cfg.applyDefaults()
	v.check(cfg)
	if v.list.Len() > 0 {
		return nil, &ConfigError{Problems: problems.Strings(v.list.Problems()), Warnings: problems.Strings(v.list.Warnings())}
	}
	cfg.Warnings = problems.Strings(v.list.Warnings())
	return cfg, nil
}

// yamlProblems turns yaml.v3's errors ("yaml: line 3: did not find
// expected key") into problems with their lines.
func yamlProblems(file string, err error) []problems.Problem {
	var out []problems.Problem
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		p := problems.Problem{File: file, Msg: "not valid YAML: " + m}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = "not valid YAML: " + sm[2]
		}
		out = append(out, p)
	}
	return out
}

// maxShapeNodes bounds the nodes shape visits, following aliases, so that
// a file of nested aliases cannot make it run for ever; maxShapeDepth
// bounds the nesting (an anchor can hold an alias of itself).
const (
	maxShapeNodes = 100000
	maxShapeDepth = 32
)

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// shape checks node n against the Go type t that it decodes into, at the
// field path path (line is the line of its key), the way the strict
// decoder would, but records each problem with its field path and goes on.
// It drops unknown and repeated keys from mappings; it returns false when
// n itself does not fit t, and the caller replaces it by a null.
func (v *validator) shape(n *yaml.Node, t reflect.Type, path string, line, depth int, budget *int) bool {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxShapeDepth; i++ {
		n = n.Alias
	}
	*budget--
	if *budget < 0 || depth > maxShapeDepth || n.Kind == yaml.AliasNode {
		if *budget == -1 || depth == maxShapeDepth+1 {
			v.shapeFail(path, line, "too deeply nested, or too many aliases")
		}
		return false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // decodes as the zero value, which defaults fill in
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			msg := err.Error()
			var te *yaml.TypeError
			if errors.As(err, &te) && len(te.Errors) > 0 {
				msg = te.Errors[0]
			}
			if sm := yamlLineRE.FindStringSubmatch(msg); sm != nil {
				msg = sm[2]
			}
			v.shapeFail(path, line, "%s", msg)
			return false
		}
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			v.shapeFail(path, line, "want a mapping (keys: %s), found %s", strings.Join(yamlKeys(t), ", "), describeNode(n))
			return false
		}
		known := yamlKeys(t)
		v.outer = append(v.outer, outerMapping{path: path, t: t})
		defer func() { v.outer = v.outer[:len(v.outer)-1] }()
		v.mapping(n, t, path, depth, budget, func(key *yaml.Node, val *yaml.Node) (keep bool) {
			f, ok := yamlField(t, key.Value)
			if !ok {
				if s := suggest.Closest(key.Value, known); s != "" {
					v.bad[joinPath(path, s)] = true // so that it is not also reported missing
					v.list.Addf(key.Line, path, "unknown key %q; did you mean %q?", key.Value, s)
				} else {
					v.list.Addf(key.Line, path, "unknown key %q (known: %s)%s", key.Value, strings.Join(known, ", "), v.misplaced(key.Value))
				}
				return false
			}
			return v.shapeChild(key, val, f.Type, joinPath(path, key.Value), depth, budget)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			v.shapeFail(path, line, "want a mapping, found %s", describeNode(n))
			return false
		}
		v.mapping(n, t, path, depth, budget, func(key *yaml.Node, val *yaml.Node) bool {
			return v.shapeChild(key, val, t.Elem(), joinPath(path, key.Value), depth, budget)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			v.shapeFail(path, line, "want a list, found %s", describeNode(n))
			return false
		}
		for i, e := range n.Content {
			if !v.shape(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), e.Line, depth+1, budget) {
				n.Content[i] = zeroNode(t.Elem(), e)
			}
		}
	default:
		want := map[reflect.Kind]string{reflect.String: "a string", reflect.Int: "a whole number", reflect.Bool: "true or false"}[t.Kind()]
		if want == "" {
			want = "a " + t.Kind().String()
		}
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			v.shapeFail(path, line, "want %s, found %s", want, describeNode(n))
			return false
		}
	}
	return true
}

// misplaced says where key belongs when it is a key of a mapping that
// holds the current one, the nearest first: a line indented too far.
func (v *validator) misplaced(key string) string {
	for i := len(v.outer) - 2; i >= 0; i-- {
		o := v.outer[i]
		if _, ok := yamlField(o.t, key); !ok {
			continue
		}
		if o.path == "" {
			return fmt.Sprintf("; %s is a top-level key: check the indentation", key)
		}
		return fmt.Sprintf("; %s is a key of %s: check the indentation", key, o.path)
	}
	return ""
}

// shapeChild checks the value of one key; a value that does not fit is
// replaced by a null, so the rest of the file still decodes.
func (v *validator) shapeChild(key, val *yaml.Node, t reflect.Type, path string, depth int, budget *int) bool {
	if !v.shape(val, t, path, key.Line, depth+1, budget) {
		*val = *nullNode(val)
	}
	return true
}

// mapping calls each for every key of n, of type t, once, reporting keys
// that are not names and repeated keys, and keeps the pairs each returns
// true for. The mappings merged in with << are checked as t too.
func (v *validator) mapping(n *yaml.Node, t reflect.Type, path string, depth int, budget *int, each func(key, val *yaml.Node) bool) {
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		switch {
		case key.Kind != yaml.ScalarNode:
			v.list.Addf(key.Line, path, "a key must be a name, found %s", describeNode(key))
		case key.Tag == "!!merge":
			m := val
			for j := 0; m.Kind == yaml.AliasNode && m.Alias != nil && j < maxShapeDepth; j++ {
				m = m.Alias
			}
			ok := true
			if m.Kind == yaml.SequenceNode {
				for _, e := range m.Content {
					ok = v.shape(e, t, path, key.Line, depth+1, budget) && ok
				}
			} else {
				ok = v.shape(m, t, path, key.Line, depth+1, budget)
			}
			if ok {
				kept = append(kept, key, val)
			}
		default:
			if first, dup := seen[key.Value]; dup {
				v.list.Addf(key.Line, joinPath(path, key.Value), "repeated key (first at line %d)", first)
				continue
			}
			seen[key.Value] = key.Line
			if each(key, val) {
				kept = append(kept, key, val)
			}
		}
	}
	n.Content = kept
}

// shapeFail records a problem found by shape and marks its field, so that
// validation does not report it again.
func (v *validator) shapeFail(field string, line int, format string, args ...any) {
	v.bad[field] = true
	v.list.Addf(line, field, format, args...)
}

// zeroNode is a node of the zero value of t, at the place of n: the
// decoder leaves nulls out of lists, which would shift the indexes of the
// elements after them.
func zeroNode(t reflect.Type, n *yaml.Node) *yaml.Node {
	z := &yaml.Node{}
	if err := z.Encode(reflect.Zero(t).Interface()); err != nil {
		return nullNode(n)
	}
	z.Line, z.Column = n.Line, n.Column
	return z
}

func nullNode(n *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describeNode says what a node is, for "want X, found Y".
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if len(n.Value) > 40 {
		return fmt.Sprintf("%q...", n.Value[:40])
	}
	return fmt.Sprintf("%q", n.Value)
}

// yamlKeys lists the keys of a struct type in field order.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if k := yamlKey(f); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func yamlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" || !f.IsExported() {
		return ""
	}
	if k == "" {
		k = strings.ToLower(f.Name)
	}
	return k
}

func (c *Config) applyDefaults() {
	if c.Node.StateDir == "" {
		c.Node.StateDir = "/var/lib/drover"
	}
	if c.Node.Root == "" {
		c.Node.Root = "/"
	}
	if c.Cluster.Bind == "" {
		c.Cluster.Bind = "0.0.0.0:7946"
	}
	if c.Cluster.Profile == "" {
		c.Cluster.Profile = "lan"
	}
	if c.API.Socket == "" {
		c.API.Socket = DefaultSocket
	}
	if c.Systemd == "" {
		c.Systemd = "auto"
	}
	for i := range c.Applications {
		a := &c.Applications[i]
		if a.PollInterval == 0 {
			a.PollInterval = Duration(30 * time.Second)
		}
		if a.Source.Git != nil && a.Source.Git.Branch == "" {
			a.Source.Git.Branch = "release"
		}
	}
}

// validator collects problems with the line of the field they concern.
type validator struct {
	list problems.List // the problems and warnings found
	root *yaml.Node
	// bad holds the field paths that already have a problem from shape
	// (or that a misspelt key was taken for); validation leaves them, and
	// the fields under and above them, alone.
	bad map[string]bool
	// outer are the mappings shape is in, outermost first.
	outer []outerMapping
}

// outerMapping is a mapping of Go type t at field path path.
type outerMapping struct {
	path string
	t    reflect.Type
}

// line finds the line of a key path such as "applications", 2, "source".
// It returns the line of the deepest part that exists.
func (v *validator) line(path ...any) int {
	l, _ := v.find(path...)
	return l
}

// has reports whether the file has the key path.
func (v *validator) has(path ...any) bool {
	_, n := v.find(path...)
	return n != nil
}

// find returns the node at a key path, or nil, and the line of the
// deepest part of the path that exists.
func (v *validator) find(path ...any) (line int, node *yaml.Node) {
	n := v.root
	if n == nil || len(n.Content) == 0 {
		return 1, nil
	}
	n = n.Content[0]
	best := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						best = n.Content[i].Line
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				best = next.Line
			}
		}
		if next == nil {
			return best, nil
		}
		n = next
	}
	return best, n
}

func (v *validator) fail(field string, line int, format string, args ...any) {
	if v.covered(field) {
		return
	}
	v.list.Addf(line, field, format, args...)
}

func (v *validator) warn(field string, line int, format string, args ...any) {
	if v.covered(field) {
		return
	}
	v.list.Warnf(line, field, format, args...)
}

// covered reports whether field, a field under it or a field above it
// already has a problem from shape: its value there is a null, not what
// the file says.
func (v *validator) covered(field string) bool {
	for b := range v.bad {
		if b == field || under(field, b) || under(b, field) {
			return true
		}
	}
	return false
}

// under reports whether field path p is inside field path parent.
func under(p, parent string) bool {
	return parent == "" || (strings.HasPrefix(p, parent) && len(p) > len(parent) && (p[len(parent)] == '.' || p[len(parent)] == '['))
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (v *validator) check(c *Config) {
	if c.Node.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			v.fail("node.name", v.line("node"), "empty, and the host name is unknown: %v", err)
		}
		c.Node.Name = h
	}
	if len(c.Node.Name) > 128 {
		v.fail("node.name", v.line("node", "name"), "longer than 128 characters")
	}
	groups := map[string]bool{}
	for i, g := range c.Node.Groups {
		if !nameRE.MatchString(g) {
			v.fail(fmt.Sprintf("node.groups[%d]", i), v.line("node", "groups", i), "%q: use letters, digits, '.', '-' and '_'", g)
		}
		groups[g] = true
	}
	if !filepath.IsAbs(c.Node.StateDir) {
		v.fail("node.state_dir", v.line("node", "state_dir"), "%q is not an absolute path", c.Node.StateDir)
	}
	if !filepath.IsAbs(c.Node.Root) {
		v.fail("node.root", v.line("node", "root"), "%q is not an absolute path", c.Node.Root)
	}
	if _, _, err := net.SplitHostPort(c.Cluster.Bind); err != nil {
		v.fail("cluster.bind", v.line("cluster", "bind"), "%q: want host:port (%v)", c.Cluster.Bind, err)
	} else if _, err := portOf(c.Cluster.Bind); err != nil {
		v.fail("cluster.bind", v.line("cluster", "bind"), "%q: %v", c.Cluster.Bind, err)
	}
	if c.Cluster.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Cluster.Advertise); err != nil {
			v.fail("cluster.advertise", v.line("cluster", "advertise"), "%q: want host:port", c.Cluster.Advertise)
		}
	}
	for i, j := range c.Cluster.Join {
		if strings.TrimSpace(j) == "" {
			v.fail(fmt.Sprintf("cluster.join[%d]", i), v.line("cluster", "join", i), "empty")
		}
	}
	if c.Cluster.EncryptKeyFile == "" {
		v.warn("cluster.encrypt_key_file", v.line("cluster"), "empty: gossip is NOT encrypted and any host that can reach %s can join; create a key with `drover keygen`", c.Cluster.Bind)
	} else if !filepath.IsAbs(c.Cluster.EncryptKeyFile) {
		v.fail("cluster.encrypt_key_file", v.line("cluster", "encrypt_key_file"), "%q is not an absolute path", c.Cluster.EncryptKeyFile)
	}
	if n := c.Cluster.BootstrapExpect; n < 0 || n > maxBootstrapExpect {
		v.fail("cluster.bootstrap_expect", v.line("cluster", "bootstrap_expect"), "%d: want the number of hosts that form each group (1 to %d), or 0 to let the first host by name form the roster alone", n, maxBootstrapExpect)
	}
	switch c.Cluster.Profile {
	case "lan", "wan", "local":
	default:
		v.fail("cluster.profile", v.line("cluster", "profile"), "%q: want lan, wan or local", c.Cluster.Profile)
	}
	if !filepath.IsAbs(c.API.Socket) {
		v.fail("api.socket", v.line("api", "socket"), "%q is not an absolute path", c.API.Socket)
	}
	if c.API.MetricsListen != "" {
		if _, err := portOf(c.API.MetricsListen); err != nil {
			v.fail("api.metrics_listen", v.line("api", "metrics_listen"), "%q: want [host]:port, or \"\" to turn metrics off", c.API.MetricsListen)
		}
	}
	switch c.Systemd {
	case "auto", "system", "user", "off":
	default:
		v.fail("systemd", v.line("systemd"), "%q: want auto, system, user or off", c.Systemd)
	}
	names := map[string]int{}
	for i := range c.Applications {
		v.checkApp(i, &c.Applications[i], names, groups)
	}
}

func portOf(hostport string) (int, error) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return n, nil
}

func (v *validator) checkApp(i int, a *AppConfig, names map[string]int, groups map[string]bool) {
	f := func(s string) string { return fmt.Sprintf("applications[%d].%s", i, s) }
	app := a.Name
	if app == "" {
		app = "it"
	}
	ln := func(p ...any) int { return v.line(append([]any{"applications", i}, p...)...) }
	if a.Name == "" {
		v.fail(f("name"), ln("name"), "missing")
	} else if !nameRE.MatchString(a.Name) {
		v.fail(f("name"), ln("name"), "%q: want letters, digits, '.', '-' and '_', starting with a letter or digit", a.Name)
	} else if prev, dup := names[a.Name]; dup {
		v.fail(f("name"), ln("name"), "%q is already the name of applications[%d]", a.Name, prev)
	} else {
		names[a.Name] = i
	}
	if a.Group == "" {
		v.fail(f("group"), ln("group"), "missing: the node group that deploys %s", app)
	} else if !nameRE.MatchString(a.Group) {
		v.fail(f("group"), ln("group"), "%q: want letters, digits, '.', '-' and '_'", a.Group)
	}
	a.Active = groups[a.Group]
	if !a.Active && a.Group != "" {
		v.warn(f("group"), ln("group"), "%q is not one of node.groups, so this host does not deploy %s", a.Group, app)
	}
	if time.Duration(a.PollInterval) < time.Second {
		v.fail(f("poll_interval"), ln("poll_interval"), "%s is shorter than 1s", time.Duration(a.PollInterval))
	}
	set := 0
	if a.Source.Git != nil {
		set++
	}
	if a.Source.S3 != nil {
		set++
	}
	if a.Source.Dir != "" {
		set++
	}
	switch {
	case set == 0 && !v.has("applications", i, "source"):
		v.fail(f("source"), ln("source"), "missing: want one of git, s3 or dir")
		return
	case set != 1:
		v.fail(f("source"), ln("source"), "want exactly one of git, s3 or dir, found %d", set)
		return
	}
	switch {
	case a.Source.Git != nil:
		g := a.Source.Git
		u, err := url.Parse(g.URL)
		switch {
		case g.URL == "":
			v.fail(f("source.git.url"), ln("source", "git"), "missing")
		case err != nil:
			v.fail(f("source.git.url"), ln("source", "git", "url"), "not a URL: %v", redactURLError(err))
		case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh" && u.Scheme != "git" && u.Scheme != "file":
			v.fail(f("source.git.url"), ln("source", "git", "url"), "scheme %q: want https, http, ssh, git or file", u.Scheme)
		case u.User != nil:
			if _, hasPass := u.User.Password(); hasPass {
				v.fail(f("source.git.url"), ln("source", "git", "url"), "holds a password; put the token in auth.token_file instead")
			}
		}
		if strings.HasPrefix(g.Path, "/") || strings.Contains("/"+g.Path+"/", "/../") {
			v.fail(f("source.git.path"), ln("source", "git", "path"), "%q must be relative to the repository root, without ..", g.Path)
		}
		for _, fp := range []struct{ name, val string }{
			{"token_file", g.Auth.TokenFile}, {"ssh_key_file", g.Auth.SSHKeyFile}, {"known_hosts_file", g.Auth.KnownHostsFile},
		} {
			if fp.val != "" && !filepath.IsAbs(fp.val) {
				v.fail(f("source.git.auth."+fp.name), ln("source", "git", "auth", fp.name), "%q is not an absolute path", fp.val)
			}
		}
		if g.Auth.TokenFile != "" && g.Auth.SSHKeyFile != "" {
			v.fail(f("source.git.auth"), ln("source", "git", "auth"), "token_file and ssh_key_file are exclusive")
		}
	case a.Source.S3 != nil:
		s := a.Source.S3
		if s.Bucket == "" {
			v.fail(f("source.s3.bucket"), ln("source", "s3"), "missing")
		}
		if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
			s.Prefix += "/"
		}
		if s.Endpoint != "" {
			if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.fail(f("source.s3.endpoint"), ln("source", "s3", "endpoint"), "%q: want an http:// or https:// URL", s.Endpoint)
			}
		}
	default:
		if !filepath.IsAbs(a.Source.Dir) {
			v.fail(f("source.dir"), ln("source", "dir"), "%q is not an absolute path", a.Source.Dir)
		}
	}
}

// redactURLError keeps url.Parse errors from echoing a URL that may hold
// credentials.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}

// RawSocket returns api.socket from configuration text that does not load,
// when the YAML can be read that far and the value is an absolute path;
// else "". The command line uses it to reach the agent whatever else is
// wrong with the file.
func RawSocket(data []byte) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return ""
	}
	_, n := (&validator{root: &root}).find("api", "socket")
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!str" || !filepath.IsAbs(n.Value) {
		return ""
	}
	return filepath.Clean(n.Value)
}

// RawAppNames reads the application names of a config file's YAML without
// validating it, for shell completion (a config being edited still
// completes).
func RawAppNames(data []byte) []string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	_, apps := (&validator{root: &root}).find("applications")
	if apps == nil || apps.Kind != yaml.SequenceNode {
		return nil
	}
	var names []string
	for _, a := range apps.Content {
		if a.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(a.Content); i += 2 {
			if a.Content[i].Value == "name" && a.Content[i+1].Kind == yaml.ScalarNode && a.Content[i+1].Value != "" {
				names = append(names, a.Content[i+1].Value)
			}
		}
	}
	return names
}
