package hooks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDeploymentIDIsStableAndShaped(t *testing.T) {
	a := DeploymentID("0123456789abcdef", "hello-web", "web-prod", "abc123", 1)
	if a != DeploymentID("0123456789abcdef", "hello-web", "web-prod", "abc123", 1) {
		t.Fatal("same inputs gave different IDs")
	}
	if !regexp.MustCompile(`^d-[0-9a-f]{12}$`).MatchString(a) {
		t.Fatalf("ID %q is not d- and 12 hex digits", a)
	}
	for _, other := range []string{
		DeploymentID("0123456789abcdef", "hello-web", "web-prod", "abc123", 2),
		DeploymentID("0123456789abcdef", "hello-web", "web-prod", "abc124", 1),
		DeploymentID("0123456789abcdef", "hello-web", "web-dev", "abc123", 1),
		DeploymentID("0123456789abcdef", "hello-we", "bweb-prod", "abc123", 1), // field boundaries matter
		DeploymentID("fedcba9876543210", "hello-web", "web-prod", "abc123", 1), // another state directory
	} {
		if other == a {
			t.Errorf("different inputs gave the same ID %s", a)
		}
	}
	if g := DeploymentGroupID("a", "b"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(g) {
		t.Errorf("group ID %q is not UUID-shaped", g)
	}
}

// TestStoreIDAndLocalDeploymentIDs: a state directory keeps its random ID
// across reopenings, two fresh ones differ, and so do the IDs of the same
// bundle deployed into each (a reinstalled host never reuses an ID).
func TestStoreIDAndLocalDeploymentIDs(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == "" || a.ID() != again.ID() {
		t.Fatalf("store ID %q, reopened %q: want one non-empty ID", a.ID(), again.ID())
	}
	var ids []string
	for range 2 {
		e, _ := newTestEngine(t)
		rec, err := e.Deploy(t.Context(), Request{Application: "app", Group: "g", Revision: "r1",
			Fetch: dirBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\n", "f": "x"})})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	if ids[0] == ids[1] {
		t.Errorf("two fresh state directories gave the same deployment ID %s", ids[0])
	}
	// A corrupted ID file is replaced, not fatal.
	if err := os.WriteFile(filepath.Join(dir, "deployments", storeIDFile), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := OpenStore(dir); err != nil || c.ID() == a.ID() || len(c.ID()) != 16 {
		t.Errorf("after corruption: ID %q, %v; want a new one", c.ID(), err)
	}
}

func TestStoreLockIsExclusive(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock("web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock("web"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	other, err := st.Lock("db")
	if err != nil {
		t.Fatalf("another group's lock: %v", err)
	}
	other()
	unlock()
	again, err := st.Lock("web")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

func TestStoreRejectsUnsafeNames(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"", "..", "../etc", "a/b", ".hidden", "sp ace"} {
		if _, err := st.Lock(g); err == nil {
			t.Errorf("Lock(%q) accepted an unsafe group name", g)
		}
	}
}

func TestStoreRecoverMarksInterruptedDeploymentsFailed(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	running := &Record{ID: "d-000000000001", Application: "app", Group: "g", Seq: 1, Status: StatusRunning, Started: t0,
		Events: []EventRecord{
			{Name: "BeforeInstall", Status: EventSucceeded, Started: t0, Finished: t0},
			{Name: "AfterInstall", Status: EventRunning, Started: t0},
		}}
	done := &Record{ID: "d-000000000002", Application: "app", Group: "h", Seq: 1, Status: StatusSucceeded, Started: t0, Finished: t0}
	for _, r := range []*Record{running, done} {
		if err := st.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(time.Minute)
	got, err := st.Recover(now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != running.ID {
		t.Fatalf("recovered %v, want only %s", got, running.ID)
	}
	r, err := st.Get("g", running.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusFailed || r.FailedEvent != "AfterInstall" || !r.Finished.Equal(now) {
		t.Errorf("recovered record: status %s, failed event %q, finished %v", r.Status, r.FailedEvent, r.Finished)
	}
	if r.Events[1].Status != EventFailed {
		t.Errorf("interrupted event status %s, want failed", r.Events[1].Status)
	}
	if again, err := st.Recover(now); err != nil || len(again) != 0 {
		t.Errorf("second Recover changed %d records (err %v), want none", len(again), err)
	}
	if r, _ := st.Get("h", done.ID); r.Status != StatusSucceeded {
		t.Errorf("a finished deployment was changed to %s", r.Status)
	}
}

func TestStorePruneKeepsArchivesAndLastSuccessful(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const group = "g"
	var ids []string
	for i := 1; i <= 10; i++ {
		r := &Record{ID: fmt.Sprintf("d-%012d", i), Application: "app", Group: group, Seq: i, Status: StatusFailed}
		if i == 2 {
			r.Status = StatusSucceeded
		}
		if err := st.Put(r); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(st.BundleDir(group, r.ID), 0o755); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := os.MkdirAll(st.groupDir(group), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.setLastSuccessful(group, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := st.setPendingCleanups(group, []string{ids[0]}); err != nil {
		t.Fatal(err)
	}
	if err := st.Prune(group, 5, 7); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	for i, id := range ids {
		seq := i + 1
		wantBundle := seq == 2 || seq >= 7 // last successful, plus the 4 newest others (5 archives in all)
		wantRecord := seq == 1 || seq == 2 || seq >= 4
		if got := exists(st.BundleDir(group, id)); got != wantBundle {
			t.Errorf("seq %d: bundle kept = %v, want %v", seq, got, wantBundle)
		}
		if _, err := st.Get(group, id); (err == nil) != wantRecord {
			t.Errorf("seq %d: record kept = %v, want %v", seq, err == nil, wantRecord)
		}
	}
}

func TestStoreFindRevision(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(seq int, revID string, status Status, withBundle bool) string {
		r := &Record{ID: fmt.Sprintf("d-%012d", seq), Group: "g", Seq: seq, RevisionID: revID, Revision: "label-" + revID, Status: status}
		if err := st.Put(r); err != nil {
			t.Fatal(err)
		}
		if withBundle {
			if err := os.MkdirAll(st.BundleDir("g", r.ID), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return r.ID
	}
	put(1, "aaa", StatusSucceeded, true)
	want := put(2, "aaa", StatusSucceeded, true)
	put(3, "aaa", StatusFailed, true)     // failed: not a source for a rollback
	put(4, "bbb", StatusSucceeded, false) // archive pruned
	got, err := st.FindRevision("g", "aaa")
	if err != nil || got.ID != want {
		t.Errorf("FindRevision(aaa) = %v, %v; want %s", got, err, want)
	}
	if _, err := st.FindRevision("g", "bbb"); !errors.Is(err, ErrNoDeployment) {
		t.Errorf("FindRevision of a pruned archive: %v, want ErrNoDeployment", err)
	}
}

func TestAgentEnvDropsSystemdVariables(t *testing.T) {
	got := AgentEnv([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=1", "WATCHDOG_PID=2", "LISTEN_FDS=1", "HOME=/root"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("agentEnv = %q", got)
	}
}
