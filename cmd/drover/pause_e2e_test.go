package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// pauser stops and resumes an agent process without killing it.
type pauser struct {
	name           string
	stop, resume   func(t *testing.T, pid int)
	unavailableWhy func() string // "" when it can run here
}

func pausers() []pauser {
	return []pauser{
		{
			// SIGSTOP: a Ctrl-Z of a foreground agent, a debugger, or the
			// way a stalled VM or heavy swapping looks to its peers.
			name: "sigstop",
			stop: func(t *testing.T, pid int) {
				sendSignal(t, pid, syscall.SIGSTOP)
				for deadline := time.Now().Add(10 * time.Second); !strings.HasPrefix(procState(pid), "T"); {
					if time.Now().After(deadline) {
						t.Fatalf("agent %d not stopped 10s after SIGSTOP: %s", pid, procState(pid))
					}
					time.Sleep(time.Millisecond)
				}
			},
			resume: func(t *testing.T, pid int) { sendSignal(t, pid, syscall.SIGCONT) },
		},
		{
			// A frozen cgroup holding the agent but not its hooks: what
			// `systemctl freeze drover` does while the hooks live in their
			// own scopes. The agent alone is moved into a new freezer
			// cgroup after its hook started (the hook stays where it was).
			name: "freezer",
			stop: func(t *testing.T, pid int) {
				dir := freezerDir(t)
				write(t, filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
				write(t, filepath.Join(dir, freezerFile()), freezeValue(true))
				// v1 goes FREEZING → FROZEN; v2 reports "frozen 1" in cgroup.events.
				file, want := "freezer.state", "FROZEN"
				if !freezerV1() {
					file, want = "cgroup.events", "frozen 1"
				}
				for deadline := time.Now().Add(10 * time.Second); ; {
					b, err := os.ReadFile(filepath.Join(dir, file))
					if err == nil && strings.Contains(string(b), want) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("cgroup %s: %s says %q, want %q", dir, file, b, want)
					}
					time.Sleep(5 * time.Millisecond)
				}
				t.Logf("agent frozen: %s", procState(pid))
			},
			resume: func(t *testing.T, pid int) {
				write(t, filepath.Join(freezerDir(t), freezerFile()), freezeValue(false))
			},
			unavailableWhy: func() string {
				if os.Geteuid() != 0 {
					return "a freezer cgroup needs root"
				}
				if freezerRoot() == "" {
					return "no cgroup freezer (v1 freezer or v2 cgroup.freeze) on this machine"
				}
				return ""
			},
		},
	}
}

func sendSignal(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freezerRoot is the v1 freezer hierarchy, or the v2 one ("" if neither).
func freezerRoot() string {
	for _, d := range []string{"/sys/fs/cgroup/freezer", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(d, "freezer.state")); err == nil && d == "/sys/fs/cgroup/freezer" {
			return d
		}
		if _, err := os.Stat(filepath.Join(d, "cgroup.subtree_control")); err == nil {
			return d // v2: cgroup.freeze exists in every non-root cgroup
		}
	}
	if fi, err := os.Stat("/sys/fs/cgroup/freezer"); err == nil && fi.IsDir() {
		return "/sys/fs/cgroup/freezer"
	}
	return ""
}

func freezerV1() bool { return strings.HasSuffix(freezerRoot(), "/freezer") }

func freezerFile() string {
	if freezerV1() {
		return "freezer.state"
	}
	return "cgroup.freeze"
}

func freezeValue(frozen bool) string {
	switch {
	case freezerV1() && frozen:
		return "FROZEN"
	case freezerV1():
		return "THAWED"
	case frozen:
		return "1"
	}
	return "0"
}

// freezerDir is this test's cgroup, made on first use and removed after
// it (thawed, its process moved back to the root).
func freezerDir(t *testing.T) string {
	dir := filepath.Join(freezerRoot(), "drover-test-"+strings.NewReplacer("/", "-").Replace(t.Name()))
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, freezerFile()), []byte(freezeValue(false)), 0o644)
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(freezerRoot(), "cgroup.procs"), []byte(pid), 0o644)
			}
		}
		_ = os.Remove(dir)
	})
	return dir
}

// TestPausedSlotHolder stops the slot holder's agent (SIGSTOP, or a frozen
// cgroup) while its AfterInstall hangs, keeps it stopped until another
// host has run the revision, then resumes it. Window 1 must hold at every
// instant — the hook is killed by its watchdog at the fence, before the
// voters' lock can expire — and the resumed agent records the deployment
// failed instead of going on (issue 9; PROTOCOL.md A3).
func TestPausedSlotHolder(t *testing.T) {
	for _, pz := range pausers() {
		t.Run(pz.name, func(t *testing.T) {
			if pz.unavailableWhy != nil {
				if why := pz.unavailableWhy(); why != "" {
					t.Skip(why)
				}
			}
			const n = 3
			f := newFleet(t, n, "one-at-a-time")
			f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
			f.push("v2", "one-at-a-time", bundleOpts{hangOnce: "AfterInstall", exclusive: true})

			victim, hookPid := -1, 0
			for deadline := time.Now().Add(90 * time.Second); victim < 0; {
				for i, a := range f.agents {
					if b, err := os.ReadFile(filepath.Join(a.dir, "root", "hanging")); err == nil {
						victim, hookPid = i, atoi(t, string(b))
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("no host reached AfterInstall")
				}
				time.Sleep(20 * time.Millisecond)
			}
			name := f.agents[victim].name
			agentPid := f.agents[victim].cmd.Process.Pid
			stoppedAt := time.Now()
			pz.stop(t, agentPid)
			resumed := false
			defer func() {
				if !resumed {
					pz.resume(t, agentPid)
				}
			}()
			t.Logf("stopped %s's agent (pid %d) in AfterInstall (hook pid %d)", name, agentPid, hookPid)

			// Measure when the hook dies, independently of everything else.
			var hookGone atomic.Int64
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					if !procAlive(hookPid) {
						hookGone.Store(time.Now().UnixNano())
						return
					}
					select {
					case <-done:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()

			if _, err := f.status(victim); err == nil {
				t.Fatalf("%s's agent still answers on its socket: it is not stopped", name)
			}

			// Keep it stopped until another host has run v2 to its end.
			other := (victim + 1) % n
			var next interval
			for deadline := time.Now().Add(90 * time.Second); next.host == ""; {
				for _, iv := range f.lifecycles("v2") {
					if iv.host != name && iv.start > float64(stoppedAt.UnixNano())/1e9 && iv.end > iv.start {
						next = iv
					}
				}
				if time.Now().After(deadline) {
					st, _ := f.status(other)
					b, _ := json.Marshal(st)
					t.Fatalf("no other host ran v2 while %s was stopped; status %s", name, b)
				}
				time.Sleep(50 * time.Millisecond)
			}
			gone := hookGone.Load()
			overlap, _ := os.ReadFile(f.timeline + ".overlap")
			t.Logf("next host %s started %.3fs after the stop; hook gone %s after the stop",
				next.host, next.start-float64(stoppedAt.UnixNano())/1e9, sinceStop(stoppedAt, gone))
			if gone == 0 {
				t.Errorf("%s's AfterInstall still runs while %s ran v2: two hosts in lifecycle events with window 1", name, next.host)
			} else if float64(gone)/1e9 > next.start {
				t.Errorf("%s's AfterInstall died %.3fs after %s started v2: two hosts in lifecycle events with window 1",
					name, float64(gone)/1e9-next.start, next.host)
			}
			if len(overlap) > 0 {
				t.Errorf("scripts ran while another host's held the window:\n%s", overlap)
			}

			// Resumed, it records the deployment failed at the fence, not
			// succeeded; a lapsed lease is no failure of the revision, so it
			// takes its turn again and the rollout goes on.
			pz.resume(t, agentPid)
			resumed = true
			st := f.waitFor(other, 120*time.Second, "the rollout settles", func(st *daemon.Status) bool {
				hs := hostsOf(st)
				if len(hs) != n {
					return false
				}
				halted := false
				for _, a := range st.Apps {
					halted = halted || a.Name == fleetApp && a.Halted
				}
				// Halted, every host that installed v2 rolls back to v1;
				// or (if the policy let it go on) every host has v2.
				on := map[string]int{}
				for _, h := range hs {
					if h.Phase == "running" || h.Phase == "rolling-back" {
						return false
					}
					on[h.Revision]++
				}
				return halted && on["v1"] == n || on["v2"] == n
			})
			b, _ := json.Marshal(hostsOf(st))
			t.Logf("settled: %s", b)
			var fenced *deploymentRecord
			recs := victimRecords(t, f.agents[victim].dir, "v2")
			for _, r := range recs {
				if r.Status == "failed" && strings.Contains(r.Error, "fence") {
					fenced = r
				}
			}
			if fenced == nil {
				t.Errorf("%s's v2 deployment records: %+v, want one failed at the fence", name, recs)
			} else {
				t.Logf("%s's v2 records: %d; the paused one %s at %s: %s", name, len(recs), fenced.Status, fenced.FailedEvent, firstLine(fenced.Error))
			}
			if b, _ := os.ReadFile(f.timeline + ".overlap"); len(b) > 0 {
				t.Errorf("scripts ran while another host's held the window:\n%s", b)
			}
		})
	}
}

// procState is the State line of /proc/PID/status.
func procState(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(l, "State:"); ok {
			return strings.TrimSpace(s)
		}
	}
	return "?"
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("pid %q: %v", s, err)
	}
	return n
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func sinceStop(stop time.Time, gone int64) string {
	if gone == 0 {
		return "never (still running)"
	}
	return time.Unix(0, gone).Sub(stop).Round(time.Millisecond).String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

type deploymentRecord struct {
	Revision    string `json:"revision"`
	Status      string `json:"status"`
	FailedEvent string `json:"failed_event"`
	Error       string `json:"error"`
}

// victimRecords reads the host's deployment records of revision rev.
func victimRecords(t *testing.T, hostDir, rev string) []*deploymentRecord {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(hostDir, "state", "deployments", "web", "d-*", "record.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*deploymentRecord
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var r deploymentRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r.Revision == rev {
			out = append(out, &r)
		}
	}
	return out
}
