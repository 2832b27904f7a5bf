package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

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
	// which the first host by name forms it alone (gossip/PROTOCOL.md §4.4).
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

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 30s or 2m", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 2m", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// ConfigError lists every problem of a configuration file, one
// FILE:LINE: message each.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// LoadConfig reads, decodes strictly, defaults and validates a file.
func LoadConfig(path string) (*Config, error) {
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
	return ParseConfig(path, data)
}

var yamlLineRE = regexp.MustCompile(`^\s*(?:yaml: )?line (\d+): (.*)$`)

// ParseConfig decodes and validates configuration text; name is used in
// messages.
func ParseConfig(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ConfigError{Problems: yamlProblems(name, err)}
	}
	cfg := &Config{}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, &ConfigError{Problems: yamlProblems(name, err)}
		}
	}
	cfg.Path = name
	v := &validator{file: name, root: &root}
	cfg.applyDefaults()
	v.check(cfg)
	if len(v.problems) > 0 {
		return nil, &ConfigError{Problems: v.problems}
	}
	cfg.Warnings = v.warnings
	return cfg, nil
}

// yamlProblems turns yaml.v3's errors ("line 3: field foo not found in
// type daemon.NodeConfig") into FILE:LINE: message lines.
func yamlProblems(file string, err error) []string {
	var out []string
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", file, sm[1], friendlyYAML(sm[2])))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", file, friendlyYAML(m)))
		}
	}
	return out
}

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

func friendlyYAML(m string) string {
	if sm := unknownFieldRE.FindStringSubmatch(m); sm != nil {
		return fmt.Sprintf("unknown key %q", sm[1])
	}
	return m
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
	file     string
	root     *yaml.Node
	problems []string
	warnings []string
}

// line finds the line of a key path such as "applications", 2, "source".
// It returns the line of the deepest part that exists.
func (v *validator) line(path ...any) int {
	n := v.root
	if n == nil || len(n.Content) == 0 {
		return 1
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
			return best
		}
		n = next
	}
	return best
}

func (v *validator) fail(field string, line int, format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf("%s:%d: %s: %s", v.file, line, field, fmt.Sprintf(format, args...)))
}

func (v *validator) warn(field string, line int, format string, args ...any) {
	v.warnings = append(v.warnings, fmt.Sprintf("%s:%d: %s: %s", v.file, line, field, fmt.Sprintf(format, args...)))
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
	ln := func(p ...any) int { return v.line(append([]any{"applications", i}, p...)...) }
	if !nameRE.MatchString(a.Name) {
		v.fail(f("name"), ln("name"), "%q: want letters, digits, '.', '-' and '_', starting with a letter or digit", a.Name)
	} else if prev, dup := names[a.Name]; dup {
		v.fail(f("name"), ln("name"), "%q is already the name of applications[%d]", a.Name, prev)
	} else {
		names[a.Name] = i
	}
	if !nameRE.MatchString(a.Group) {
		v.fail(f("group"), ln("group"), "%q: want letters, digits, '.', '-' and '_'", a.Group)
	}
	a.Active = groups[a.Group]
	if !a.Active && a.Group != "" {
		v.warn(f("group"), ln("group"), "%q is not one of node.groups, so this host does not deploy %s", a.Group, a.Name)
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
	if set != 1 {
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
