// Package sourcetest is the contract every source.Source implementation
// passes, run against a real backend (a git server, versitygw, a directory).
package sourcetest

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/syncbuf"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/bundlecheck"
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

	// EmptyErr is what Desired wraps on the fresh store: source.ErrNotFound
	// where an empty store is no place at all (git: no branch yet; s3:
	// nothing under the prefix), source.ErrNoManifest where the place
	// exists (dir: the directory).
	EmptyErr error
	// RemoveManifest deletes the published manifest and keeps the bundle;
	// PartialErr is what Desired then wraps (git: source.ErrNotFound, a
	// commit is atomic; s3, dir: source.ErrNoManifest, a publication in
	// progress).
	RemoveManifest func(t *testing.T)
	PartialErr     error
	// Misconfigured returns sources reading the store through a
	// configuration with a mistake in it, each with what its error must
	// say. Run calls it after the first release is published.
	Misconfigured func(t *testing.T) []Misconfig
	// BundleFile is how messages must name a file of rev's bundle (rel is
	// relative to the bundle root): git the path in the repository, s3 the
	// bundle object then the path in the archive, dir the path on disk.
	BundleFile func(rev source.Revision, rel string) string
}

// Misconfig is a source configured with a mistake.
type Misconfig struct {
	Name   string
	Source source.Source
	// Is is the sentinel the error wraps (source.ErrNotFound,
	// source.ErrAccessDenied); nil: some other error (unreachable), but
	// neither ErrNotFound nor ErrNoManifest.
	Is error
	// Says are substrings of the error message: the branch, path, bucket
	// or prefix as configured, and the "did you mean".
	Says []string
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

	t.Run("empty store is reported", func(t *testing.T) {
		_, err := src.Desired(ctx)
		if !errors.Is(err, h.EmptyErr) || source.IsInvalidManifest(err) {
			t.Fatalf("Desired on an empty store: got %v, want %v", err, h.EmptyErr)
		}
		checkSecrets(t, h, err.Error())
		t.Logf("empty store: %v", err)
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

	t.Run("misconfigured places fail loudly", func(t *testing.T) {
		for _, mc := range h.Misconfigured(t) {
			t.Run(mc.Name, func(t *testing.T) { misconfigured(t, h, mc) })
		}
	})

	t.Run("manifest removed, bundle kept", func(t *testing.T) {
		h.RemoveManifest(t)
		_, err := src.Desired(ctx)
		if !errors.Is(err, h.PartialErr) || source.IsInvalidManifest(err) {
			t.Fatalf("Desired without a manifest: got %v, want %v", err, h.PartialErr)
		}
		t.Logf("manifest removed: %v", err)
		h.Publish(t, r1)
		if got := desired(t, src); got.Label != "r1" {
			t.Fatalf("after publishing r1 again: got %s", got.Label)
		}
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

	t.Run("invalid bundle is refused before it is desired", func(t *testing.T) {
		invalidBundle(t, h, src)
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

// misconfigured checks one misconfigured source: its error, and what a
// Poller makes of it.
func misconfigured(t *testing.T, h Harness, mc Misconfig) {
	checkSecrets(t, h, mc.Source.String())
	_, err := mc.Source.Desired(context.Background())
	switch {
	case err == nil:
		t.Fatal("Desired succeeded")
	case source.IsInvalidManifest(err):
		t.Fatalf("Desired: %v is an invalid-manifest error", err)
	case mc.Is != nil && !errors.Is(err, mc.Is):
		t.Fatalf("Desired: %v does not wrap %v", err, mc.Is)
	case mc.Is == nil && (errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrNoManifest)):
		t.Fatalf("Desired: %v wraps ErrNotFound or ErrNoManifest", err)
	}
	for _, want := range mc.Says {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	checkSecrets(t, h, err.Error())
	t.Logf("%s: %v", mc.Name, err)

	// Through a Poller: an error, logged once, shown, and no success.
	var logs syncbuf.Buffer
	clock := &stepClock{now: time.Unix(1000, 0)}
	p := source.NewPoller(mc.Source, source.PollerConfig{App: "hello-web", Clock: clock,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Check: func(context.Context, source.Revision) error {
			t.Error("Check called without a revision")
			return nil
		}})
	for i := range 2 {
		if u := p.Poll(context.Background()); u.Result != source.ResultError || u.Has {
			t.Fatalf("poll %d: result %s, has desired %v; want error, none", i+1, u.Result, u.Has)
		}
	}
	st := p.Status()
	if st.Polls[source.ResultError] != 2 || st.Polls[source.ResultEmpty] != 0 || !st.LastSuccess.IsZero() ||
		st.LastResult != source.ResultError || st.ConsecutiveFailures != 2 {
		t.Errorf("status after two polls: %+v", st)
	}
	if st.LastError == "" || (len(mc.Says) > 0 && !strings.Contains(st.LastError, mc.Says[0])) {
		t.Errorf("status error %q does not say %q", st.LastError, mc.Says)
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"source poll failed\""); n != 1 {
		t.Errorf("%d warnings for two polls failing alike, want 1:\n%s", n, logs.String())
	}
}

// badAppspec has an invalid hook timeout (line 6) and names a script the
// bundle lacks (line 8).
const badAppspec = `version: 0.0
os: linux
hooks:
  AfterInstall:
    - location: scripts/start.sh
      timeout: 2m
  ApplicationStart:
    - location: scripts/missing.sh
`

// invalidBundle publishes a release whose appspec.yml is invalid and
// checks that a Poller with the bundle check refuses it once, names the
// files as the source does, and moves on with the next valid release.
func invalidBundle(t *testing.T, h Harness, src source.Source) {
	ctx := context.Background()
	tmp := t.TempDir()
	check := bundlecheck.New(src, tmp, nil)
	var calls atomic.Int32
	clock := &stepClock{now: time.Unix(1000, 0)}
	p := source.NewPoller(src, source.PollerConfig{App: "hello-web", Clock: clock,
		Check: func(ctx context.Context, rev source.Revision) error {
			calls.Add(1)
			return check(ctx, rev)
		}})
	h.Publish(t, r1)
	u := p.Poll(ctx)
	if u.Result != source.ResultChanged || u.Desired.Label != "r1" || calls.Load() != 1 {
		t.Fatalf("first poll: %s %q after %d checks; want changed r1 after 1", u.Result, u.Desired.Label, calls.Load())
	}
	good := u.Desired
	lastSuccess := p.Status().LastSuccess

	bad := Release{Label: "bad", Files: map[string]string{
		"appspec.yml":      badAppspec,
		"scripts/start.sh": "#!/bin/sh\necho start\n",
	}}
	h.Publish(t, bad)
	badRev := desired(t, src) // the source itself does not look into bundles
	for i := range 2 {
		u = p.Poll(ctx)
		if u.Result != source.ResultInvalid || u.Desired.ID != good.ID {
			t.Fatalf("poll %d of the bad release: %s %q (err %v); want invalid, r1 standing", i+1, u.Result, u.Desired.Label, u.Err)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("%d checks after two polls of one bad revision, want 2 (one each)", calls.Load())
	}
	msg := u.Err.Error()
	for _, want := range []string{
		h.BundleFile(badRev, "appspec.yml") + ":6: hooks.AfterInstall[0].timeout: ",
		h.BundleFile(badRev, "appspec.yml") + ":8: hooks.ApplicationStart[0].location: ",
		"scripts/missing.sh",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, tmp) {
		t.Errorf("error names the staging directory %s:\n%s", tmp, msg)
	}
	checkSecrets(t, h, msg)
	st := p.Status()
	if st.LastResult != source.ResultInvalid || st.LastError != msg || !st.LastSuccess.Equal(lastSuccess) || st.Desired.ID != good.ID {
		t.Errorf("status while refused: %+v", st)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("the check left %d entries in its directory", len(ents))
	}
	t.Logf("refused: %s", msg)

	h.Publish(t, r2)
	if u = p.Poll(ctx); u.Result != source.ResultChanged || u.Desired.Label != "r2" || calls.Load() != 3 {
		t.Fatalf("after a valid release: %s %q after %d checks", u.Result, u.Desired.Label, calls.Load())
	}
	if st := p.Status(); st.LastError != "" || !st.LastSuccess.After(lastSuccess) {
		t.Errorf("status after the valid release: %+v", st)
	}
}

// stepClock moves one second at each Now; its After never fires (the
// contract's polls are driven by hand).
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func (c *stepClock) After(time.Duration) <-chan time.Time { return nil }

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
