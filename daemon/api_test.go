package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks"
	"github.com/prometheus/client_golang/prometheus"
)

// testBackend is the agent side of the API in these tests, which check the
// HTTP layer and the client over a real unix socket; the agent's own tests
// drive a real agent.
type testBackend struct {
	mu      sync.Mutex
	paused  map[string]bool
	removed []string // host@app of every RemoveMember that was not refused
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

func (b *testBackend) History(app string) ([]DeploymentSummary, error) {
	if app != "hello" {
		return nil, fmt.Errorf("application %q: %w", app, ErrNotFound)
	}
	return []DeploymentSummary{{ID: "d-000000000001", Seq: 1, Host: "h1", Revision: "r1", Status: hooks.StatusSucceeded}}, nil
}

func (b *testBackend) GroupHistory(group string) ([]DeploymentSummary, error) {
	if group != "web" {
		return nil, fmt.Errorf("group %q: %w", group, ErrNotFound)
	}
	return b.History("hello")
}

func (b *testBackend) AppDeployment(app, which string) (*hooks.Record, error) {
	if app != "hello" || which != "latest" && which != "d-000000000001" {
		return nil, fmt.Errorf("deployment %s of %s: %w", which, app, ErrNotFound)
	}
	return &hooks.Record{ID: "d-000000000001", Application: app, Group: "web", Status: hooks.StatusSucceeded}, nil
}

func (b *testBackend) CopyLog(_ context.Context, group, id string, w io.Writer, _ bool) error {
	_, err := io.WriteString(w, "2026-11-26T00:00:00.000Z [stdout]hello\n")
	return err
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

func (b *testBackend) Members() Members {
	return Members{Host: "h1", Members: []Member{{Name: "h1", State: "alive"}, {Name: "h2", State: "dead"}},
		Apps: []AppRoster{{App: "hello", Group: "web", Epoch: 3, Voters: []string{"h1", "h2"},
			Hosts: []RosterHost{{Host: "h1", Voter: true, Epoch: 3}, {Host: "h2", Voter: true, Epoch: 3}}}}}
}

func (b *testBackend) RemoveMember(_ context.Context, host, app string) ([]AppRoster, error) {
	switch {
	case app != "" && app != "hello":
		return nil, fmt.Errorf("application %q: %w", app, ErrNotFound)
	case host == "h1":
		return nil, fmt.Errorf("%s is this host: %w", host, ErrRefused)
	case host != "h2":
		return nil, fmt.Errorf("%s is not a voter: %w", host, ErrNotFound)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removed = append(b.removed, host+"@"+app)
	return b.Members().Apps, nil
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
	if hs, err := c.History(ctx, "hello"); err != nil || len(hs) != 1 || hs[0].ID != "d-000000000001" {
		t.Errorf("history: %+v, %v", hs, err)
	}
	if _, err := c.History(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("history of an unknown app: %v", err)
	}
	log.Reset()
	if id, err := c.AppDeploymentLog(ctx, "hello", "latest", false, &log); err != nil || id != "d-000000000001" || !strings.Contains(log.String(), "[stdout]hello") {
		t.Errorf("log of the latest deployment: id %q, %q, err %v", id, log.String(), err)
	}
	if rec, err := c.AppDeployment(ctx, "hello", "latest"); err != nil || rec.ID != "d-000000000001" {
		t.Errorf("latest deployment: %+v, %v", rec, err)
	}
	var group []DeploymentSummary
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/web", &group); err != nil || len(group) != 1 {
		t.Errorf("GET /v1/deployments/web: %+v, %v", group, err)
	}
}

// TestAPIReadOnlyListenerHasHistoryNotLogs: the metrics listener, open to
// the network, serves the history (no script output) but neither records
// nor logs, which may hold what scripts print.
func TestAPIReadOnlyListenerHasHistoryNotLogs(t *testing.T) {
	b := &testBackend{paused: map[string]bool{}}
	ro := httptest.NewServer(metricsHandler(b, prometheus.NewRegistry()))
	defer ro.Close()
	for path, want := range map[string]int{
		"/v1/apps/hello/history":                 http.StatusOK,
		"/v1/apps/nope/history":                  http.StatusNotFound,
		"/v1/apps/hello/deployments/latest":      http.StatusNotFound,
		"/v1/apps/hello/deployments/latest/log":  http.StatusNotFound,
		"/v1/deployments/web":                    http.StatusNotFound,
		"/v1/deployments/web/d-000000000001/log": http.StatusNotFound,
	} {
		resp, err := http.Get(ro.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the metrics listener: %s, want %d", path, resp.Status, want)
		}
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

func TestAPIMembers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "drover.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{paused: map[string]bool{}}
	srv := serve(ln, mutatingHandler(b), slog.New(slog.DiscardHandler))
	defer srv.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(sock)

	m, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Host != "h1" || len(m.Members) != 2 || len(m.Apps) != 1 || m.Apps[0].Epoch != 3 || len(m.Apps[0].Hosts) != 2 {
		t.Errorf("members: %+v", m)
	}
	for _, tc := range []struct {
		host, app string
		want      string // error text; "" for success
	}{
		{host: "h2", app: ""},
		{host: "h2", app: "hello"},
		{host: "h1", want: "agent: h1 is this host: refused"},
		{host: "h9", want: "agent: h9 is not a voter: not found"},
		{host: "h2", app: "nope", want: `agent: application "nope": not found`},
		{host: "a b/c", want: "agent: a b/c is not a voter: not found"}, // escaped in the path
	} {
		before, err := c.RemoveMember(ctx, tc.host, tc.app)
		switch {
		case tc.want == "" && (err != nil || len(before) != 1 || before[0].Epoch != 3):
			t.Errorf("remove %s (app %q): %+v, %v", tc.host, tc.app, before, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("remove %s (app %q): err %v, want %q", tc.host, tc.app, err, tc.want)
		}
	}
	if want := []string{"h2@", "h2@hello"}; !slices.Equal(b.removed, want) {
		t.Errorf("removals reaching the agent: %q, want %q", b.removed, want)
	}

	// The network listener is read-only: it lists, never removes.
	ro := httptest.NewServer(metricsHandler(b, prometheus.NewRegistry()))
	defer ro.Close()
	resp, err := http.Get(ro.URL + "/v1/members")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/members on the metrics listener: %s", resp.Status)
	}
	resp, err = http.Post(ro.URL+"/v1/members/h2/remove", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Errorf("POST remove on the read-only listener: %s, want a refusal", resp.Status)
	}
	if len(b.removed) != 2 {
		t.Errorf("the read-only listener removed a member: %q", b.removed)
	}
}
