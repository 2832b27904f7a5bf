package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// TestDefaultConfigParses checks the /etc/drover/drover.yaml the packages
// ship: it validates, deploys nothing, and listens on loopback only.
func TestDefaultConfigParses(t *testing.T) {
	data := readFile(t, "packaging/drover.yaml")
	cfg, err := daemon.ParseConfig("packaging/drover.yaml", data)
	if err != nil {
		t.Fatalf("default config does not parse:\n%v", err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"applications", len(cfg.Applications), 0},
		{"node.groups", len(cfg.Node.Groups), 0},
		{"cluster.join", len(cfg.Cluster.Join), 0},
		{"cluster.bind", cfg.Cluster.Bind, "127.0.0.1:7946"},
		{"api.metrics_listen", cfg.API.MetricsListen, "127.0.0.1:9947"},
		{"api.socket", cfg.API.Socket, "/run/drover/drover.sock"},
		{"node.state_dir", cfg.Node.StateDir, "/var/lib/drover"},
		{"node.root", cfg.Node.Root, "/"},
		{"systemd", cfg.Systemd, "auto"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// The only warning allowed is the one about the missing gossip key:
	// the default does not know the fleet's key.
	for _, w := range cfg.Warnings {
		if !strings.Contains(w, "cluster.encrypt_key_file") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
}

// TestDefaultConfigExampleParses uncomments the example application of the
// default config and checks that it is a valid configuration too, so that
// an administrator who starts from it starts from something that works.
func TestDefaultConfigExampleParses(t *testing.T) {
	data := string(readFile(t, "packaging/drover.yaml"))
	lines := strings.Split(data, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "# applications:" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal("no commented '# applications:' example in packaging/drover.yaml")
	}
	var ex []string
	for _, l := range lines[start:] {
		if !strings.HasPrefix(l, "#") {
			break
		}
		l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		// Commented alternatives inside the example stay comments.
		ex = append(ex, l)
	}
	body := strings.Replace(data, "applications: []", "", 1)
	body = regexp.MustCompile(`(?m)^  groups: \[\]$`).ReplaceAllString(body, "  groups: [web-prod]")
	body += strings.Join(ex, "\n") + "\n"
	cfg, err := daemon.ParseConfig("example", []byte(body))
	if err != nil {
		t.Fatalf("the commented example does not parse:\n%v\n---\n%s", err, body)
	}
	if len(cfg.Applications) != 1 || cfg.Applications[0].Name != "hello-web" || !cfg.Applications[0].Active {
		t.Fatalf("example applications = %+v, want one active hello-web", cfg.Applications)
	}
	if got := time.Duration(cfg.Applications[0].PollInterval); got != 30*time.Second {
		t.Errorf("poll_interval = %v, want 30s", got)
	}
}

// TestExampleConfigsParse checks the drover.yaml files of deploy-examples.
func TestExampleConfigsParse(t *testing.T) {
	for _, rel := range []string{"deploy-examples/push-s3/drover.yaml"} {
		t.Run(filepath.Base(filepath.Dir(rel)), func(t *testing.T) {
			cfg, err := daemon.ParseConfig(rel, readFile(t, rel))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Applications) == 0 {
				t.Fatal("no applications")
			}
			for _, a := range cfg.Applications {
				if !a.Active {
					t.Errorf("%s: group %s is not one of node.groups", a.Name, a.Group)
				}
			}
		})
	}
}

// TestDefaultConfigIsInstalledAsIs: the package ships the file byte for
// byte (nfpm.yaml names it as a config file).
func TestDefaultConfigIsInstalledAsIs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)src: packaging/drover.yaml\n\s+dst: /etc/drover/drover.yaml\n\s+type: config\|noreplace`).Match(b) {
		t.Fatal("nfpm.yaml does not install packaging/drover.yaml as a config|noreplace /etc/drover/drover.yaml")
	}
}
