package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFlag: `drover --version` prints what `drover version` does.
func TestVersionFlag(t *testing.T) {
	a, b := drover(t, nil, "--version"), drover(t, nil, "version")
	if a.code != 0 || a.stdout != b.stdout || !strings.HasPrefix(a.stdout, "drover ") || !strings.Contains(a.stdout, "\ngo go1.") {
		t.Errorf("drover --version: exit %d %q; drover version %q", a.code, a.stdout, b.stdout)
	}
}

// TestCompletions: shell completion offers the config's application names
// for the commands that take one (also from a config that does not
// validate), and the values of enumerated flags.
func TestCompletions(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "drover.yaml")
	// poll_intervall: a typo, as in a config being edited.
	if err := os.WriteFile(cfg, []byte("applications:\n  - name: hello-web\n    poll_intervall: 5s\n  - name: billing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"logs", ""}, {"history", ""}, {"pause", ""}, {"resume", ""}} {
		r := drover(t, nil, append([]string{"__complete", "--config", cfg}, args...)...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "hello-web\nbilling\n:4\n") {
			t.Errorf("complete %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	for flag, want := range map[string]string{
		"--log-format": "text\njson\n",
		"--log-level":  "debug\ninfo\nwarn\nerror\n",
	} {
		r := drover(t, nil, "__complete", "status", flag, "")
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
			t.Errorf("complete %s: exit %d\n%s%s", flag, r.code, r.stdout, r.stderr)
		}
	}
	r := drover(t, nil, "__complete", "simulate", "--strategy", "")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "all-at-once\none-at-a-time\nrolling\ncanary\n") {
		t.Errorf("complete simulate --strategy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
