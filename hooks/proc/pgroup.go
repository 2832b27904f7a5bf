package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pgroupController controls scripts through their process group (no systemd).
type pgroupController struct{}

func (pgroupController) name() string { return "process-group" }

func (pgroupController) close() error { return nil }

// place does nothing: the child leads its own process group from the fork on.
func (pgroupController) place(_ context.Context, _ Spec, pid int) (tree, error) {
	return pgroupTree{pgid: pid}, nil
}

type pgroupTree struct{ pgid int }

func (pgroupTree) unit() string { return "" }

// kill sends TERM to the group, KILL after grace, and waits for the group to
// be empty. Processes that left the group are not reached (see package doc).
func (t pgroupTree) kill(grace time.Duration) error {
	if err := unix.Kill(-t.pgid, unix.SIGTERM); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill process group %d: %w", t.pgid, err)
	}
	if waitGroupGone(t.pgid, grace) {
		return nil
	}
	if err := unix.Kill(-t.pgid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", t.pgid, err)
	}
	if !waitGroupGone(t.pgid, 5*time.Second) {
		return fmt.Errorf("process group %d: processes left after SIGKILL", t.pgid)
	}
	return nil
}

// waitGroupGone polls until no live process is in group pgid or d passes.
// The kernel offers no event for "process group empty"; polling backs off
// from 1 ms to 50 ms.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	step := time.Millisecond
	for {
		if !groupAlive(pgid) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(step, left))
		step = min(2*step, 50*time.Millisecond)
	}
}

// groupAlive reports whether group pgid has a process that is not a zombie.
// Zombies count for kill(2) until their new parent reaps them, which some
// inits do only every second or two; they hold nothing and run nothing.
func groupAlive(pgid int) bool {
	if errors.Is(unix.Kill(-pgid, 0), unix.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if state, pg, ok := parseStat(b); ok && pg == pgid && state != 'Z' {
			return true
		}
	}
	return false
}

// parseStat returns the state and process group from /proc/PID/stat:
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and parens.
func parseStat(b []byte) (state byte, pgrp int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}
