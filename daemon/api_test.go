package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBackend is the agent side of the API in these tests, which check the
// HTTP layer and the client over a real unix socket; the agent's own tests
// drive a real agent.
type testBackend struct {
	mu     sync.Mutex
	paused map[string]bool
}

func (b *testBackend) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{Host: "h1", Version: "test", Apps: []AppStatus{{Name: "hello", Group: "web", Paused: b.paused["hello"],
		Hosts: []HostStatus{{Host: "h1", Revision: "r1", Phase: "idle", Reachable: true}}}}}
}

func (b *testBackend) DeploymentRecord(group, id string) (any, error) {
	if id != "d-000000000001" {
		return nil, fmt.Errorf("deployment %s: %w", id, ErrNotFound)
	}
	return map[string]string{"id": id, "group": group}, nil
}

func (b *testBackend) DeploymentLog(group, id string) (io.ReadCloser, error) {
	if id != "d-000000000001" {
		return nil, fmt.Errorf("deployment %s: %w", id, ErrNotFound)
	}
	return io.NopCloser(strings.NewReader("2026-11-26T00:00:00.000Z [stdout]hello\n")), nil
}

func (b *testBackend) SetPaused(_ context.Context, app string, paused bool) error {
	if app != "hello" {
		return fmt.Errorf("application %q: %w", app, ErrNotFound)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.paused[app] = paused
	return nil
}

func TestAPIOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "drover.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{paused: map[string]bool{}}
	srv := serve(ln, mutatingHandler(b), slog.New(slog.DiscardHandler))
	defer srv.close()

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600 (root only)", fi.Mode().Perm())
	}
	if _, err := listenUnix(sock); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second listener on a live socket: %v, want a refusal", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(sock)
	if err := c.SetPaused(ctx, "hello", true); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Host != "h1" || len(st.Apps) != 1 || !st.Apps[0].Paused {
		t.Errorf("status after pause: %+v", st)
	}
	if err := c.SetPaused(ctx, "nope", true); err == nil || !strings.Contains(err.Error(), `application "nope": not found`) {
		t.Errorf("pause of an unknown app: %v", err)
	}
	var log strings.Builder
	if err := c.DeploymentLog(ctx, "web", "d-000000000001", &log); err != nil || !strings.Contains(log.String(), "[stdout]hello") {
		t.Errorf("log = %q, err %v", log.String(), err)
	}
	if err := c.DeploymentLog(ctx, "web", "d-000000000002", io.Discard); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("log of an unknown deployment: %v", err)
	}
}

func TestAPIStaleSocketIsReplaced(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "drover.sock")
	// A socket file nobody listens on, as a killed agent leaves it.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
}

func TestClientExplainsMissingAgent(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no agent listening") {
		t.Errorf("err = %v, want a hint that no agent runs", err)
	}
}
