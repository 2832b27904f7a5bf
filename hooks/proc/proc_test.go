package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/drover-dev/drover/internal/testenv/systemdtest"
	"golang.org/x/sys/unix"
)

// waitFor is how long tests wait for a condition before failing.
const waitFor = 30 * time.Second

// impl is one Runner implementation under test.
type impl struct {
	name    string
	systemd bool
	// setup runs once per implementation and returns a factory of runners.
	setup func(t testing.TB) func(t testing.TB) *runner
}

func impls() []impl {
	return []impl{
		{name: "systemd-user", systemd: true, setup: func(t testing.TB) func(testing.TB) *runner {
			env := systemdtest.Start(t)
			return func(t testing.TB) *runner { return newTestRunner(t, ModeUser, env) }
		}},
		{name: "process-group", setup: func(testing.TB) func(testing.TB) *runner {
			return func(t testing.TB) *runner { return newTestRunner(t, ModeOff, nil) }
		}},
	}
}

func newTestRunner(t testing.TB, mode string, env []string) *runner {
	t.Helper()
	getenv := func(k string) string {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := newRunner(context.Background(), mode, log, getenv)
	if err != nil {
		t.Fatalf("newRunner(%s): %v", mode, err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// lines collects Output.
type lines struct {
	mu sync.Mutex
	l  []Line
}

func (c *lines) add(l Line) {
	c.mu.Lock()
	c.l = append(c.l, l)
	c.mu.Unlock()
}

func (c *lines) all() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.l)
}

func (c *lines) stream(name string) []string {
	var out []string
	for _, l := range c.all() {
		if l.Stream == name {
			out = append(out, l.Text)
		}
	}
	return out
}

func writeScript(t testing.TB, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitGone waits until none of pids is alive.
func waitGone(t testing.TB, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still alive %v after the hook ended", left, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPid reads a pid a script wrote to dir/name.
func readPid(t testing.TB, dir, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("script did not record pid %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", name, err)
	}
	return pid
}

func killOnCleanup(t testing.TB, pid int) {
	t.Cleanup(func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		waitGone(t, pid)
	})
}

// waitUnitGone waits until systemd no longer knows unit.
func waitUnitGone(t testing.TB, r *runner, unit string) {
	t.Helper()
	c, ok := r.ctl.(*systemdController)
	if !ok {
		t.Fatalf("runner is %s, not systemd", r.ctl.name())
	}
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := c.connection(ctx)
		var st string
		if err == nil {
			var us []sddbus.UnitStatus
			us, err = conn.ListUnitsByNamesContext(ctx, []string{unit})
			if err == nil && len(us) == 1 {
				st = us[0].LoadState + "/" + us[0].ActiveState
				if us[0].LoadState == "not-found" {
					cancel()
					return
				}
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("unit %s still there (%s, err %v) %v after the hook ended", unit, st, err, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const treeScript = `#!/bin/sh
# A grandchild that ignores TERM, and its child (a great-grandchild).
d="$1"
sh -c 'trap "" TERM; sleep 300 & echo $! >"$1/ggc.tmp"; mv "$1/ggc.tmp" "$1/ggc"; wait' sh "$d" &
echo $! >"$d/gc.tmp"; mv "$d/gc.tmp" "$d/gc"
# One that leaves the process group, as daemonising tools do.
setsid sleep 300 &
echo $! >"$d/esc"
while [ ! -e "$d/ggc" ]; do sleep 0.01; done
echo ready
wait
`

func TestRunner(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			newR := im.setup(t)
			r := newR(t)
			t.Run("ExitStatus", func(t *testing.T) { testExitStatus(t, r) })
			t.Run("EnvExact", func(t *testing.T) { testEnvExact(t, r) })
			t.Run("DirAndArgs", func(t *testing.T) { testDirAndArgs(t, r) })
			t.Run("Output", func(t *testing.T) { testOutput(t, r) })
			t.Run("TimeoutKillsTree", func(t *testing.T) { testKillsTree(t, r, im.systemd, false) })
			t.Run("CancelKillsTree", func(t *testing.T) { testKillsTree(t, r, im.systemd, true) })
			t.Run("BackgroundHoldsStdout", func(t *testing.T) { testBackground(t, newR(t), im.systemd) })
			t.Run("LeftoverKeepsWriting", func(t *testing.T) { testLeftoverWrites(t, r) })
			t.Run("RunAs", func(t *testing.T) { testRunAs(t, r) })
			t.Run("StaleUnit", func(t *testing.T) { testStaleUnit(t, r, im.systemd) })
			t.Run("Errors", func(t *testing.T) { testErrors(t, newR(t)) })
		})
	}
}

func testExitStatus(t *testing.T, r *runner) {
	cases := []struct {
		name     string
		body     string
		mode     os.FileMode
		wantCode int
		wantSig  string
	}{
		{"zero", "#!/bin/sh\nexit 0\n", 0o755, 0, ""},
		{"three", "#!/bin/sh\nexit 3\n", 0o755, 3, ""},
		{"killed", "#!/bin/sh\nkill -KILL $$\n", 0o755, -1, "SIGKILL"},
		{"terminated", "#!/bin/sh\nkill -TERM $$\n", 0o755, -1, "SIGTERM"},
		{"bash", "#!/bin/bash\n[[ -n $BASH_VERSION ]] && exit 7\n", 0o755, 7, ""},
		// No shebang: the shell runs it, as it would from a terminal.
		{"no shebang", "exit 4\n", 0o755, 4, ""},
		// Not executable: fails like a shell would; callers chmod +x first.
		{"not executable", "#!/bin/sh\nexit 0\n", 0o644, 126, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeScript(t, dir, "s", tc.body, tc.mode)
			res, err := r.Run(t.Context(), Spec{Unit: "drover-test-exit", Path: p, Dir: dir})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tc.wantCode || res.Signal != tc.wantSig {
				t.Errorf("exit = %d %q, want %d %q", res.ExitCode, res.Signal, tc.wantCode, tc.wantSig)
			}
			if res.TimedOut || res.Canceled || res.LeftoverOutput {
				t.Errorf("result %+v: want no timeout, cancel or leftover", res)
			}
		})
	}
}

func testEnvExact(t *testing.T, r *runner) {
	dir := t.TempDir()
	env := []string{
		"A=1",
		"SHELLY=$(touch injected) `touch injected2` ; touch injected3 | & * ? ~ 'q' \"dq\" \\",
		"MULTI=line one\nline two",
		"EMPTY=",
		"SPACES=  leading and trailing  ",
		"LIFECYCLE_EVENT=AfterInstall",
	}
	var out lines
	// env itself is the "script": what it prints is exactly what it got.
	res, err := r.Run(t.Context(), Spec{Path: "/usr/bin/env", Args: []string{"-0"}, Dir: dir, Env: env, Output: out.add})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("env exited %d: %v", res.ExitCode, out.stream("stderr"))
	}
	got := strings.Split(strings.TrimSuffix(strings.Join(out.stream("stdout"), "\n"), "\x00"), "\x00")
	want := append(slices.Clone(env), "PWD="+dir) // the trampoline shell sets PWD
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("environment:\n got %q\nwant %q", got, want)
	}
	for _, f := range []string{"injected", "injected2", "injected3"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("an environment value was run by a shell: %s exists", f)
		}
	}
}

func testDirAndArgs(t *testing.T, r *runner) {
	dir := t.TempDir()
	p := writeScript(t, dir, "s", "#!/bin/sh\npwd -P\nfor a do printf '[%s]\\n' \"$a\"; done\n", 0o755)
	var out lines
	args := []string{"a b", "$HOME", "*", "", "-e"}
	res, err := r.Run(t.Context(), Spec{Path: p, Args: args, Dir: dir, Output: out.add})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{real, "[a b]", "[$HOME]", "[*]", "[]", "[-e]"}
	if got := out.stream("stdout"); !slices.Equal(got, want) {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func testOutput(t *testing.T, r *runner) {
	dir := t.TempDir()
	p := writeScript(t, dir, "s", `#!/bin/sh
echo out1
echo err1 >&2
echo out2
head -c 70000 /dev/zero | tr '\0' x; echo
head -c 65536 /dev/zero | tr '\0' y; echo
echo err2 >&2
printf 'last'
`, 0o755)
	var out lines
	before := time.Now()
	res, err := r.Run(t.Context(), Spec{Path: p, Dir: dir, Output: out.add})
	after := time.Now()
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	x := strings.Repeat("x", 70000)
	y := strings.Repeat("y", 65536)
	wantOut := []string{"out1", "out2", x[:65536], x[65536:], y, "last"}
	if got := out.stream("stdout"); !slices.Equal(got, wantOut) {
		t.Errorf("stdout lines (lengths) = %v, want %v", lens(got), lens(wantOut))
	}
	if got, want := out.stream("stderr"), []string{"err1", "err2"}; !slices.Equal(got, want) {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	all := out.all()
	for i, l := range all {
		if l.Stream != "stdout" && l.Stream != "stderr" {
			t.Errorf("line %d: stream %q", i, l.Stream)
		}
		if l.Time.Before(before) || l.Time.After(after) {
			t.Errorf("line %d: time %v outside the run [%v, %v]", i, l.Time, before, after)
		}
		if i > 0 && l.Time.Before(all[i-1].Time) {
			t.Errorf("line %d: time %v before the previous line's %v", i, l.Time, all[i-1].Time)
		}
	}
}

func lens(ss []string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}

func testKillsTree(t *testing.T, r *runner, systemd, cancel bool) {
	dir := t.TempDir()
	p := writeScript(t, dir, "tree", treeScript, 0o755)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	spec := Spec{Unit: "drover-test-tree", Path: p, Args: []string{dir}, Dir: dir,
		KillGrace: 300 * time.Millisecond, DrainTimeout: 200 * time.Millisecond}
	var out lines
	if cancel {
		// Cancel as soon as the whole tree exists.
		spec.Output = func(l Line) {
			out.add(l)
			if l.Text == "ready" {
				stop()
			}
		}
	} else {
		spec.Output = out.add
		spec.Timeout = 3 * time.Second
	}
	res, err := r.Run(ctx, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	gc, ggc := readPid(t, dir, "gc"), readPid(t, dir, "ggc")
	killOnCleanup(t, gc) // only if the test fails
	killOnCleanup(t, ggc)
	if !slices.Contains(out.stream("stdout"), "ready") {
		t.Fatalf("the tree was not complete when the hook was killed: %+v", out.all())
	}
	if res.TimedOut == cancel || res.Canceled != cancel {
		t.Errorf("TimedOut=%v Canceled=%v, want %v %v", res.TimedOut, res.Canceled, !cancel, cancel)
	}
	if res.ExitCode != -1 || res.Signal == "" {
		t.Errorf("exit = %d %q, want killed by a signal", res.ExitCode, res.Signal)
	}
	esc := readPid(t, dir, "esc")
	killOnCleanup(t, esc)
	// The grandchild and great-grandchild ignore TERM: KILL after the grace.
	waitGone(t, gc, ggc)
	if systemd {
		// The scope holds the process that left the group, too.
		waitGone(t, esc)
		if res.Unit == "" {
			t.Fatal("no unit in the result")
		}
		waitUnitGone(t, r, res.Unit)
	}
}

func testBackground(t *testing.T, r *runner, systemd bool) {
	dir := t.TempDir()
	p := writeScript(t, dir, "s", "#!/bin/sh\nsleep 300 &\necho $! >\"$1/bg\"\necho started\n", 0o755)
	var out lines
	res, err := r.Run(t.Context(), Spec{Unit: "drover-test-bg", Path: p, Args: []string{dir}, Dir: dir,
		DrainTimeout: 200 * time.Millisecond, Output: out.add})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	bg := readPid(t, dir, "bg")
	killOnCleanup(t, bg)
	// Run returned while the background process, which holds stdout, runs.
	if !alive(bg) {
		t.Fatalf("background process %d is gone", bg)
	}
	if !res.LeftoverOutput {
		t.Errorf("LeftoverOutput = false, want true (sleep holds stdout)")
	}
	if res.ExitCode != 0 || res.TimedOut || res.Canceled {
		t.Errorf("result %+v, want a clean exit", res)
	}
	if got := out.stream("stdout"); !slices.Equal(got, []string{"started"}) {
		t.Errorf("stdout = %q", got)
	}
	if systemd {
		cg, err := os.ReadFile("/proc/" + strconv.Itoa(bg) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		own, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cg), "/"+res.Unit+"\n") {
			t.Errorf("background process cgroup:\n%s\nwant it in the hook's scope %s", cg, res.Unit)
		}
		if string(cg) == string(own) {
			t.Errorf("background process is in the test's cgroup:\n%s", cg)
		}
	}
	// The agent goes away; what the hook left running stays.
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !alive(bg) {
		t.Errorf("background process %d died with the runner", bg)
	}
	waitNoReaders(t)
}

// waitNoReaders checks that no output reader goroutine is left.
func waitNoReaders(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "proc.(*output).read") && !strings.Contains(stacks, "proc.(*runner).keepDraining") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLeftoverWrites: a process left behind that writes a lot to stdout after
// the event ended is neither blocked nor killed by SIGPIPE, and its output
// never reaches Output after Run returned.
func testLeftoverWrites(t *testing.T, r *runner) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := writeScript(t, dir, "s", `#!/bin/sh
d="$1"
( read _ <"$d/go"; head -c 300000 /dev/zero; echo $? >"$d/wrote.tmp"; mv "$d/wrote.tmp" "$d/wrote" ) &
echo $! >"$d/bg"
`, 0o755)
	var mu sync.Mutex
	returned := false
	late := 0
	res, err := r.Run(t.Context(), Spec{Path: p, Args: []string{dir}, Dir: dir, DrainTimeout: 100 * time.Millisecond,
		Output: func(Line) {
			mu.Lock()
			if returned {
				late++
			}
			mu.Unlock()
		}})
	mu.Lock()
	returned = true
	mu.Unlock()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	killOnCleanup(t, readPid(t, dir, "bg"))
	if !res.LeftoverOutput {
		t.Fatalf("LeftoverOutput = false")
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("go\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	var b []byte
	for {
		if b, err = os.ReadFile(filepath.Join(dir, "wrote")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leftover process did not finish writing within %v", waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := strings.TrimSpace(string(b)); got != "0" {
		t.Errorf("the leftover's write exited %s, want 0 (not SIGPIPE or EPIPE)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if late != 0 {
		t.Errorf("Output called %d times after Run returned", late)
	}
}

func testRunAs(t *testing.T, r *runner) {
	if os.Geteuid() != 0 {
		t.Skip("runas needs root")
	}
	out, err := exec.Command("getent", "passwd", "nobody").Output()
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	pw := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(pw) != 7 {
		t.Fatalf("getent passwd nobody = %q", out)
	}
	// nobody must be able to enter the directory and run the script.
	dir, err := os.MkdirTemp("", "drover-runas-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeScript(t, dir, "s", `#!/bin/sh
echo "HOME=$HOME"
echo "USER=$USER"
echo "LOGNAME=$LOGNAME"
echo "SHELL=$SHELL"
echo "PATH=$PATH"
echo "KEEP=$KEEP"
echo "uid=$(id -u) gid=$(id -g)"
`, 0o755)
	for _, who := range []string{"nobody", pw[2]} {
		t.Run(who, func(t *testing.T) {
			var lo lines
			res, err := r.Run(t.Context(), Spec{Path: p, Dir: dir, User: who, Output: lo.add,
				Env: []string{"HOME=/root", "PATH=/agent/bin", "USER=root", "KEEP=kept"}})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("Run: %+v, %v; stderr %q", res, err, lo.stream("stderr"))
			}
			want := []string{
				"HOME=" + pw[5], "USER=nobody", "LOGNAME=nobody", "SHELL=" + pw[6],
				"PATH=" + userPath, "KEEP=kept", "uid=" + pw[2] + " gid=" + pw[3],
			}
			if got := lo.stream("stdout"); !slices.Equal(got, want) {
				t.Errorf("stdout = %q, want %q", got, want)
			}
		})
	}
}

func testStaleUnit(t *testing.T, r *runner, systemd bool) {
	dir := t.TempDir()
	// The first run leaves a process in its unit, so the name stays taken.
	first := writeScript(t, dir, "first", "#!/bin/sh\nsleep 300 >/dev/null 2>&1 &\necho $! >\"$1/bg\"\n", 0o755)
	second := writeScript(t, dir, "second", "#!/bin/sh\ncat /proc/self/cgroup\n", 0o755)
	const unit = "drover-test-stale-AfterInstall-d-0123456789ab"
	res1, err := r.Run(t.Context(), Spec{Unit: unit, Path: first, Args: []string{dir}, Dir: dir})
	if err != nil {
		t.Fatalf("first Run: %v", err)
	}
	bg := readPid(t, dir, "bg")
	killOnCleanup(t, bg)
	var out lines
	res2, err := r.Run(t.Context(), Spec{Unit: unit, Path: second, Dir: dir, Output: out.add})
	if err != nil {
		t.Fatalf("second Run with a taken unit name: %v", err)
	}
	if res2.ExitCode != 0 {
		t.Errorf("second run exited %d", res2.ExitCode)
	}
	if !alive(bg) {
		t.Errorf("the first run's process %d was killed by the second run", bg)
	}
	if !systemd {
		if res1.Unit != "" || res2.Unit != "" {
			t.Errorf("units %q %q without systemd", res1.Unit, res2.Unit)
		}
		return
	}
	if res1.Unit != unit+".scope" {
		t.Errorf("first unit = %q, want %q", res1.Unit, unit+".scope")
	}
	if res2.Unit == res1.Unit || !strings.HasPrefix(res2.Unit, unit+"-") || !strings.HasSuffix(res2.Unit, ".scope") {
		t.Errorf("second unit = %q, want a fresh %s-*.scope", res2.Unit, unit)
	}
	if cg := strings.Join(out.stream("stdout"), "\n"); !strings.Contains(cg, "/"+res2.Unit+"\n") && !strings.HasSuffix(cg, "/"+res2.Unit) {
		t.Errorf("second script's cgroup:\n%s\nwant its scope %s", cg, res2.Unit)
	}
}

func testErrors(t *testing.T, r *runner) {
	dir := t.TempDir()
	ok := writeScript(t, dir, "ok", "#!/bin/sh\n", 0o755)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		spec Spec
	}{
		{"relative path", t.Context(), Spec{Path: "ok", Dir: dir}},
		{"missing script", t.Context(), Spec{Path: filepath.Join(dir, "missing"), Dir: dir}},
		{"directory", t.Context(), Spec{Path: dir, Dir: dir}},
		{"missing dir", t.Context(), Spec{Path: ok, Dir: filepath.Join(dir, "missing")}},
		{"unknown user", t.Context(), Spec{Path: ok, Dir: dir, User: "drover-no-such-user"}},
		{"canceled before start", canceled, Spec{Path: ok, Dir: dir}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Run(tc.ctx, tc.spec); err == nil {
				t.Errorf("Run(%+v) succeeded, want an error", tc.spec)
			}
		})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(t.Context(), Spec{Path: ok, Dir: dir}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestNewModes(t *testing.T) {
	cases := []struct {
		mode    string
		env     []string
		wantErr bool
		want    string
	}{
		{ModeOff, nil, false, "process-group"},
		{"bogus", nil, true, ""},
		{ModeUser, []string{"XDG_RUNTIME_DIR=/nonexistent", "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus"}, true, ""},
		{ModeUser, nil, true, ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s%v", tc.mode, tc.env), func(t *testing.T) {
			getenv := func(k string) string {
				for _, kv := range tc.env {
					if v, ok := strings.CutPrefix(kv, k+"="); ok {
						return v
					}
				}
				return ""
			}
			r, err := newRunner(t.Context(), tc.mode, nil, getenv)
			if (err != nil) != tc.wantErr {
				t.Fatalf("newRunner(%q) error = %v, want error %v", tc.mode, err, tc.wantErr)
			}
			if err == nil {
				defer r.Close()
				if r.ctl.name() != tc.want {
					t.Errorf("controller = %s, want %s", r.ctl.name(), tc.want)
				}
			}
		})
	}
	t.Run("auto with a user manager", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("as root auto uses the system bus")
		}
		env := systemdtest.Start(t)
		r := newTestRunner(t, ModeAuto, env)
		if r.ctl.name() != "systemd-user" {
			t.Errorf("controller = %s", r.ctl.name())
		}
	})
}

func TestUnitName(t *testing.T) {
	long := strings.Repeat("a", 300)
	cases := []struct{ in, want string }{
		{"drover-hello-web-AfterInstall-d-0123456789ab", "drover-hello-web-AfterInstall-d-0123456789ab"},
		{"drover-my app/x@y", `drover-my\x20app\x2fx\x40y`},
		{".hidden", `\x2ehidden`},
		{"", "drover-hook"},
		{"ünï", `\xc3\xbcn\xc3\xaf`},
	}
	for _, tc := range cases {
		if got := unitName(tc.in); got != tc.want {
			t.Errorf("unitName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	a, b := unitName(long), unitName(long+"b")
	if len(a) > maxUnitBase || len(b) > maxUnitBase || a == b {
		t.Errorf("long names: %d %d bytes, equal %v", len(a), len(b), a == b)
	}
}

func FuzzUnitName(f *testing.F) {
	for _, s := range []string{"drover-a-b-c", "x/y z", strings.Repeat("é", 200), ".", `\x41`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := unitName(s)
		if n == "" || len(n) > maxUnitBase || n[0] == '.' {
			t.Fatalf("unitName(%q) = %q", s, n)
		}
		for i := 0; i < len(n); i++ {
			c := n[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(`:_-.\`, c) >= 0) {
				t.Fatalf("unitName(%q) = %q has byte %q", s, n, c)
			}
		}
		if n != unitName(s) {
			t.Fatal("not deterministic")
		}
	})
}

func TestParsePasswdLine(t *testing.T) {
	cases := []struct {
		line string
		ok   bool
		want account
	}{
		{"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin", true, account{name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent", shell: "/usr/sbin/nologin"}},
		{"app:x:1000:1000::/home/app:", true, account{name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/sh"}},
		{"bad:x:notanumber:1::/:/bin/sh", false, account{}},
		{"short:x:1:1", false, account{}},
		{"+nis::::::", false, account{}},
		{"", false, account{}},
	}
	for _, tc := range cases {
		a, ok := parsePasswdLine(tc.line)
		if ok != tc.ok {
			t.Errorf("parsePasswdLine(%q) ok = %v", tc.line, ok)
			continue
		}
		if ok && (a.name != tc.want.name || a.uid != tc.want.uid || a.gid != tc.want.gid || a.home != tc.want.home || a.shell != tc.want.shell) {
			t.Errorf("parsePasswdLine(%q) = %+v, want %+v", tc.line, *a, tc.want)
		}
	}
}

func FuzzParsePasswdLine(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/bash")
	f.Add("a:b:c:d:e:f:g")
	f.Fuzz(func(t *testing.T, line string) {
		a, ok := parsePasswdLine(line)
		if !ok {
			return
		}
		if a.name == "" || a.shell == "" || strings.Contains(a.name, ":") {
			t.Fatalf("parsePasswdLine(%q) = %+v", line, *a)
		}
	})
}

func TestAccountEnv(t *testing.T) {
	a := &account{name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/bash"}
	got := a.env([]string{"HOME=/root", "A=1", "PATH=/x", "USERX=2"})
	want := []string{"A=1", "USERX=2", "HOME=/home/app", "LOGNAME=app", "PATH=" + userPath, "SHELL=/bin/bash", "USER=app"}
	if !slices.Equal(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
	root := &account{name: "root", home: "/root", shell: "/bin/sh"}
	if got := root.env(nil); !slices.Contains(got, "PATH="+rootPath) {
		t.Errorf("root env = %q, want PATH=%s", got, rootPath)
	}
}

func BenchmarkRunNoop(b *testing.B) {
	for _, im := range impls() {
		b.Run(im.name, func(b *testing.B) {
			r := im.setup(b)(b)
			dir := b.TempDir()
			i := 0
			for b.Loop() {
				i++
				// A unit name per run, as the lifecycle gives each script.
				spec := Spec{Unit: "drover-bench-noop-" + strconv.Itoa(i), Path: "/bin/true", Dir: dir}
				res, err := r.Run(context.Background(), spec)
				if err != nil || res.ExitCode != 0 {
					b.Fatalf("Run: %+v, %v", res, err)
				}
			}
		})
	}
}

// Guard: the child is never started with the agent's environment by accident.
func TestNilEnvIsEmpty(t *testing.T) {
	r := newTestRunner(t, ModeOff, nil)
	t.Setenv("DROVER_LEAK_CHECK", "leaked")
	var out lines
	res, err := r.Run(t.Context(), Spec{Path: "/usr/bin/env", Dir: t.TempDir(), Output: out.add})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %+v %v", res, err)
	}
	for _, l := range out.stream("stdout") {
		if strings.HasPrefix(l, "DROVER_LEAK_CHECK=") {
			t.Errorf("agent environment leaked: %s", l)
		}
	}
}

func TestParseStat(t *testing.T) {
	cases := []struct {
		in    string
		state byte
		pgrp  int
		ok    bool
	}{
		{"123 (sleep) S 1 120 120 0 -1", 'S', 120, true},
		{"7 (a) b) (c) Z 1 7 7 0", 'Z', 7, true},
		{"9 (x y) R 1 notanumber", 0, 0, false},
		{"garbage", 0, 0, false},
	}
	for _, tc := range cases {
		state, pgrp, ok := parseStat([]byte(tc.in))
		if state != tc.state || pgrp != tc.pgrp || ok != tc.ok {
			t.Errorf("parseStat(%q) = %q %d %v, want %q %d %v", tc.in, state, pgrp, ok, tc.state, tc.pgrp, tc.ok)
		}
	}
}

// FuzzParseStat: a process names itself (comm), so /proc/PID/stat is outside input.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("123 (sleep) S 1 120 120 0 -1"))
	f.Add([]byte("1 ()) ) Z 0 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		state, _, ok := parseStat(b)
		if ok && state == ' ' {
			t.Fatalf("parseStat(%q): blank state", b)
		}
	})
}
