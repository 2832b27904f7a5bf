package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/hooks/proc"
)

// newTestEngine builds an Engine over process groups (systemd "off"); the
// systemd variant of the runner is tested in hooks/proc.
func newTestEngine(t *testing.T) (*Engine, string) {
	t.Helper()
	ctx := context.Background()
	runner, err := proc.New(ctx, "off", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	e, err := NewEngine(Config{Store: st, Runner: runner, Root: root, Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	return e, root
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	writeFilesB(t, dir, files)
}

func writeFilesB(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func dirBundle(t *testing.T, files map[string]string) func(context.Context, string) error {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, files)
	return dirFetch(src)
}

func dirFetch(src string) func(context.Context, string) error {
	return func(ctx context.Context, dst string) error {
		return bundle.Unpack(ctx, src, dst, bundle.DefaultLimits)
	}
}

func TestEngineIgnoreApplicationStopFailures(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(map[bool]string{false: "fail", true: "ignore"}[ignore], func(t *testing.T) {
			e, _ := newTestEngine(t)
			ctx := context.Background()
			v1 := dirBundle(t, map[string]string{
				"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  ApplicationStop:\n    - location: stop.sh\n",
				"stop.sh":     "#!/bin/sh\necho cannot stop >&2\nexit 1\n",
			})
			v2 := dirBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\n"})
			if _, err := e.Deploy(ctx, Request{Application: "a", Group: "g", Revision: "v1", Fetch: v1}); err != nil {
				t.Fatal(err)
			}
			rec, err := e.Deploy(ctx, Request{Application: "a", Group: "g", Revision: "v2", Fetch: v2, IgnoreApplicationStopFailures: ignore})
			if ignore {
				if err != nil || rec.Status != StatusSucceeded {
					t.Fatalf("with the failure ignored: status %s, err %v", rec.Status, err)
				}
				return
			}
			var ee *EventError
			if !errors.As(err, &ee) || ee.Event != appspec.ApplicationStop {
				t.Fatalf("err = %v, want an ApplicationStop EventError", err)
			}
			if rec.Status != StatusFailed || rec.FailedEvent != "ApplicationStop" || !strings.Contains(rec.Error, "cannot stop") {
				t.Errorf("record: status %s, event %s, error %q", rec.Status, rec.FailedEvent, rec.Error)
			}
			last, err := e.Store().LastSuccessful("g")
			if err != nil || last.Revision != "v1" {
				t.Errorf("last successful = %v (err %v), want v1 still", last, err)
			}
		})
	}
}

func TestEngineMakesScriptsExecutable(t *testing.T) {
	e, root := newTestEngine(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: run.txt\n",
		"run.txt":     "#!/bin/sh\ntouch \"$DROVER_ROOT/ran\"\n",
	})
	rec, err := e.Deploy(context.Background(), Request{Application: "a", Group: "g", Revision: "v1",
		Fetch: func(ctx context.Context, dst string) error { return bundle.Unpack(ctx, src, dst, bundle.DefaultLimits) }})
	if err != nil {
		t.Fatalf("deploy: %v (%+v)", err, rec)
	}
	if _, err := os.Stat(filepath.Join(root, "ran")); err != nil {
		t.Errorf("script without x bit did not run: %v", err)
	}
}

func TestEngineOneDeploymentPerGroup(t *testing.T) {
	e, root := newTestEngine(t)
	ctx := context.Background()
	// The first deployment's script waits until the test has tried a
	// second deployment of the same group.
	gate := filepath.Join(root, "gate")
	started := filepath.Join(root, "started")
	fetch := dirBundle(t, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: wait.sh\n      timeout: 60\n",
		"wait.sh":     "#!/bin/sh\ntouch \"$DROVER_ROOT/started\"\nwhile [ ! -e \"$DROVER_ROOT/gate\" ]; do sleep 0.05; done\n",
	})
	var wg sync.WaitGroup
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, firstErr = e.Deploy(ctx, Request{Application: "a", Group: "g", Revision: "v1", Fetch: fetch})
	}()
	waitFor(t, func() bool { _, err := os.Stat(started); return err == nil })
	_, err := e.Deploy(ctx, Request{Application: "a", Group: "g", Revision: "v2", Fetch: fetch})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("second deployment of a busy group: %v, want ErrBusy", err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("first deployment: %v", firstErr)
	}
}

func TestEngineBadBundleFailsDownloadBundle(t *testing.T) {
	e, _ := newTestEngine(t)
	rec, err := e.Deploy(context.Background(), Request{Application: "a", Group: "g", Revision: "v1",
		Fetch: dirBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: windows\n"})})
	var ee *EventError
	if !errors.As(err, &ee) || ee.Event != appspec.DownloadBundle {
		t.Fatalf("err = %v, want a DownloadBundle failure", err)
	}
	if _, serr := os.Stat(e.Store().BundleDir("g", rec.ID)); !os.IsNotExist(serr) {
		t.Errorf("a bundle that failed validation became a revision archive (stat: %v)", serr)
	}
	if _, serr := os.Stat(filepath.Join(e.Store().DeploymentDir("g", rec.ID), "bundle.staging")); !os.IsNotExist(serr) {
		t.Errorf("staging directory left behind (stat: %v)", serr)
	}
}

func TestEngineSameIDTwiceKeepsBothRecords(t *testing.T) {
	e, _ := newTestEngine(t)
	fetch := dirBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\n"})
	ctx := context.Background()
	a, err := e.Deploy(ctx, Request{ID: "d-000000000042", Application: "a", Group: "g", Revision: "v1", Fetch: fetch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Deploy(ctx, Request{ID: "d-000000000042", Application: "a", Group: "g", Revision: "v1", Fetch: fetch})
	if err != nil {
		t.Fatalf("second deployment with the same ID: %v", err)
	}
	if a.ID == b.ID {
		t.Fatalf("both deployments recorded as %s", a.ID)
	}
	if _, err := e.Store().Get("g", a.ID); err != nil {
		t.Errorf("first record lost: %v", err)
	}
}

// TestEngineStopsAtTheFence: once the slot's fence has passed no event
// starts — the check an agent resumed after a pause makes before anything
// else — and a script the fence interrupts fails the deployment at its event.
func TestEngineStopsAtTheFence(t *testing.T) {
	e, root := newTestEngine(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: before.sh\n  AfterInstall:\n    - location: after.sh\n",
		"before.sh":   "#!/bin/sh\ntouch \"" + root + "/before-ran\"\n",
		"after.sh":    "#!/bin/sh\ntouch \"" + root + "/after-started\"\nsleep 300\n",
		"f.txt":       "x",
	})
	// A fence already passed: nothing runs, the first event fails.
	rec, err := e.Deploy(ctx, Request{Application: "app", Group: "g", Revision: "r1", Fetch: dirFetch(src),
		Fence: proc.NewFence(time.Now().Add(-time.Millisecond), 50*time.Millisecond)})
	if !errors.Is(err, ErrFenced) || rec.FailedEvent != string(appspec.Events[0]) {
		t.Fatalf("Deploy past the fence: %v (failed event %q), want ErrFenced at the first event", err, rec.FailedEvent)
	}
	if _, err := os.Stat(filepath.Join(root, "before-ran")); err == nil {
		t.Fatal("a script ran after the fence")
	}

	// A fence that passes while AfterInstall runs: it is stopped, and the
	// deployment fails there, not later.
	f := proc.NewFence(time.Now().Add(time.Hour), 50*time.Millisecond)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, err := os.Stat(filepath.Join(root, "after-started")); err == nil {
				f.Set(time.Now())
				return
			}
		}
	}()
	defer close(stop)
	rec, err = e.Deploy(ctx, Request{Application: "app", Group: "g", Revision: "r2", Fetch: dirFetch(src), Fence: f})
	if !errors.Is(err, ErrFenced) || rec.FailedEvent != string(appspec.AfterInstall) {
		t.Fatalf("Deploy fenced during AfterInstall: %v (failed event %q), want ErrFenced at AfterInstall", err, rec.FailedEvent)
	}
	if _, err := os.Stat(filepath.Join(root, "before-ran")); err != nil {
		t.Fatal("BeforeInstall did not run before the fence")
	}
}

// TestEngineStopScriptsOfLastInstalled: the stop events run the scripts of
// the last revision whose Install completed, even if that deployment failed
// later, as CodeDeploy's agent does (it records its "last successful
// install" right after Install); a failure before Install changes nothing.
func TestEngineStopScriptsOfLastInstalled(t *testing.T) {
	e, root := newTestEngine(t)
	ctx := context.Background()
	ran := filepath.Join(root, "stops")
	rev := func(name, failAt string) func(context.Context, string) error {
		spec := "version: 0.0\nos: linux\nhooks:\n  ApplicationStop:\n    - location: stop.sh\n"
		files := map[string]string{"stop.sh": "#!/bin/sh\necho " + name + " >> \"" + ran + "\"\n", "f.txt": name}
		if failAt != "" {
			spec += "  " + failAt + ":\n    - location: fail.sh\n"
			files["fail.sh"] = "#!/bin/sh\nexit 1\n"
		}
		files["appspec.yml"] = spec
		return dirBundle(t, files)
	}
	deploy := func(label string, fetch func(context.Context, string) error, wantOK bool) {
		t.Helper()
		_, err := e.Deploy(ctx, Request{Application: "app", Group: "g", Revision: label, Fetch: fetch})
		if (err == nil) != wantOK {
			t.Fatalf("deploy %s: %v", label, err)
		}
	}
	deploy("r1", rev("r1", ""), true)
	deploy("r2", rev("r2", "ValidateService"), false) // fails after Install
	deploy("r3", rev("r3", "BeforeInstall"), false)   // fails before Install
	deploy("r4", rev("r4", ""), true)
	b, err := os.ReadFile(ran)
	if err != nil {
		t.Fatal(err)
	}
	// r2 ran r1's stop; r3 ran r2's (r2 was installed); r4 ran r2's too
	// (r3 never reached Install).
	if got, want := strings.Fields(string(b)), []string{"r1", "r2", "r2"}; !slices.Equal(got, want) {
		t.Errorf("ApplicationStop scripts ran from %v, want %v", got, want)
	}
	last, err := e.Store().LastSuccessful("g")
	if err != nil || last.Revision != "r4" {
		t.Errorf("last successful %v (%v), want r4", last, err)
	}
}
