package daemon

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/syncbuf"
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

// TestAgentNotifierFailuresFromManyGoroutines: the agent's own notifier is
// used by its status loop, the READY after the join and every reload, at
// once; its failure log is rate-limited without a data race (go test -race)
// and says so once, not once per failure.
func TestAgentNotifierFailuresFromManyGoroutines(t *testing.T) {
	f := &agentFixture{dir: t.TempDir()}
	f.releases, f.root, f.cfgPath = filepath.Join(f.dir, "releases"), filepath.Join(f.dir, "root"), filepath.Join(f.dir, "drover.yaml")
	if err := os.WriteFile(f.cfgPath, []byte(f.config("")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens.sock"))
	var logs syncbuf.Buffer
	// Notifier nil: the agent builds the systemd notifier itself.
	a, err := New(context.Background(), Options{ConfigPath: f.cfgPath, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			for range 10 {
				a.notifier.Status("from the test")
			}
		})
	}
	close(start)
	wg.Wait()
	if n := strings.Count(logs.String(), "systemd notification failed"); n != 1 {
		t.Errorf("%d failure warnings, want 1 (rate-limited):\n%s", n, logs.String())
	}
}
