// Package sourcetest is the contract every source.Source implementation
// passes, run against a real backend (a git server, versitygw, a directory).
package sourcetest

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
)

// Release is a revision to publish: bundle files (names ending in .sh are
// executable) and a few manifest fields.
type Release struct {
	Label  string
	Files  map[string]string
	Paused bool
}

// Manifest returns the manifest for r with bundle left for the harness to
// fill in.
func (r Release) Manifest() *manifest.Manifest {
	return &manifest.Manifest{
		Version: 1, Application: "hello-web", Revision: r.Label,
		Deployment: manifest.Deployment{Strategy: manifest.OneAtATime, Rollback: manifest.RollbackOnFailure, Paused: r.Paused},
	}
}

// Harness adapts one implementation to the suite.
type Harness struct {
	// New returns a source reading the harness's store. Each call is a
	// fresh instance, as after a restart, sharing any on-disk cache.
	New func(t *testing.T) source.Source
	// Publish makes r the published revision, as users publish.
	Publish func(t *testing.T, r Release)
	// PublishManifest publishes raw manifest text, keeping the bundle.
	PublishManifest func(t *testing.T, text string)
	// EnvKeys are the hook environment keys every revision carries.
	EnvKeys []string
	// Secrets must never appear in String() or in error messages.
	Secrets []string
}

var (
	r1 = Release{Label: "r1", Files: map[string]string{
		"appspec.yml":      "version: 0.0\nos: linux\n",
		"scripts/start.sh": "#!/bin/sh\necho start\n",
		"www/index.html":   "<h1>one</h1>\n",
	}}
	r2 = Release{Label: "r2", Files: map[string]string{
		"appspec.yml":      "version: 0.0\nos: linux\n",
		"scripts/start.sh": "#!/bin/sh\necho start two\n",
		"www/about.html":   "<h1>two</h1>\n",
	}}
	lineRE = regexp.MustCompile(`manifest\.yaml[^:]*:\d+: `)
)

// Run runs the contract. Subtests share one store and run in order.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	src := h.New(t)
	checkSecrets(t, h, src.String())

	t.Run("empty store has no manifest", func(t *testing.T) {
		_, err := src.Desired(ctx)
		if !errors.Is(err, source.ErrNoManifest) {
			t.Fatalf("Desired on an empty store: got %v, want ErrNoManifest", err)
		}
	})

	var rev1 source.Revision
	t.Run("publish then fetch", func(t *testing.T) {
		h.Publish(t, r1)
		rev1 = desired(t, src)
		if rev1.ID == "" || rev1.Label != "r1" || rev1.Manifest == nil || rev1.Manifest.Application != "hello-web" {
			t.Fatalf("Desired: got %+v", rev1)
		}
		for _, k := range h.EnvKeys {
			if rev1.Env[k] == "" {
				t.Errorf("Env lacks %s: %v", k, rev1.Env)
			}
		}
		fetchAndCompare(t, src, rev1, r1.Files)
	})

	t.Run("idle poll is stable", func(t *testing.T) {
		again := desired(t, src)
		if again.ID != rev1.ID || again.Label != rev1.Label {
			t.Fatalf("second Desired: got %s/%s, want %s/%s", again.ID, again.Label, rev1.ID, rev1.Label)
		}
	})

	t.Run("restart gives the same revision", func(t *testing.T) {
		fresh := h.New(t)
		got := desired(t, fresh)
		if got.ID != rev1.ID {
			t.Fatalf("after restart: ID %s, want %s", got.ID, rev1.ID)
		}
		fetchAndCompare(t, fresh, got, r1.Files)
	})

	var rev2 source.Revision
	t.Run("new content is a new revision", func(t *testing.T) {
		h.Publish(t, r2)
		rev2 = desired(t, src)
		if rev2.ID == rev1.ID || rev2.Label != "r2" {
			t.Fatalf("after publishing r2: got %s/%s, was %s/%s", rev2.ID, rev2.Label, rev1.ID, rev1.Label)
		}
		fetchAndCompare(t, src, rev2, r2.Files)
	})

	t.Run("manifest change is seen", func(t *testing.T) {
		p := r2
		p.Paused = true
		h.Publish(t, p)
		got := desired(t, src)
		if !got.Manifest.Deployment.Paused {
			t.Fatalf("paused manifest not seen: %+v", got.Manifest.Deployment)
		}
		h.Publish(t, r2)
		if got := desired(t, src); got.Manifest.Deployment.Paused {
			t.Fatal("unpaused manifest not seen")
		}
	})

	t.Run("invalid manifest is an invalid-manifest error", func(t *testing.T) {
		h.PublishManifest(t, "version: 1\napplication: hello-web\ndeployment:\n  strategy: sideways\n")
		_, err := src.Desired(ctx)
		if !source.IsInvalidManifest(err) {
			t.Fatalf("Desired: got %v, want an invalid manifest error", err)
		}
		if !lineRE.MatchString(err.Error()) || !strings.Contains(err.Error(), "sideways") {
			t.Errorf("error %q does not say FILE:LINE: message", err)
		}
		checkSecrets(t, h, err.Error())
		// Publishing a valid one again recovers.
		h.Publish(t, r1)
		if got := desired(t, src); got.Label != "r1" {
			t.Fatalf("after fixing the manifest: got %s", got.Label)
		}
	})

	t.Run("cancelled fetch fails", func(t *testing.T) {
		rev := desired(t, src)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := src.Fetch(cctx, rev, t.TempDir()); err == nil {
			t.Fatal("Fetch with a cancelled context succeeded")
		}
	})
}

func desired(t *testing.T, src source.Source) source.Revision {
	t.Helper()
	rev, err := src.Desired(context.Background())
	if err != nil {
		t.Fatalf("Desired: %v", err)
	}
	return rev
}

func checkSecrets(t *testing.T, h Harness, text string) {
	t.Helper()
	for _, s := range h.Secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("secret leaked in %q", text)
		}
	}
}

// fetchAndCompare fetches rev into a fresh directory and checks it holds
// exactly want, byte for byte, with executables executable.
func fetchAndCompare(t *testing.T, src source.Source, rev source.Revision, want map[string]string) {
	t.Helper()
	dst := t.TempDir()
	if err := src.Fetch(context.Background(), rev, dst); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	got := ReadTree(t, dst)
	if !maps.Equal(got, want) {
		t.Fatalf("fetched files differ:\ngot  %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for name := range want {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if exec := fi.Mode()&0o100 != 0; exec != strings.HasSuffix(name, ".sh") {
			t.Errorf("%s: mode %v", name, fi.Mode())
		}
	}
}

// ReadTree returns every regular file under dir by slash path.
func ReadTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WriteTree replaces dir's contents with files (names ending in .sh are
// executable).
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}
