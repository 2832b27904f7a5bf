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
		{"unknown top key", "nodes: {}\n", []string{`drover.yaml:1: unknown key "nodes"`}},
		{"unknown nested key", "node:\n  name: a\n  group: [x]\n", []string{`drover.yaml:3: unknown key "group"`}},
		{"bad duration", "applications:\n  - name: a\n    group: g\n    poll_interval: soon\n    source: {dir: /x}\n", []string{`drover.yaml:4:`, `"soon" is not a duration`}},
		{"short poll", "applications:\n  - name: a\n    group: g\n    poll_interval: 10ms\n    source: {dir: /x}\n", []string{`drover.yaml:4: applications[0].poll_interval: 10ms is shorter than 1s`}},
		{"two sources", "applications:\n  - name: a\n    group: g\n    source:\n      dir: /x\n      s3: {bucket: b}\n", []string{`drover.yaml:4: applications[0].source: want exactly one of git, s3 or dir, found 2`}},
		{"no source", "applications:\n  - name: a\n    group: g\n", []string{`applications[0].source: want exactly one`}},
		{"dup app", "applications:\n  - {name: a, group: g, source: {dir: /x}}\n  - {name: a, group: g, source: {dir: /y}}\n", []string{`drover.yaml:3: applications[1].name: "a" is already the name of applications[0]`}},
		{"bad systemd", "systemd: maybe\n", []string{`drover.yaml:1: systemd: "maybe"`}},
		{"bad profile", "cluster:\n  profile: fast\n", []string{`drover.yaml:2: cluster.profile: "fast"`}},
		{"negative bootstrap_expect", "cluster:\n  profile: lan\n  bootstrap_expect: -3\n", []string{`drover.yaml:3: cluster.bootstrap_expect: -3: want the number of hosts that form each group (1 to 4096)`}},
		{"huge bootstrap_expect", "cluster:\n  bootstrap_expect: 100000\n", []string{`drover.yaml:2: cluster.bootstrap_expect: 100000`}},
		{"bootstrap_expect not a number", "cluster:\n  bootstrap_expect: five\n", []string{`drover.yaml:2:`, "five"}},
		{"relative state dir", "node:\n  state_dir: var/lib\n", []string{`drover.yaml:2: node.state_dir: "var/lib" is not an absolute path`}},
		{"bad bind", "cluster:\n  bind: 7946\n", []string{`drover.yaml:2: cluster.bind`}},
		{"git scheme", "applications:\n  - name: a\n    group: g\n    source:\n      git: {url: \"ftp://x/y\"}\n", []string{`drover.yaml:5: applications[0].source.git.url: scheme "ftp"`}},
		{"git password", "applications:\n  - name: a\n    group: g\n    source:\n      git:\n        url: https://bob:hunter2@git.example/r.git\n", []string{`drover.yaml:6: applications[0].source.git.url: holds a password`}},
		{"git path escape", "applications:\n  - name: a\n    group: g\n    source:\n      git: {url: \"https://x/y\", path: ../z}\n", []string{`applications[0].source.git.path`}},
		{"s3 bucket", "applications:\n  - name: a\n    group: g\n    source:\n      s3: {prefix: p}\n", []string{`drover.yaml:5: applications[0].source.s3.bucket: missing`}},
		{"bad group name", "node:\n  groups: [\"web prod\"]\n", []string{`drover.yaml:2: node.groups[0]`}},
		{"syntax", "node: [\n", []string{`drover.yaml:`}},
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
	f.Fuzz(func(t *testing.T, data []byte) {
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
