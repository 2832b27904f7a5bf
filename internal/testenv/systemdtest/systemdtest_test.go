package systemdtest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// managerPID asks the manager on the bus in env for its pid (the pid of
// init.scope's only process).
func managerPID(t *testing.T, env []string) int {
	t.Helper()
	addr := envValue(env, "DBUS_SESSION_BUS_ADDRESS")
	if err := ping(context.Background(), addr); err != nil {
		t.Fatalf("manager does not answer on %s: %v", addr, err)
	}
	xdg := envValue(env, "XDG_RUNTIME_DIR")
	st, err := os.Stat(xdg)
	if err != nil {
		t.Fatalf("stat runtime dir: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("runtime dir mode = %v, want 0700", st.Mode().Perm())
	}
	// The manager is the process whose cgroup ends in init.scope below a
	// drover-systemdtest cgroup and whose runtime dir is xdg.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !strings.Contains(string(environ), "XDG_RUNTIME_DIR="+xdg+"\x00") {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) == "systemd" {
			return pid
		}
	}
	t.Fatalf("no systemd process with XDG_RUNTIME_DIR=%s", xdg)
	return 0
}

func TestStartTwoManagersIsolated(t *testing.T) {
	pid1Cgroup, err := os.ReadFile("/proc/1/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	selfCgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}

	var pids []int
	var xdgs []string
	t.Run("run", func(t *testing.T) {
		var mu sync.Mutex
		var envs [][]string
		// Two managers at once, from parallel subtests.
		for _, name := range []string{"a", "b"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				env := Start(t)
				mu.Lock()
				envs = append(envs, env)
				mu.Unlock()
				pid := managerPID(t, env)
				t.Logf("manager pid %d env %v", pid, env)
				mu.Lock()
				pids = append(pids, pid)
				xdgs = append(xdgs, envValue(env, "XDG_RUNTIME_DIR"))
				mu.Unlock()
				if _, err := os.Stat(runSystemd); err != nil {
					t.Errorf("%s missing while a manager runs: %v", runSystemd, err)
				}
				cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(cg), "/drover-systemdtest-") || !strings.Contains(string(cg), "/init.scope") {
					t.Errorf("manager cgroup = %q, want init.scope below its own drover-systemdtest cgroup", cg)
				}
			})
		}
	})
	if t.Failed() || len(pids) < 2 {
		return // skipped or failed inside
	}
	if xdgs[0] == xdgs[1] {
		t.Errorf("both managers share runtime dir %s", xdgs[0])
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, 0); err == nil {
			t.Errorf("manager pid %d still running after cleanup", pid)
		}
	}
	for _, xdg := range xdgs {
		if _, err := os.Stat(xdg); err == nil {
			t.Errorf("runtime dir %s left behind", xdg)
		}
	}
	if got, _ := os.ReadFile("/proc/1/cgroup"); string(got) != string(pid1Cgroup) {
		t.Errorf("PID 1 moved: cgroup %q, was %q", got, pid1Cgroup)
	}
	if got, _ := os.ReadFile("/proc/self/cgroup"); string(got) != string(selfCgroup) {
		t.Errorf("test process moved: cgroup %q, was %q", got, selfCgroup)
	}
	for _, root := range []string{cgroupRoot, cgroupRoot + "/systemd", cgroupRoot + "/unified"} {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "drover-systemdtest-"+strconv.Itoa(os.Getpid())+"-") {
				t.Errorf("cgroup %s/%s left behind", root, e.Name())
			}
		}
	}
}
