package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodConfig = `node:
  name: web-1
  groups: [web-prod]
  labels: {az: a}
cluster:
  join: [10.0.0.2:7946, seeds.internal]
  encrypt_key_file: /etc/drover/gossip.key
applications:
  - name: hello-web
    group: web-prod
    poll_interval: 10s
    source:
      git: {url: "https://git.example/acme/deploy.git", path: hello-web}
  - name: batch
    group: batch-prod
    source:
      s3: {bucket: acme-releases, prefix: batch}
  - name: local
    group: web-prod
    source:
      dir: /srv/releases/local
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("drover.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.StateDir != "/var/lib/drover" || c.Node.Root != "/" || c.Cluster.Bind != "0.0.0.0:7946" ||
		c.API.Socket != "/run/drover/drover.sock" || c.Systemd != "auto" || c.Cluster.Profile != "lan" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := time.Duration(c.Applications[0].PollInterval); got != 10*time.Second {
		t.Errorf("poll_interval = %v", got)
	}
	if got := time.Duration(c.Applications[1].PollInterval); got != 30*time.Second {
		t.Errorf("default poll_interval = %v", got)
	}
	if c.Applications[0].Source.Git.Branch != "release" {
		t.Errorf("default branch = %q", c.Applications[0].Source.Git.Branch)
	}
	if c.Applications[1].Source.S3.Prefix != "batch/" {
		t.Errorf("s3 prefix = %q, want a trailing slash added", c.Applications[1].Source.S3.Prefix)
	}
	if !c.Applications[0].Active || c.Applications[1].Active {
		t.Errorf("active: %v %v, want true false (batch-prod is not in node.groups)", c.Applications[0].Active, c.Applications[1].Active)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "drover.yaml:15: applications[1].group") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	if kinds := c.Applications[0].Source.Kind() + c.Applications[1].Source.Kind() + c.Applications[2].Source.Kind(); kinds != "gits3dir" {
		t.Errorf("source kinds = %s", kinds)
	}
}

func TestParseConfigEmptyWarnsAboutEncryption(t *testing.T) {
	c, err := ParseConfig("drover.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "NOT encrypted") {
		t.Errorf("warnings = %q", c.Warnings)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must appear in the error, in one line each
	}{
		{"unknown top key", "nodes: {}\n", []string{`drover.yaml:1: unknown key "nodes"; did you mean "node"?`}},
		{"unknown nested key", "node:\n  name: a\n  group: [x]\n", []string{`drover.yaml:3: node: unknown key "group"; did you mean "groups"?`}},
		{"bad duration", "applications:\n  - name: a\n    group: g\n    poll_interval: soon\n    source: {dir: /x}\n", []string{`drover.yaml:4: applications[0].poll_interval: "soon" is not a duration such as 30s or 2m`}},
		{"short poll", "applications:\n  - name: a\n    group: g\n    poll_interval: 10ms\n    source: {dir: /x}\n", []string{`drover.yaml:4: applications[0].poll_interval: 10ms is shorter than 1s`}},
		{"two sources", "applications:\n  - name: a\n    group: g\n    source:\n      dir: /x\n      s3: {bucket: b}\n", []string{`drover.yaml:4: applications[0].source: want exactly one of git, s3 or dir, found 2`}},
		{"no source", "applications:\n  - name: a\n    group: g\n", []string{`drover.yaml:2: applications[0].source: missing: want one of git, s3 or dir`}},
		{"dup app", "applications:\n  - {name: a, group: g, source: {dir: /x}}\n  - {name: a, group: g, source: {dir: /y}}\n", []string{`drover.yaml:3: applications[1].name: "a" is already the name of applications[0]`}},
		{"bad systemd", "systemd: maybe\n", []string{`drover.yaml:1: systemd: "maybe"`}},
		{"bad profile", "cluster:\n  profile: fast\n", []string{`drover.yaml:2: cluster.profile: "fast"`}},
		{"negative bootstrap_expect", "cluster:\n  profile: lan\n  bootstrap_expect: -3\n", []string{`drover.yaml:3: cluster.bootstrap_expect: -3: want the number of hosts that form each group (1 to 4096)`}},
		{"huge bootstrap_expect", "cluster:\n  bootstrap_expect: 100000\n", []string{`drover.yaml:2: cluster.bootstrap_expect: 100000`}},
		{"bootstrap_expect not a number", "cluster:\n  bootstrap_expect: five\n", []string{`drover.yaml:2: cluster.bootstrap_expect: want a whole number, found "five"`}},
		{"relative state dir", "node:\n  state_dir: var/lib\n", []string{`drover.yaml:2: node.state_dir: "var/lib" is not an absolute path`}},
		{"bad bind", "cluster:\n  bind: 7946\n", []string{`drover.yaml:2: cluster.bind`}},
		{"git scheme", "applications:\n  - name: a\n    group: g\n    source:\n      git: {url: \"ftp://x/y\"}\n", []string{`drover.yaml:5: applications[0].source.git.url: scheme "ftp"`}},
		{"git password", "applications:\n  - name: a\n    group: g\n    source:\n      git:\n        url: https://bob:hunter2@git.example/r.git\n", []string{`drover.yaml:6: applications[0].source.git.url: holds a password`}},
		{"git path escape", "applications:\n  - name: a\n    group: g\n    source:\n      git: {url: \"https://x/y\", path: ../z}\n", []string{`applications[0].source.git.path`}},
		{"s3 bucket", "applications:\n  - name: a\n    group: g\n    source:\n      s3: {prefix: p}\n", []string{`drover.yaml:5: applications[0].source.s3.bucket: missing`}},
		{"bad group name", "node:\n  groups: [\"web prod\"]\n", []string{`drover.yaml:2: node.groups[0]`}},
		{"syntax", "node: [\n", []string{`drover.yaml:1: not valid YAML: did not find expected node content`}},
		{"several problems", "systemd: x\nnode:\n  root: rel\n", []string{`drover.yaml:1: systemd`, `drover.yaml:3: node.root`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("drover.yaml", []byte(tc.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password:\n%s", err)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("node: {name: x}\n"))
	f.Add([]byte("applications:\n  - name: a\n    source: {git: {url: 'ssh://git@x/y'}}\n"))
	f.Add([]byte("api: {socket: /run/x.sock}\nnode: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if s := RawSocket(data); s != "" && !strings.HasPrefix(s, "/") {
			t.Fatalf("RawSocket = %q, not an absolute path", s)
		}
		c, err := ParseConfig("f.yaml", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a non-empty *ConfigError", err)
			}
			return
		}
		for _, a := range c.Applications {
			if time.Duration(a.PollInterval) < time.Second {
				t.Fatalf("accepted poll_interval %v", time.Duration(a.PollInterval))
			}
		}
	})
}

func TestParseConfigBootstrapExpect(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{"", 0},
		{"cluster:\n  bootstrap_expect: 0\n", 0},
		{"cluster:\n  bootstrap_expect: 5\n", 5},
	} {
		c, err := ParseConfig("drover.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.Cluster.BootstrapExpect != tc.want {
			t.Errorf("%q: bootstrap_expect = %d, want %d", tc.yaml, c.Cluster.BootstrapExpect, tc.want)
		}
	}
}

// TestParseConfigReportsEverything: a broken file gets all its problems at
// once, each as FILE:LINE: field: message, in line order; a misspelt key
// says what was meant, and the field it was taken for is not also missing.
func TestParseConfigReportsEverything(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // the whole error, line by line
	}{
		{"unknown keys at every depth", `nodes: {}
node:
  name: web-1
  group: [web]
cluster:
  bootsrap_expect: 3
  encrypt_key_file: /k
applications:
  - name: hello-web
    group: web
    poll_intervall: 10s
    source:
      git:
        url: https://git.example/r.git
        brnach: main
        auth: {token: /x}
  - nmae: batch
    group: web
    source: {dri: /srv}
`, []string{
			`drover.yaml:1: unknown key "nodes"; did you mean "node"?`,
			`drover.yaml:4: node: unknown key "group"; did you mean "groups"?`,
			`drover.yaml:6: cluster: unknown key "bootsrap_expect"; did you mean "bootstrap_expect"?`,
			`drover.yaml:11: applications[0]: unknown key "poll_intervall"; did you mean "poll_interval"?`,
			`drover.yaml:15: applications[0].source.git: unknown key "brnach"; did you mean "branch"?`,
			`drover.yaml:16: applications[0].source.git.auth: unknown key "token" (known: token_file, ssh_key_file, known_hosts_file)`,
			`drover.yaml:17: applications[1]: unknown key "nmae"; did you mean "name"?`,
			`drover.yaml:19: applications[1].source: unknown key "dri"; did you mean "dir"?`,
		}},
		{"wrong types", `node:
  groups: web
  labels: [a]
cluster:
  bootstrap_expect: five
  encrypt_key_file: /k
api: /run/drover.sock
systemd: [user]
applications:
  name: hello-web
`, []string{
			`drover.yaml:2: node.groups: want a list, found "web"`,
			`drover.yaml:3: node.labels: want a mapping, found a list`,
			`drover.yaml:5: cluster.bootstrap_expect: want a whole number, found "five"`,
			`drover.yaml:7: api: want a mapping (keys: socket, metrics_listen), found "/run/drover.sock"`,
			`drover.yaml:8: systemd: want a string, found a list`,
			`drover.yaml:9: applications: want a list, found a mapping`,
		}},
		{"bad durations, and the other problems too", `cluster: {encrypt_key_file: /k}
applications:
  - {name: a, group: g, poll_interval: soon, source: {dir: /a}}
  - {name: b, group: g, poll_interval: 10, source: {dir: /b}}
  - {name: c, group: g, poll_interval: [1s], source: {dir: /c}}
  - {name: d, group: g, poll_interval: 100ms, source: {dir: d}}
  - just-a-name
  - {name: e, group: g, poll_interval: 1h, source: {dir: /e}}
  - {name: e, group: g, poll_interval: 1x, source: {dir: /e}}
`, []string{
			`drover.yaml:3: applications[0].poll_interval: "soon" is not a duration such as 30s or 2m`,
			`drover.yaml:4: applications[1].poll_interval: "10" is not a duration such as 30s or 2m`,
			`drover.yaml:5: applications[2].poll_interval: want a duration such as 30s or 2m, found a list`,
			`drover.yaml:6: applications[3].poll_interval: 100ms is shorter than 1s`,
			`drover.yaml:6: applications[3].source.dir: "d" is not an absolute path`,
			`drover.yaml:7: applications[4]: want a mapping (keys: name, group, poll_interval, source), found "just-a-name"`,
			`drover.yaml:9: applications[6].poll_interval: "1x" is not a duration such as 30s or 2m`,
			`drover.yaml:9: applications[6].name: "e" is already the name of applications[5]`,
		}},
		{"duplicate names and keys", `cluster:
  encrypt_key_file: /k
  profile: lan
  profile: wan
applications:
  - name: web
    group: g
    source: {dir: /a}
  - name: web
    name: api
    group: g
    source: {dir: /b}
  - name: web
    group: g
    source: {dir: /c}
`, []string{
			`drover.yaml:4: cluster.profile: repeated key (first at line 3)`,
			`drover.yaml:9: applications[1].name: "web" is already the name of applications[0]`,
			`drover.yaml:10: applications[1].name: repeated key (first at line 9)`,
			`drover.yaml:13: applications[2].name: "web" is already the name of applications[0]`,
		}},
		{"missing required fields", `cluster: {encrypt_key_file: /k}
applications:
  - group: g
    source: {dir: /a}
  - name: b
    source: {dir: /b}
  - name: c
    group: g
  - name: d
    group: g
    source:
      git: {branch: main}
  - name: e
    group: g
    source:
      s3: {prefix: p/}
  - {}
`, []string{
			`drover.yaml:3: applications[0].name: missing`,
			`drover.yaml:5: applications[1].group: missing: the node group that deploys b`,
			`drover.yaml:7: applications[2].source: missing: want one of git, s3 or dir`,
			`drover.yaml:12: applications[3].source.git.url: missing`,
			`drover.yaml:16: applications[4].source.s3.bucket: missing`,
			`drover.yaml:17: applications[5].name: missing`,
			`drover.yaml:17: applications[5].group: missing: the node group that deploys it`,
			`drover.yaml:17: applications[5].source: missing: want one of git, s3 or dir`,
		}},
		{"a key indented too far", `cluster: {encrypt_key_file: /k}
applications:
  - name: a
    group: g
    source:
      dir: /a
      poll_interval: 10s
  - name: b
    group: g
    source: {dir: /b}
    systemd: off
`, []string{
			`drover.yaml:7: applications[0].source: unknown key "poll_interval" (known: git, s3, dir); poll_interval is a key of applications[0]: check the indentation`,
			`drover.yaml:11: applications[1]: unknown key "systemd" (known: name, group, poll_interval, source); systemd is a top-level key: check the indentation`,
		}},
		{"top level not a mapping", "- node\n- cluster\n", []string{
			`drover.yaml:1: want a mapping (keys: node, cluster, api, systemd, applications), found a list`,
		}},
		{"merge keys are checked like the rest", `cluster: {encrypt_key_file: /k}
defaults: &web
  group: g
  pol_interval: 1m
applications:
  - <<: *web
    name: a
    source: {dir: /a}
`, []string{
			`drover.yaml:2: unknown key "defaults" (known: node, cluster, api, systemd, applications)`,
			`drover.yaml:4: applications[0]: unknown key "pol_interval"; did you mean "poll_interval"?`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("drover.yaml", []byte(tc.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			if got, want := strings.Join(ce.Problems, "\n"), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("problems:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestParseConfigMergeKeys: anchors and merge keys still work.
func TestParseConfigMergeKeys(t *testing.T) {
	c, err := ParseConfig("drover.yaml", []byte(`cluster: {encrypt_key_file: /k}
node: {groups: [g]}
applications:
  - &web
    name: a
    group: g
    poll_interval: 1m
    source: {dir: /a}
  - <<: *web
    name: b
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Applications) != 2 || c.Applications[1].Name != "b" || c.Applications[1].Source.Dir != "/a" ||
		time.Duration(c.Applications[1].PollInterval) != time.Minute {
		t.Errorf("applications = %+v", c.Applications)
	}
}
