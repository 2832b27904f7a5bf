package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/systemdtest"
)

// TestDeployLocalUnderSystemd runs deploy-local against a real systemd user
// manager: an ApplicationStart script that backgrounds a server without
// closing stdout ends promptly, the server keeps running in the hook's own
// unit after drover exits, and the next deployment's ApplicationStop (run
// from the previous revision) can stop it.
func TestDeployLocalUnderSystemd(t *testing.T) {
	env := systemdtest.Start(t) // skips with a reason when not root or no systemd
	state, root := t.TempDir(), t.TempDir()
	mk := func() string {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"appspec.yml": "version: 0.0\nos: linux\nhooks:\n" +
				"  ApplicationStop:\n    - location: stop.sh\n      timeout: 30\n" +
				"  ApplicationStart:\n    - location: start.sh\n      timeout: 30\n",
			// The background sleep inherits stdout: CodeDeploy would wait for it.
			"start.sh": "#!/bin/sh\nsleep 300 &\necho $! > \"$DROVER_ROOT/server.pid\"\necho started\n",
			"stop.sh":  "#!/bin/sh\n[ -f \"$DROVER_ROOT/server.pid\" ] && kill \"$(cat \"$DROVER_ROOT/server.pid\")\" || true\n",
		})
		return dir
	}
	deploy := func(rev string) {
		t.Helper()
		r := drover(t, env, "deploy-local", "--bundle", mk(), "--state-dir", state, "--root", root,
			"--app", "hello", "--group", "test", "--revision", rev, "--systemd", "user", "--drain-timeout", "200ms")
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", rev, r.code, r.stdout, r.stderr)
		}
	}
	deploy("v1")
	pid := readPID(t, filepath.Join(root, "server.pid"))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the background server died with the deployment: %v", err)
	}
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cg), "drover-hello-ApplicationStart-") {
		t.Errorf("background server is not in the hook's unit:\n%s", cg)
	}
	log := readFile(t, filepath.Join(state, "deployments", "test", lastID(t, state), "logs", "scripts.log"))
	if !strings.Contains(log, "[stdout]started") || !strings.Contains(log, "still holds its output") {
		t.Errorf("hook log lacks the output or the leftover warning:\n%s", log)
	}

	deploy("v2") // v1's stop.sh kills the old server; v2's start.sh starts a new one
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("v1's server still runs after v2's ApplicationStop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid2 := readPID(t, filepath.Join(root, "server.pid"))
	t.Cleanup(func() { syscall.Kill(pid2, syscall.SIGKILL) })
	if pid2 == pid || syscall.Kill(pid2, 0) != nil {
		t.Errorf("v2's server (pid %d) is not running", pid2)
	}
}

func readPID(t *testing.T, p string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, p)))
	if err != nil {
		t.Fatalf("pid file %s: %v", p, err)
	}
	return pid
}

// lastID is the ID of the newest deployment of group "test".
func lastID(t *testing.T, state string) string {
	t.Helper()
	return strings.TrimSpace(readFile(t, filepath.Join(state, "deployments", "test", "last-successful")))
}
