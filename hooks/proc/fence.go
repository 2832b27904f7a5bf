package proc

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Fence is a deadline no script of a lifecycle may outlive: the rollout
// protocol's fence (reconcile/rollout/PROTOCOL.md, A3), the instant after which the
// slot's lease may have lapsed on the voters. It is enforced twice:
//
//   - by the agent: Run stops the script's tree when the deadline passes,
//     sending TERM and KILL after the fence's grace (not Spec.KillGrace);
//   - by the script's watchdog, which runs in the script's process group (and
//     unit), outside the agent: it is told the deadline on CLOCK_BOOTTIME
//     and, when it passes with the script still running, sends TERM to the
//     group and KILL after the grace. So the deadline holds while the agent
//     is stopped (SIGSTOP, a frozen cgroup, a stalled VM) and across a
//     system suspend, which CLOCK_MONOTONIC (Go's timers) does not count.
//
// Set moves the deadline (a lease renewal) and tells every running
// script's watchdog. A Fence is safe for concurrent use; one Fence serves
// all scripts of one deployment.
type Fence struct {
	grace time.Duration

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced by Set
	procs    map[*process]struct{}
}

// NewFence returns a fence at deadline (a time.Now-based instant, read on
// the monotonic clock) whose kill grace is grace.
func NewFence(deadline time.Time, grace time.Duration) *Fence {
	return &Fence{grace: max(grace, 0), deadline: deadline, changed: make(chan struct{}), procs: map[*process]struct{}{}}
}

// Set moves the deadline, earlier or later.
func (f *Fence) Set(deadline time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadline = deadline
	close(f.changed)
	f.changed = make(chan struct{})
	for p := range f.procs {
		// A failed write means the watchdog is gone already (killed with
		// the script's group): nothing left to tell.
		_ = p.arm(deadline, f.grace)
	}
}

// Deadline returns the current deadline.
func (f *Fence) Deadline() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deadline
}

// Grace is the time between TERM and KILL of a fenced script.
func (f *Fence) Grace() time.Duration { return f.grace }

// Passed reports whether the deadline is at or before now.
func (f *Fence) Passed(now time.Time) bool { return !now.Before(f.Deadline()) }

// watch returns the deadline and a channel closed when it changes.
func (f *Fence) watch() (time.Time, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deadline, f.changed
}

// add registers a started script and arms its watchdog.
func (f *Fence) add(p *process) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[p] = struct{}{}
	return p.arm(f.deadline, f.grace)
}

// remove forgets a script; called before its watchdog is disarmed.
func (f *Fence) remove(p *process) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.procs, p)
}

// fenceLine is the watchdog's arm command: "f DEADLINE GRACE", the
// deadline in centiseconds of CLOCK_BOOTTIME (what /proc/uptime shows),
// rounded up, and the grace in seconds as sleep(1) takes it.
func fenceLine(deadline time.Time, grace time.Duration, now time.Time) (string, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return "", fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	boot := time.Duration(ts.Nano())
	// Rounded up: /proc/uptime is truncated to centiseconds, so a deadline
	// rounded down would let the watchdog fire up to 10 ms before the
	// fence, and the agent would then read the kill as the script's own
	// failure (it found the fence not passed yet).
	at := (max(boot+deadline.Sub(now), 0) + 10*time.Millisecond - 1) / (10 * time.Millisecond)
	cs := (grace + 10*time.Millisecond - 1) / (10 * time.Millisecond)
	return fmt.Sprintf("f %d %d.%02d\n", at, cs/100, cs%100), nil
}
