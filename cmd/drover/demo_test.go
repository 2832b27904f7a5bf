package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the README's first command, smaller: real agents, a real
// git repository, the real hello-web bundle; it must finish, roll out the
// second revision to every host, and leave no directory or server behind.
func TestDemo(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("the demo's hello-web needs python3")
	}
	tmp := t.TempDir()
	r := drover(t, []string{"TMPDIR=" + tmp}, "demo", "--hosts", "3", "--strategy", "one-at-a-time", "--timeout", "3m")
	if r.code != 0 {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"rolled out hello-web-2 to 3 hosts", "host-1", "host-3", "STARTED AFTER PREVIOUS ENDED"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	left, err := filepath.Glob(filepath.Join(tmp, "drover-demo-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("demo left %v behind", left)
	}
	out, _ := exec.Command("pgrep", "-f", tmp).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("demo left processes behind: %s", s)
	}
}
