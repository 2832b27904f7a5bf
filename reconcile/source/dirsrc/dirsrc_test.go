package dirsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

// publish lays a release out as in git: manifest.yaml and bundle/. The
// bundle directory is built aside and renamed in, the manifest written to
// a temp file and renamed over: the way release tooling publishes, and
// what drops inotify watches.
func publish(t *testing.T, dir string, r sourcetest.Release) {
	t.Helper()
	m := r.Manifest()
	m.Bundle.Path = "bundle"
	staging := filepath.Join(dir, ".bundle.new")
	sourcetest.WriteTree(t, staging, r.Files)
	os.RemoveAll(filepath.Join(dir, ".bundle.old"))
	os.Rename(filepath.Join(dir, "bundle"), filepath.Join(dir, ".bundle.old"))
	if err := os.Rename(staging, filepath.Join(dir, "bundle")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, ".bundle.old"))
	writeManifest(t, dir, string(manifest.Format(m)))
}

func writeManifest(t *testing.T, dir, text string) {
	t.Helper()
	tmp := filepath.Join(dir, ".manifest.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
}

func TestContractDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello-web")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, dir string) source.Source {
		s, err := New(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sourcetest.Run(t, sourcetest.Harness{
		New:             func(t *testing.T) source.Source { return open(t, dir) },
		Publish:         func(t *testing.T, r sourcetest.Release) { publish(t, dir, r) },
		PublishManifest: func(t *testing.T, text string) { writeManifest(t, dir, text) },
		EmptyErr:        source.ErrNoManifest,
		RemoveManifest: func(t *testing.T) {
			if err := os.Remove(filepath.Join(dir, manifest.FileName)); err != nil {
				t.Fatal(err)
			}
		},
		PartialErr: source.ErrNoManifest,
		Misconfigured: func(t *testing.T) []sourcetest.Misconfig {
			parent := filepath.Dir(dir)
			return []sourcetest.Misconfig{
				{Name: "misspelled directory", Source: open(t, filepath.Join(parent, "helo-web")), Is: source.ErrNotFound,
					Says: []string{"directory " + filepath.Join(parent, "helo-web") + " does not exist", "did you mean " + dir + "?"}},
				{Name: "parent directory", Source: open(t, parent), Is: source.ErrNotFound,
					Says: []string{"no manifest.yaml in " + parent, "did you mean " + dir + "?"}},
				{Name: "bundle directory", Source: open(t, filepath.Join(dir, "bundle")), Is: source.ErrNotFound,
					Says: []string{"no manifest.yaml in " + filepath.Join(dir, "bundle"), "did you mean " + dir + "?"}},
				{Name: "a file", Source: open(t, filepath.Join(dir, manifest.FileName)), Is: source.ErrNotFound,
					Says: []string{filepath.Join(dir, manifest.FileName) + " is not a directory"}},
			}
		},
		BundleFile: func(_ source.Revision, rel string) string { return filepath.Join(dir, "bundle", rel) },
	})
}

// TestWatch: a release published by renames reaches Run's callback through
// fsnotify, though the poll interval is an hour.
func TestWatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hello-web")
	os.Mkdir(dir, 0o755)
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := source.NewPoller(s, source.PollerConfig{App: "hello-web", Interval: time.Hour, RetryMax: time.Hour})
	changes := make(chan source.Revision, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, func(r source.Revision) { changes <- r })
	}()
	t.Cleanup(func() { cancel(); <-done })

	for i, label := range []string{"one", "two", "three"} {
		// Watch pokes once its watches are set, so a second poll means
		// they are.
		if i == 0 {
			waitFor(t, func() bool { return p.Status().Polls[source.ResultEmpty] >= 2 })
		}
		publish(t, dir, sourcetest.Release{Label: label, Files: map[string]string{"appspec.yml": label, "sub/x.sh": label}})
		deadline := time.After(10 * time.Second)
		for got := ""; got != label; {
			select {
			case r := <-changes:
				got = r.Label
			case <-deadline:
				t.Fatalf("release %s not seen through fsnotify", label)
			}
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
