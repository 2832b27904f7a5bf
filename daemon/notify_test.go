package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket listens on a real unixgram socket and returns a function
// that reads the next datagram.
func notifySocket(t *testing.T) func() string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", p)
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notify datagram: %v", err)
		}
		return string(buf[:n])
	}
}

func TestSystemdNotifierMessages(t *testing.T) {
	next := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	var errs []error
	n := NewSystemdNotifier(func(err error) { errs = append(errs, err) })
	if got := n.WatchdogInterval(); got != 2*time.Second {
		t.Errorf("watchdog interval = %v, want half of WatchdogSec (2s)", got)
	}
	n.Ready("hello-web: r1 idle")
	if got := next(); got != "READY=1\nSTATUS=hello-web: r1 idle" {
		t.Errorf("ready = %q", got)
	}
	n.Status("hello-web: r2 running AfterInstall")
	if got := next(); got != "STATUS=hello-web: r2 running AfterInstall" {
		t.Errorf("status = %q", got)
	}
	n.Reloading()
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reloading = %q", got)
	}
	n.Watchdog()
	if got := next(); got != "WATCHDOG=1" {
		t.Errorf("watchdog = %q", got)
	}
	n.Stopping()
	if got := next(); got != "STOPPING=1" {
		t.Errorf("stopping = %q", got)
	}
	if len(errs) > 0 {
		t.Errorf("send errors: %v", errs)
	}
}

func TestSystemdNotifierWatchdogForAnotherPID(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", "1")
	n := NewSystemdNotifier(nil)
	if got := n.WatchdogInterval(); got != 0 {
		t.Errorf("watchdog interval = %v for another process's watchdog, want 0", got)
	}
	n.Ready("x") // no socket: a no-op, not a panic
}
