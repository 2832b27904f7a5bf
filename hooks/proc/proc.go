// Package proc runs one lifecycle hook script under process control
// (DESIGN.md §7, §9): its whole process tree is tracked and killed on timeout
// or cancellation, its output is read line by line, and the event ends when
// the script exits even if something it left behind still holds its output.
//
// # Implementations
//
// New picks one of two controllers; both observe the same behaviour.
//
// systemd (system bus as root, user bus otherwise): each script runs in its
// own transient scope unit, drover-<app>-<event>-<deployment>.scope. The
// agent forks the child itself, but held before exec: the child is a tiny
// /bin/sh trampoline, `read -r _ <&3; exec "$0" "$@"`, blocked reading an
// inherited pipe. The agent asks systemd (StartTransientUnit) for a scope
// with PIDs=[child], waits for the job, and only then writes the byte that
// lets the trampoline exec the script. So no process of the script's tree
// can ever run outside the scope: the race of a process forking before it is
// moved into its unit cannot happen. (Go runs no code of ours between fork
// and exec, so holding a child takes either ptrace — denied by Yama and many
// container profiles, and tied to one OS thread — or a helper program;
// /bin/sh is on every host.) The scope has
// KillMode=control-group, SendSIGKILL=yes, TimeoutStopUSec=KillGrace and
// CollectMode=inactive-or-failed, so:
//   - it disappears by itself when its last process exits (a few
//     milliseconds after Run returns, when systemd notices);
//   - processes a script leaves running (an ApplicationStart's daemon) stay
//     in it and survive the agent's restarts and upgrades, visible in
//     `systemctl status`;
//   - on timeout or cancellation the agent stops the unit: systemd sends
//     TERM to every process in the cgroup, KILL after the grace, and Run
//     waits until the unit is inactive.
//
// With the user bus the manager must be allowed to move the agent's child
// into its cgroup tree: true as root, and for an agent that itself runs in
// that user's manager (a user service); an unprivileged agent started
// elsewhere gets an error from Run and should use systemd: off.
//
// A unit that already exists under the name (a stale one from a crash, or
// processes an earlier run of the same event left running) is never touched;
// the new scope gets a unique suffix instead. Result.Unit says which.
//
// # A script never outlives its agent
//
// The trampoline also starts a detached dead-man watchdog in the script's
// process group (and unit), blocked on a pipe only the agent writes. When
// the script ends, or before the agent kills its tree, the agent disarms
// it. If the agent dies while the script runs (kill -9, a crash, the OOM
// killer), the pipe reaches EOF and the watchdog sends TERM to the process
// group, then KILL after the grace. So an interrupted lifecycle event stops
// by itself, without waiting for the agent's restart; the rollout
// protocol's fencing (reconcile/rollout/PROTOCOL.md, A3) relies on it. Processes the
// script left running after it ended normally are not affected.
//
// Process groups (no systemd, or systemd: off): the child gets its own
// process group; on timeout the agent sends TERM to the group, then KILL
// after the grace, and waits until the group is empty. A process that leaves
// the group (setsid, setpgid — daemonising tools do) escapes this and is
// neither tracked nor killed; only cgroups close that gap. The same
// trampoline is used (released at once) so both controllers run scripts the
// same way.
//
// # Output and the end of an event
//
// stdout and stderr are pipes the agent reads itself (never exec.Cmd's copy
// goroutines, whose Wait blocks while any process holds the pipe). Each line
// goes to Spec.Output with the time it was read; lines longer than 64 KiB are
// split. Run returns when the script (the direct child) has exited and its
// output is drained: if a process it left behind still holds a pipe after
// DrainTimeout, Run returns with Result.LeftoverOutput. From then on the
// Runner keeps reading and discarding that pipe until EOF or Close, rather
// than closing it at once as a simpler design would: a left-behind daemon
// that logs to stdout would otherwise die of SIGPIPE (or block on a full
// pipe) right after its deployment succeeded. After Close (the agent
// stopping) its writes fail with EPIPE; scripts should redirect the output
// of what they start in the background, and the warning says so.
//
// # Environment
//
// Spec.Env is passed as the environment, never spliced into a shell line.
// The trampoline shell passes it on unchanged, except that it sets PWD to
// the working directory, and that names which are not shell identifiers and
// IFS may be dropped or reset by it (dash does; bash as sh also sets
// SHLVL) — as any shell script run by the hook would do anyway.
// With Spec.User the script runs with that user's uid, gid and supplementary
// groups, and HOME, USER, LOGNAME, SHELL (from the passwd entry) and a reset
// PATH, which take precedence over the same names in Spec.Env (so an agent
// environment passed along does not leak the agent's HOME or PATH); all
// other Env entries are added. Making the script executable is the caller's
// job (CodeDeploy chmods +x); a script that is not runs and fails with exit
// code 126 like it would from a shell.
package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Line is one line of a script's output.
type Line struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string // without the trailing newline
}

// Spec says what to run and how.
type Spec struct {
	// Unit names the systemd unit, e.g. "drover-hello-web-AfterInstall-d-0123456789ab".
	// It is escaped into a valid unit name, ".scope" is added, and a suffix
	// if a unit of that name exists. Ignored without systemd.
	Unit string
	// Path is the script to run, absolute; it is executed directly (shebang).
	Path string
	Args []string
	// Dir is the working directory (the bundle root).
	Dir string
	// Env is the environment, KEY=VALUE; later entries win.
	Env []string
	// User is runas: "" runs as the agent's user; a name or numeric uid runs
	// with that user's ids and a login-like environment (see the package doc).
	User string
	// Timeout kills the whole tree when exceeded; 0 means none.
	Timeout time.Duration
	// KillGrace is the time between TERM and KILL (default 10s).
	KillGrace time.Duration
	// DrainTimeout is how long output is still read after the script exits
	// while a leftover process holds the pipe (default 2s).
	DrainTimeout time.Duration
	// Output is called for every line, from one goroutine at a time, never
	// after Run returns. Nil discards output.
	Output func(Line)
	// Fence, when set, is a deadline the script must not outlive, enforced
	// by the agent and by the script's watchdog (see Fence). When it
	// passes, the tree is stopped with the fence's grace, and the same
	// grace bounds any other stop of a tree whose fence is near.
	Fence *Fence
}

// Result is how a script ended.
type Result struct {
	ExitCode int    // -1 if killed by a signal
	Signal   string // e.g. "SIGKILL" when signalled
	TimedOut bool
	Canceled bool // ctx was cancelled (agent shutdown): tree killed like a timeout
	// Fenced: Spec.Fence passed before the script ended, and its tree was
	// stopped (by the agent, or by the watchdog while the agent was stopped).
	Fenced         bool
	LeftoverOutput bool // a process the script left behind still held stdout/stderr
	Duration       time.Duration
	Unit           string // the systemd unit it ran in; "" without systemd
}

// Runner runs one hook script. The error is only for failures to start or to
// talk to systemd; a script's non-zero exit is a Result.
type Runner interface {
	Run(ctx context.Context, s Spec) (Result, error)
	Close() error
}

// Modes accepted by New (the systemd setting of the config).
const (
	ModeAuto   = "auto"
	ModeSystem = "system"
	ModeUser   = "user"
	ModeOff    = "off"
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("hook runner closed")

const (
	defaultKillGrace    = 10 * time.Second
	defaultDrainTimeout = 2 * time.Second
	// maxLine is the longest line passed to Output; longer ones are split.
	maxLine = 64 << 10
	// trampoline holds the child until it is released through fd 3, then
	// becomes the script. $1 is the kill grace in seconds, $2 the script,
	// the rest its arguments. Exit 125 (never running the script) if the
	// agent closes the hold pipe instead.
	//
	// Before that it starts the dead-man watchdog, detached (a grandchild,
	// so that it is nobody's child but init's and no `wait` of the script
	// sees it) but in the script's process group and unit. It reads lines
	// from fd 4, the read end of a pipe only the agent writes:
	//   - "f DEADLINE GRACE" arms (or moves) the fence (see Fence): a timer
	//     subshell polls /proc/uptime (CLOCK_BOOTTIME, centiseconds) in
	//     steps of at most 0.25 s, and when DEADLINE passes while the script
	//     still runs — its pid ($$, which the script keeps through exec) is
	//     neither a zombie nor a new process (the start time in
	//     /proc/PID/stat changed) — it sends TERM to the process group and
	//     KILL GRACE seconds later. A script that ended before the deadline
	//     is left alone, and so is what it left running, even if the agent
	//     is stopped and has not reaped it. The watchdog stops an old timer
	//     (USR1, which also ends its sleep) before it starts a new one.
	//   - any other line disarms it: the agent is alive and done with the
	//     script; it exits without killing anything.
	//   - EOF: the agent died while the script ran (kill -9, OOM, crash);
	//     the watchdog ends the script's process group: TERM, then KILL
	//     after the grace $1.
	// So a lifecycle event outlives neither its agent nor its fence, even
	// while the agent is stopped, which the rollout protocol's fencing
	// relies on (reconcile/rollout/PROTOCOL.md, A3).
	trampoline = `g=$1; shift
( ( trap '' TERM HUP INT
    s=$$ b= t=
    if read -r l </proc/$s/stat; then l=${l##*) }; set -- $l; b=${20}; fi
    while read -r c d k <&4; do
      if [ -n "$t" ]; then kill -USR1 $t; wait $t; t=; fi
      [ "$c" = f ] || exit 0
      ( trap 'kill $z 2>/dev/null; exit 0' USR1
        while :; do
          read -r u _ </proc/uptime
          n=$(( ${u%.*} * 100 + 1${u#*.} - 100 ))
          [ $n -lt $d ] || break
          r=$(( d - n )); [ $r -le 25 ] || r=25
          sleep $(( r / 100 )).$(( r / 10 % 10 ))$(( r % 10 )) & z=$!
          wait $z
        done
        read -r l </proc/$s/stat || exit 0
        l=${l##*) }; set -- $l
        [ "$1" != Z ] && [ "${20}" = "$b" ] || exit 0
        kill -TERM 0; sleep "$k"; kill -KILL 0 ) &
      t=$!
    done
    if [ -n "$t" ]; then kill -USR1 $t; fi
    kill -TERM 0; sleep "$g"; kill -KILL 0 ) </dev/null >/dev/null 2>&1 3<&- & )
exec 4<&-
read -r _ <&3 || exit 125; exec 3<&-; exec "$@"`
	shell = "/bin/sh"
)

// New returns a Runner for mode: "auto" uses systemd when it runs (the system
// bus as root, the user bus otherwise; /run/systemd/system exists and the
// manager answers) and process groups otherwise; "system" and "user" force
// that bus and fail if it does not answer; "off" uses process groups. The
// user bus is found through DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR.
func New(ctx context.Context, mode string, log *slog.Logger) (Runner, error) {
	return newRunner(ctx, mode, log, os.Getenv)
}

func newRunner(ctx context.Context, mode string, log *slog.Logger, getenv func(string) string) (*runner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{log: log, now: time.Now, leftovers: map[*output]struct{}{}}
	var err error
	switch mode {
	case ModeOff:
		r.ctl = pgroupController{}
	case ModeSystem, ModeUser:
		r.ctl, err = newSystemdController(ctx, mode, getenv, log)
		if err != nil {
			return nil, err
		}
	case ModeAuto, "":
		bus := ModeUser
		if os.Geteuid() == 0 {
			bus = ModeSystem
		}
		if _, serr := os.Stat("/run/systemd/system"); serr != nil {
			log.Info("systemd is not running; hooks run in process groups")
			r.ctl = pgroupController{}
			break
		}
		r.ctl, err = newSystemdController(ctx, bus, getenv, log)
		if err != nil {
			log.Warn("systemd does not answer; hooks run in process groups", "bus", bus, "err", err)
			r.ctl = pgroupController{}
		}
	default:
		return nil, fmt.Errorf("hook runner: unknown systemd mode %q (want auto, system, user or off)", mode)
	}
	log.Debug("hook runner ready", "controller", r.ctl.name())
	return r, nil
}

// controller places a held child under control and kills its tree.
type controller interface {
	name() string
	// place puts the child pid, not yet running the script, under control.
	place(ctx context.Context, s Spec, pid int) (tree, error)
	close() error
}

// tree is the process tree of one running script.
type tree interface {
	unit() string
	// kill ends every process of the tree: TERM, KILL after grace, and
	// returns once they are gone or it gave up.
	kill(grace time.Duration) error
}

type runner struct {
	log *slog.Logger
	ctl controller
	now func() time.Time

	mu sync.Mutex
	// closed and leftovers are guarded by mu. leftovers are outputs of
	// finished scripts still held open by something they left running.
	closed    bool
	leftovers map[*output]struct{}
	wg        sync.WaitGroup // leftover drainers
}

var _ Runner = (*runner)(nil)

// Close stops reading leftover output and disconnects from systemd. It does
// not touch running scopes.
func (r *runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for o := range r.leftovers {
		o.closeFiles()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return r.ctl.close()
}

// Run runs one script; see the package doc.
func (r *runner) Run(ctx context.Context, s Spec) (Result, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return Result{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", s.Path, err)
	}
	if !filepath.IsAbs(s.Path) {
		return Result{}, fmt.Errorf("run %s: script path is not absolute", s.Path)
	}
	if fi, err := os.Stat(s.Path); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", s.Path, err)
	} else if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("run %s: not a regular file", s.Path)
	}
	if s.KillGrace <= 0 {
		s.KillGrace = defaultKillGrace
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = defaultDrainTimeout
	}

	env := s.Env
	var cred *syscall.Credential
	if s.User != "" {
		u, err := lookupUser(ctx, s.User)
		if err != nil {
			return Result{}, fmt.Errorf("run %s as %s: %w", s.Path, s.User, err)
		}
		cred = u.credential()
		env = u.env(s.Env)
	}

	started := r.now()
	p, err := r.start(s, env, cred)
	if err != nil {
		return Result{}, fmt.Errorf("run %s: %w", s.Path, err)
	}
	t, err := r.ctl.place(ctx, s, p.cmd.Process.Pid)
	if err != nil {
		p.abort()
		return Result{}, fmt.Errorf("run %s: %w", s.Path, err)
	}
	if err := ctx.Err(); err != nil {
		// Cancelled while the scope was made: never run the script. The
		// scope ends with the trampoline.
		p.abort()
		return Result{}, fmt.Errorf("run %s: %w", s.Path, err)
	}
	res := Result{Unit: t.unit()}
	defer p.disarm() // every path below ends the script first
	if s.Fence != nil {
		p.fence = s.Fence
		if err := s.Fence.add(p); err != nil { // armed before the script runs
			r.log.Warn("arm hook watchdog's fence; only the agent enforces it", "path", s.Path, "err", err)
		}
	}
	if err := p.release(); err != nil {
		// The child is gone already; its status says why.
		r.log.Warn("release hook script", "path", s.Path, "err", err)
	}

	var timeout <-chan time.Time
	if s.Timeout > 0 {
		tm := time.NewTimer(s.Timeout)
		defer tm.Stop()
		timeout = tm.C
	}
	state := r.wait(ctx, s, p, timeout, &res)
	if state == nil {
		// Disarm first: the watchdog ignores TERM and would hold the
		// unit's stop for the whole grace.
		p.disarm()
		if err := t.kill(r.stopGrace(s)); err != nil {
			r.log.Warn("kill hook process tree", "path", s.Path, "unit", res.Unit, "err", err)
			p.killGroup() // last resort: at least the script and its group
		}
		state = <-p.exited
		res.ExitCode, res.Signal = exitStatus(state)
	} else {
		p.disarm()
		res.ExitCode, res.Signal = exitStatus(state)
		if res.Signal != "" && s.Fence != nil && s.Fence.Passed(r.now()) {
			// Signalled with its fence passed: the watchdog stopped it while
			// the agent could not (stopped, frozen). Under systemd, stop
			// what of its unit left the process group, too.
			res.Fenced = true
			if err := t.kill(0); err != nil {
				r.log.Warn("stop fenced hook unit", "path", s.Path, "unit", res.Unit, "err", err)
			}
		}
	}

	// Drain: the script is gone; wait a little for EOF from anything it left.
	drain := time.NewTimer(s.DrainTimeout)
	defer drain.Stop()
	select {
	case <-p.out.done:
	case <-drain.C:
	case <-ctx.Done():
	}
	if p.out.detach() {
		res.LeftoverOutput = true
		r.keepDraining(p.out)
	} else {
		p.out.closeFiles()
	}
	res.Duration = r.now().Sub(started)
	return res, nil
}

// wait waits for the script's end, its timeout, ctx or its fence, and
// returns its state if it exited, recording in res why not otherwise.
func (r *runner) wait(ctx context.Context, s Spec, p *process, timeout <-chan time.Time, res *Result) *os.ProcessState {
	var fence *time.Timer
	defer func() {
		if fence != nil {
			fence.Stop()
		}
	}()
	for {
		var fenced <-chan time.Time
		var moved <-chan struct{}
		if s.Fence != nil {
			at, ch := s.Fence.watch()
			if fence == nil {
				fence = time.NewTimer(at.Sub(r.now()))
			} else {
				fence.Reset(at.Sub(r.now()))
			}
			fenced, moved = fence.C, ch
		}
		select {
		case state := <-p.exited:
			return state
		case <-timeout:
			res.TimedOut = true
		case <-ctx.Done():
			res.Canceled = true
		case <-fenced:
			res.Fenced = true
		case <-moved:
			continue // Reset above (Go 1.23 timers: no stale tick to drain)
		}
		break
	}
	// The script may have exited at the same moment, or long before while
	// the agent was stopped (after SIGCONT the timers can fire before the
	// reaper runs).
	if p.ended() {
		res.TimedOut, res.Canceled, res.Fenced = false, false, false
		return <-p.exited
	}
	select {
	case state := <-p.exited:
		res.TimedOut, res.Canceled, res.Fenced = false, false, false
		return state
	default:
	}
	if res.Canceled && s.Fence != nil && s.Fence.Passed(r.now()) {
		// The agent's own fence (or an abort at the lease's end) cancelled
		// ctx: report the fence, which is what stopped it.
		res.Canceled, res.Fenced = false, true
	}
	return nil
}

// stopGrace is the TERM→KILL grace of a stop: Spec.KillGrace, but never
// past the fence's deadline plus its grace.
func (r *runner) stopGrace(s Spec) time.Duration {
	g := s.KillGrace
	if s.Fence != nil {
		g = min(g, max(s.Fence.Deadline().Add(s.Fence.Grace()).Sub(r.now()), 0))
	}
	return g
}

// keepDraining hands a detached output to the runner, which reads and
// discards it until EOF or Close.
func (r *runner) keepDraining(o *output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		o.closeFiles()
		return
	}
	r.leftovers[o] = struct{}{}
	r.wg.Go(func() {
		<-o.done
		o.closeFiles()
		r.mu.Lock()
		delete(r.leftovers, o)
		r.mu.Unlock()
	})
}

// process is a started, held child.
type process struct {
	cmd    *exec.Cmd
	hold   *os.File // write end of the hold pipe; nil once released
	deadMu sync.Mutex
	dead   *os.File // write end of the dead-man pipe; closed by disarm
	fence  *Fence   // the fence its watchdog is armed with, if any
	out    *output
	exited chan *os.ProcessState // receives once
}

// start forks the trampoline, held before exec, with its output pipes.
func (r *runner) start(s Spec, env []string, cred *syscall.Credential) (*process, error) {
	holdR, holdW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		holdR.Close()
		holdW.Close()
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		holdR.Close()
		holdW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	deadR, deadW, err := os.Pipe()
	if err != nil {
		holdR.Close()
		holdW.Close()
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	grace := strconv.Itoa(int((s.KillGrace + time.Second - 1) / time.Second))
	cmd := &exec.Cmd{
		Path:       shell,
		Args:       append([]string{"sh", "-c", trampoline, "sh", grace, s.Path}, s.Args...),
		Env:        env,
		Dir:        s.Dir,
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{holdR, deadR},
		SysProcAttr: &syscall.SysProcAttr{
			// Own group: timeouts kill it without systemd, and a terminal's
			// signals to the agent's group never reach hooks.
			Setpgid:    true,
			Credential: cred,
		},
	}
	if env == nil {
		cmd.Env = []string{} // nil would mean the agent's environment
	}
	err = cmd.Start()
	// The child has its copies; the parent keeps only the read ends and the
	// hold pipe's write end.
	holdR.Close()
	deadR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		holdW.Close()
		deadW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	p := &process{
		cmd:    cmd,
		hold:   holdW,
		dead:   deadW,
		out:    newOutput(s.Output, r.now, outR, errR),
		exited: make(chan *os.ProcessState, 1),
	}
	go func() { // ends when the child exits; Run always receives
		_ = cmd.Wait() // the status is in ProcessState
		p.exited <- cmd.ProcessState
	}()
	return p, nil
}

// release lets the held trampoline exec the script.
func (p *process) release() error {
	_, err := p.hold.Write([]byte{'\n'})
	if cerr := p.hold.Close(); err == nil {
		err = cerr
	}
	return err
}

// disarm tells the dead-man watchdog that the agent is alive and done
// with the script: it exits without killing anything. Idempotent.
func (p *process) disarm() {
	if p.fence != nil {
		p.fence.remove(p)
	}
	p.deadMu.Lock()
	defer p.deadMu.Unlock()
	if p.dead == nil {
		return
	}
	p.dead.Write([]byte{'\n'})
	p.dead.Close()
	p.dead = nil
}

// arm tells the watchdog the fence's deadline (see the trampoline).
func (p *process) arm(deadline time.Time, grace time.Duration) error {
	p.deadMu.Lock()
	defer p.deadMu.Unlock()
	if p.dead == nil {
		return nil
	}
	line, err := fenceLine(deadline, grace, time.Now())
	if err != nil {
		return err
	}
	if _, err := p.dead.WriteString(line); err != nil {
		return fmt.Errorf("write to watchdog: %w", err)
	}
	return nil
}

// abort ends a child that never ran the script, and its output readers.
func (p *process) abort() {
	p.disarm()
	p.hold.Close() // the trampoline exits 125 without exec
	p.killGroup()
	<-p.exited
	p.out.closeFiles()
	<-p.out.done
}

// ended reports whether the script has exited: a zombie, or reaped by
// start's goroutine, which may not have sent on p.exited yet.
func (p *process) ended() bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		// Gone (ENOENT), or being reaped while we read (ESRCH).
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
	}
	st, _, ok := parseStat(b)
	return ok && (st == 'Z' || st == 'X')
}

func (p *process) killGroup() {
	_ = unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
}

// exitStatus turns a wait status into ExitCode and Signal.
func exitStatus(st *os.ProcessState) (int, string) {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return -1, unix.SignalName(ws.Signal())
	}
	return st.ExitCode(), ""
}
