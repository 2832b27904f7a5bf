package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDeployLocalHelloWeb deploys the shipped example twice, as an admin
// trying drover would, and checks the second revision serves.
func TestDeployLocalHelloWeb(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("hello-web needs python3")
	}
	state, root := t.TempDir(), t.TempDir()
	port := freePort(t)
	writeTree(t, filepath.Join(root, "etc/hello-web"), map[string]string{"port": strconv.Itoa(port)})
	bundle := filepath.Join("..", "..", "deploy-examples", "hello-web")
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(root, "var/run/hello-web/server.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	for _, rev := range []string{"r1", "r2"} {
		r := drover(t, nil, "deploy-local", "--bundle", bundle, "--state-dir", state, "--root", root,
			"--app", "hello-web", "--group", "demo", "--revision", rev, "--systemd", "off")
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", rev, r.code, r.stdout, r.stderr)
		}
	}
	out, err := exec.Command("python3", filepath.Join(root, "opt/hello-web/server.py"), "--get",
		"http://127.0.0.1:"+strconv.Itoa(port)+"/version.txt").Output()
	if err != nil {
		t.Fatalf("fetch version: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "r2" {
		t.Errorf("serving %q, want r2", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
