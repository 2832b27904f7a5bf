// Package systemdtest starts a real, private systemd user manager for a test
// (DESIGN.md §13).
//
// Start runs `/lib/systemd/systemd --user` as root with its own 0700
// XDG_RUNTIME_DIR and returns the environment a client needs to reach it over
// D-Bus. Several managers may run at once, from the same or different test
// binaries (`go test ./...` runs packages in parallel):
//
//   - Each manager runs in a fresh cgroup of its own, created below the test
//     process's cgroup before systemd execs. This is not optional: a root
//     `systemd --user` that finds itself in the root cgroup treats the whole
//     tree as its own and moves every process of the machine, PID 1 included,
//     into its init.scope. In its own cgroup it only ever touches that subtree,
//     so managers cannot see or disturb each other or anything else.
//   - Each manager has its own runtime directory, hence its own bus, private
//     socket and transient unit files.
//   - The one shared thing is /run/systemd/system, which clients (and package
//     maintainer scripts) read to decide whether systemd runs. It is created
//     if missing and removed again by the last test that uses it, and only if
//     a test made it. The reference count is a shared flock(2) held by every
//     running manager's test on a fixed file under os.TempDir(); creation and
//     removal happen under a second, exclusive lock. flock is dropped by the
//     kernel when a process dies, so a crashed test binary never leaves a
//     count behind.
//
// A per-binary global lock held for the test's life would also have been
// correct, but it serialises every systemd test of the repository behind one
// another; the cgroup isolation above makes that unnecessary.
package systemdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

const (
	systemdBinary = "/lib/systemd/systemd"
	runSystemd    = "/run/systemd/system"
	cgroupRoot    = "/sys/fs/cgroup"

	// startTimeout bounds how long the manager may take until it answers on
	// its bus; stopTimeout how long it may take to exit after SIGTERM.
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Start starts a systemd user manager for the test and stops it, and
// everything it runs, in t.Cleanup. It returns XDG_RUNTIME_DIR=... and
// DBUS_SESSION_BUS_ADDRESS=... for the clients; the manager answers on that bus
// when Start returns. It skips the test when not root or when systemd or the
// D-Bus user session are not installed.
func Start(t testing.TB) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("systemdtest: needs root (to start a systemd user manager in a cgroup of its own)")
	}
	if _, err := os.Stat(systemdBinary); err != nil {
		t.Skipf("systemdtest: systemd is not installed (%v); apt-get install systemd", err)
	}
	if !haveUserBus() {
		t.Skip("systemdtest: the D-Bus user session is not installed; apt-get install dbus dbus-user-session")
	}

	holdRunSystemd(t)
	cg := newCgroup(t)

	// A short path: the bus socket lives in it and unix socket paths are
	// limited to 108 bytes, which a t.TempDir() under a long test name exceeds.
	xdg, err := os.MkdirTemp("", "drover-sd-")
	if err != nil {
		t.Fatalf("systemdtest: create runtime dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(xdg) })
	if err := os.Chmod(xdg, 0o700); err != nil {
		t.Fatalf("systemdtest: chmod runtime dir: %v", err)
	}

	logPath := filepath.Join(t.TempDir(), "systemd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("systemdtest: create log file: %v", err)
	}
	defer logFile.Close()

	home := "/root"
	if h, err := os.UserHomeDir(); err == nil {
		home = h
	}
	// The manager must be in its cgroup before it runs at all: a tiny shell
	// writes its own pid into the new cgroup(s), then execs systemd in place.
	args := []string{"-c", `for f do echo $$ >"$f" || exit 1; done; exec "$0" --user --log-target=console --log-level=info`, systemdBinary}
	args = append(args, cg.procsFiles()...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"USER=root",
		"LOGNAME=root",
		"XDG_RUNTIME_DIR=" + xdg,
	}
	// A file, not a pipe: processes the manager starts may inherit it and
	// must not keep Wait from returning.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("systemdtest: start %s --user: %v", systemdBinary, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	dumpLog := func() {
		if b, err := os.ReadFile(logPath); err == nil && len(b) > 0 {
			t.Logf("systemdtest: systemd --user output:\n%s", b)
		}
	}
	t.Cleanup(func() {
		stop(t, cmd.Process, exited)
		if t.Failed() {
			dumpLog()
		}
	})

	busPath := filepath.Join(xdg, "bus")
	addr := "unix:path=" + busPath
	if err := waitReady(addr, exited); err != nil {
		select {
		case <-exited:
			err = fmt.Errorf("%w (systemd exited: %v)", err, waitErr)
		default:
		}
		dumpLog()
		t.Fatalf("systemdtest: user manager not ready: %v", err)
	}
	return []string{
		"XDG_RUNTIME_DIR=" + xdg,
		"DBUS_SESSION_BUS_ADDRESS=" + addr,
	}
}

// haveUserBus reports whether a D-Bus daemon for the user session is
// installed (dbus-user-session provides the dbus.socket user unit).
func haveUserBus() bool {
	for _, p := range []string{"/usr/lib/systemd/user/dbus.socket", "/lib/systemd/user/dbus.socket"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// waitReady waits until the systemd manager answers on the bus at addr, the
// manager exits, or startTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = ping(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("manager exited before it answered on %s: %w", addr, last)
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s within %v: %w", addr, startTimeout, last)
		case <-tick.C:
		}
	}
}

// ping asks the manager on the bus at addr for its version.
func ping(ctx context.Context, addr string) error {
	path := strings.TrimPrefix(addr, "unix:path=")
	if _, err := os.Stat(path); err != nil {
		return err
	}
	conn, err := sddbus.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.Dial(addr, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.GetManagerProperty("Version")
	return err
}

// stop sends SIGTERM to the manager (it stops all its units, then exits) and
// waits for it; SIGKILL if it does not exit in time.
func stop(t testing.TB, p *os.Process, exited <-chan struct{}) {
	t.Helper()
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(stopTimeout):
	}
	t.Errorf("systemdtest: user manager did not exit within %v of SIGTERM; killing it", stopTimeout)
	_ = p.Kill()
	<-exited
}

// holdRunSystemd makes sure /run/systemd/system exists for the test's life
// and removes it after the last user, if a test created it. See the package
// doc for the locking scheme.
func holdRunSystemd(t testing.TB) {
	t.Helper()
	dir := os.TempDir()
	markerPath := filepath.Join(dir, "drover-systemdtest.created")
	mu := lockFile(t, filepath.Join(dir, "drover-systemdtest.lock"), unix.LOCK_EX)
	defer mu.Close() // unlocks

	users := lockFile(t, filepath.Join(dir, "drover-systemdtest.users"), unix.LOCK_SH)
	if _, err := os.Stat(runSystemd); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(runSystemd, 0o755); err != nil {
			users.Close()
			t.Fatalf("systemdtest: create %s: %v", runSystemd, err)
		}
		id, err := dirID(runSystemd)
		if err == nil {
			err = os.WriteFile(markerPath, []byte(id), 0o644)
		}
		if err != nil {
			users.Close()
			_ = os.Remove(runSystemd)
			t.Fatalf("systemdtest: record that %s was created: %v", runSystemd, err)
		}
	} else if err != nil {
		users.Close()
		t.Fatalf("systemdtest: stat %s: %v", runSystemd, err)
	}

	t.Cleanup(func() {
		mu := lockFile(t, filepath.Join(dir, "drover-systemdtest.lock"), unix.LOCK_EX)
		defer mu.Close()
		users.Close() // drop this test's shared lock
		last, err := os.OpenFile(users.Name(), os.O_RDWR, 0)
		if err != nil {
			t.Errorf("systemdtest: open %s: %v", users.Name(), err)
			return
		}
		defer last.Close()
		if unix.Flock(int(last.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			return // another test still uses it
		}
		want, err := os.ReadFile(markerPath)
		if err != nil {
			return // not made by a test
		}
		// Remove only the directory a test made, not one a real systemd made
		// after a crashed test left its marker behind.
		if got, err := dirID(runSystemd); err == nil && got == string(want) {
			if err := os.Remove(runSystemd); err != nil {
				t.Errorf("systemdtest: remove %s: %v", runSystemd, err)
			}
		}
		_ = os.Remove(markerPath)
	})
}

// dirID identifies one incarnation of a directory.
func dirID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d:%d.%d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// lockFile opens (creating) path and flocks it with how, blocking.
func lockFile(t testing.TB, path string, how int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("systemdtest: open lock %s: %v", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("systemdtest: lock %s: %v", path, err)
	}
	return f
}

// cgroup is the private cgroup subtree of one manager: rel is its path
// relative to each hierarchy's mount point; tracked are the mount points of
// the hierarchies systemd tracks processes in (the unified one, or in hybrid
// mode name=systemd plus the unified one).
type cgroup struct {
	rel     string
	tracked []string
}

func newCgroup(t testing.TB) *cgroup {
	t.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatalf("systemdtest: read own cgroup: %v", err)
	}
	var v1Path, v2Path string
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2Path = parts[2]
		case parts[1] == "name=systemd":
			v1Path = parts[2]
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("drover-systemdtest-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))

	cg := &cgroup{}
	switch {
	case exists(filepath.Join(cgroupRoot, "cgroup.controllers")): // unified
		cg.rel = filepath.Join(v2Path, name)
		cg.tracked = []string{cgroupRoot}
	case exists(filepath.Join(cgroupRoot, "systemd", "cgroup.procs")): // hybrid or legacy
		cg.rel = filepath.Join(v1Path, name)
		cg.tracked = []string{filepath.Join(cgroupRoot, "systemd")}
		if exists(filepath.Join(cgroupRoot, "unified", "cgroup.controllers")) {
			cg.tracked = append(cg.tracked, filepath.Join(cgroupRoot, "unified"))
		}
	default:
		t.Skipf("systemdtest: no cgroup hierarchy for systemd under %s", cgroupRoot)
	}
	t.Cleanup(func() { cg.remove(t) })
	for _, root := range cg.tracked {
		if err := os.Mkdir(filepath.Join(root, cg.rel), 0o755); err != nil {
			t.Fatalf("systemdtest: create cgroup: %v", err)
		}
	}
	return cg
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (cg *cgroup) procsFiles() []string {
	var files []string
	for _, root := range cg.tracked {
		files = append(files, filepath.Join(root, cg.rel, "cgroup.procs"))
	}
	return files
}

// remove kills whatever still runs in the subtree and removes it from every
// hierarchy (in hybrid mode systemd also creates it in the v1 controllers).
func (cg *cgroup) remove(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(stopTimeout)
	for {
		pids := cg.pids()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("systemdtest: processes %v still in cgroup %s", pids, cg.rel)
			break
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond) // poll: the kernel gives no event here
	}
	mounts, _ := os.ReadDir(cgroupRoot)
	roots := []string{cgroupRoot}
	for _, m := range mounts {
		if m.IsDir() {
			roots = append(roots, filepath.Join(cgroupRoot, m.Name()))
		}
	}
	for _, root := range roots {
		top := filepath.Join(root, cg.rel)
		if !exists(filepath.Join(top, "cgroup.procs")) {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("systemdtest: remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// pids lists the processes in the subtree.
func (cg *cgroup) pids() []int {
	var pids []int
	for _, root := range cg.tracked {
		_ = filepath.WalkDir(filepath.Join(root, cg.rel), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for f := range strings.FieldsSeq(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}
