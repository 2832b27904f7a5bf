package proc

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/systemdtest"
)

// The dead-man test needs an agent that really dies by SIGKILL while a
// script runs, so the test binary re-runs itself as that agent.
const deadmanEnv = "DROVER_PROC_DEADMAN_AGENT"

func TestMain(m *testing.M) {
	if mode := os.Getenv(deadmanEnv); mode != "" {
		deadmanAgent(mode)
		return
	}
	if mode := os.Getenv(fenceAgentEnv); mode != "" {
		fenceAgent(mode)
		return
	}
	os.Exit(m.Run())
}

// deadmanAgent runs the script named by argv's last element and prints
// "running" once the script has written its pid files; it never returns on
// its own: the test kills it.
func deadmanAgent(mode string) {
	script := os.Args[len(os.Args)-1]
	r, err := New(context.Background(), mode, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	go func() {
		dir := filepath.Dir(script)
		for {
			if _, err := os.Stat(filepath.Join(dir, "grandchild.pid")); err == nil {
				fmt.Println("running")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := r.Run(context.Background(), Spec{Unit: "drover-deadman-test", Path: script, Dir: filepath.Dir(script),
		Env: os.Environ(), KillGrace: time.Second})
	fmt.Println("script ended early:", res, err)
	os.Exit(1)
}

// TestDeadManKillsTreeWhenAgentDies kills the agent with SIGKILL while a
// hook runs: the hook's whole tree must end, with and without systemd, so
// that no lifecycle event outlives its agent (PROTOCOL.md A3).
func TestDeadManKillsTreeWhenAgentDies(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			var env []string
			mode := ModeOff
			if im.systemd {
				env = systemdtest.Start(t)
				mode = ModeUser
			}
			dir := t.TempDir()
			script := writeScript(t, dir, "hook.sh", `#!/bin/sh
sleep 300 &
echo $! > "`+dir+`/child.pid"
sh -c 'sleep 300 & echo $! > "`+dir+`/grandchild.tmp"; mv "`+dir+`/grandchild.tmp" "`+dir+`/grandchild.pid"; wait'
`, 0o755) // the agent watches for grandchild.pid: renamed into place whole, never seen empty
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(self, "-test.run=^$", script)
			cmd.Env = append(append(os.Environ(), env...), deadmanEnv+"="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "running" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("agent said %q (%v), want running", line, err)
			}
			child, grandchild := readPid(t, dir, "child.pid"), readPid(t, dir, "grandchild.pid")
			killOnCleanup(t, child)
			killOnCleanup(t, grandchild)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			waitGone(t, child, grandchild)
		})
	}
}
