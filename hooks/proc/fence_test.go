package proc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/systemdtest"
	"golang.org/x/sys/unix"
)

// The fence tests need an agent that is really stopped (SIGSTOP) while its
// script runs, so the test binary re-runs itself as that agent.
const fenceAgentEnv = "DROVER_PROC_FENCE_AGENT"

// fenceAgent runs the script named by the last argument under a fence at
// DROVER_FENCE_FIRST from now, moved at once to DROVER_FENCE_AT from now.
// It prints "running DEADLINE" (unix nanoseconds of the moved deadline) once
// the script has created the file "ready" next to itself, and "result ..."
// when Run returns.
func fenceAgent(mode string) {
	script := os.Args[len(os.Args)-1]
	first, _ := time.ParseDuration(os.Getenv("DROVER_FENCE_FIRST"))
	at, _ := time.ParseDuration(os.Getenv("DROVER_FENCE_AT"))
	grace, _ := time.ParseDuration(os.Getenv("DROVER_FENCE_GRACE"))
	r, err := New(context.Background(), mode, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	start := time.Now()
	f := NewFence(start.Add(first), grace)
	done := make(chan struct{})
	go func() {
		ready := filepath.Join(filepath.Dir(script), "ready")
		for {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		if at != first {
			f.Set(start.Add(at))
		}
		fmt.Println("running", f.Deadline().UnixNano())
	}()
	res, err := r.Run(context.Background(), Spec{Unit: "drover-fence-test", Path: script, Dir: filepath.Dir(script),
		Env: os.Environ(), KillGrace: time.Hour, Fence: f})
	close(done)
	fmt.Printf("result fenced=%v signal=%s exit=%d canceled=%v err=%v\n", res.Fenced, res.Signal, res.ExitCode, res.Canceled, err)
	os.Exit(0)
}

type fenceAgentProc struct {
	cmd      *exec.Cmd
	out      *bufio.Reader
	deadline time.Time
}

func startFenceAgent(t *testing.T, im impl, script string, first, at, grace time.Duration) *fenceAgentProc {
	t.Helper()
	var env []string
	mode := ModeOff
	if im.systemd {
		env = systemdtest.Start(t)
		mode = ModeUser
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$", script)
	cmd.Env = append(append(os.Environ(), env...), fenceAgentEnv+"="+mode,
		"DROVER_FENCE_FIRST="+first.String(), "DROVER_FENCE_AT="+at.String(), "DROVER_FENCE_GRACE="+grace.String())
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	a := &fenceAgentProc{cmd: cmd, out: bufio.NewReader(pipe)}
	line, err := a.out.ReadString('\n')
	ns, ok := strings.CutPrefix(strings.TrimSpace(line), "running ")
	n, perr := strconv.ParseInt(ns, 10, 64)
	if err != nil || !ok || perr != nil {
		t.Fatalf("agent said %q (%v), want running DEADLINE", line, err)
	}
	a.deadline = time.Unix(0, n)
	return a
}

func (a *fenceAgentProc) result(t *testing.T) string {
	t.Helper()
	line, err := a.out.ReadString('\n')
	if err != nil {
		t.Fatalf("agent's result: %q, %v", line, err)
	}
	return strings.TrimSpace(line)
}

// TestFenceHoldsWhileAgentStopped stops the agent (SIGSTOP) while its
// script runs: the script's watchdog must still end the whole tree once
// the fence passes, not before the moved deadline, even a script that
// ignores TERM. This is the process-pause case of PROTOCOL.md A3.
func TestFenceHoldsWhileAgentStopped(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			dir := t.TempDir()
			script := writeScript(t, dir, "hook.sh", `#!/bin/sh
trap '' TERM
sleep 300 &
echo $! > "`+dir+`/child.pid"
echo $$ > "`+dir+`/script.pid"
touch "`+dir+`/ready"
wait
`, 0o755)
			// The first deadline would kill the script before the agent is
			// stopped; only the moved one may count.
			const first, at, grace = 300 * time.Millisecond, 3 * time.Second, 300 * time.Millisecond
			a := startFenceAgent(t, im, script, first, at, grace)
			if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			if !stopped.Before(a.deadline) {
				t.Fatalf("agent stopped %v after its fence; the machine is too slow for this test", stopped.Sub(a.deadline))
			}
			script2, child := readPid(t, dir, "script.pid"), readPid(t, dir, "child.pid")
			killOnCleanup(t, child)
			waitGone(t, script2, child)
			gone := time.Now()
			if gone.Before(a.deadline) {
				t.Fatalf("the tree was killed %v before the fence (the watchdog kept the first deadline?)", a.deadline.Sub(gone))
			}
			t.Logf("agent stopped %v before the fence; tree gone %v after it (grace %v)", a.deadline.Sub(stopped).Round(time.Millisecond), gone.Sub(a.deadline).Round(time.Millisecond), grace)
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if got := a.result(t); !strings.HasPrefix(got, "result fenced=true signal=SIGKILL ") {
				t.Fatalf("Run returned %q, want fenced by SIGKILL", got)
			}
		})
	}
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, pg, ok := parseStat(b); ok && pg == pgid && st != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// TestFenceSparesScriptThatEnded: a script that ended before its fence,
// while the agent was stopped and so could neither reap nor disarm it, is
// not killed when the fence passes, and neither is what it left running
// (an ApplicationStart's daemon).
func TestFenceSparesScriptThatEnded(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			dir := t.TempDir()
			script := writeScript(t, dir, "hook.sh", `#!/bin/sh
sleep 300 >/dev/null 2>&1 &
echo $! > "`+dir+`/child.pid"
echo $$ > "`+dir+`/script.pid"
touch "`+dir+`/ready"
while [ ! -e "`+dir+`/go" ]; do sleep 0.02; done
`, 0o755)
			const at, grace = 2 * time.Second, 200 * time.Millisecond
			a := startFenceAgent(t, im, script, at, at, grace)
			if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			pid, child := readPid(t, dir, "script.pid"), readPid(t, dir, "child.pid")
			killOnCleanup(t, child)
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid) // a zombie: the stopped agent cannot reap it
			// The watchdog's timer ends at the deadline, leaving the
			// watchdog itself (waiting for the agent) and the daemon.
			deadline := time.Now().Add(waitFor)
			for {
				m := groupMembers(pid)
				if len(m) == 2 && bytes.Contains(must(os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child))), []byte("sleep")) && (m[0] == child || m[1] == child) && time.Now().After(a.deadline) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("group %d still has %v (daemon %d) %v after the fence", pid, m, child, time.Since(a.deadline))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !alive(child) {
				t.Fatal("the fence killed what a script that ended in time left running")
			}
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if got := a.result(t); !strings.HasPrefix(got, "result fenced=false signal= exit=0 ") {
				t.Fatalf("Run returned %q, want a plain success", got)
			}
			if !alive(child) {
				t.Fatal("the daemon the script left running died after the agent resumed")
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		return nil
	}
	return b
}

// TestFenceStopsWithItsGrace: when the fence passes, the agent stops the
// tree with the fence's grace, not Spec.KillGrace, and a deadline moved
// earlier takes effect at once.
func TestFenceStopsWithItsGrace(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			r := im.setup(t)(t)
			dir := t.TempDir()
			script := writeScript(t, dir, "hook.sh", `#!/bin/sh
trap '' TERM
touch "`+dir+`/ready"
sleep 300
`, 0o755)
			f := NewFence(time.Now().Add(time.Hour), 100*time.Millisecond)
			go func() {
				for {
					if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
						f.Set(time.Now())
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			const killGrace = 10 * time.Minute
			res, err := r.Run(context.Background(), Spec{Unit: "drover-fence-grace", Path: script, Dir: dir, KillGrace: killGrace, Fence: f})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Fenced || res.Canceled || res.TimedOut || res.Signal != "SIGKILL" {
				t.Fatalf("result %+v, want fenced and killed", res)
			}
			if res.Duration >= killGrace/2 {
				t.Fatalf("stopped after %v: the kill used Spec.KillGrace, not the fence's grace", res.Duration)
			}
		})
	}
}

// TestFenceLineNeverEarly: the watchdog compares /proc/uptime, truncated to
// centiseconds, with the deadline it is given, so the deadline must be
// rounded up: rounded down, the watchdog killed a script up to 10 ms before
// the fence, and the agent read that as the script's own failure.
func TestFenceLineNeverEarly(t *testing.T) {
	for _, off := range []time.Duration{0, time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond, 1234567 * time.Microsecond} {
		now := time.Now()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
			t.Fatal(err)
		}
		line, err := fenceLine(now.Add(off), 150*time.Millisecond, now)
		if err != nil {
			t.Fatal(err)
		}
		var cs int64
		var grace string
		if _, err := fmt.Sscanf(line, "f %d %s\n", &cs, &grace); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if at := time.Duration(cs) * 10 * time.Millisecond; at < time.Duration(ts.Nano())+off {
			t.Errorf("offset %v: deadline %v is before the fence %v", off, at, time.Duration(ts.Nano())+off)
		}
		if grace != "0.15" {
			t.Errorf("grace %q, want 0.15", grace)
		}
	}
}
