package bundlecheck_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
	. "github.com/drover-dev/drover/reconcile/source/bundlecheck"
	"github.com/drover-dev/drover/reconcile/source/dirsrc"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

// release lays out DIR/manifest.yaml and DIR/bundle and returns a dir
// source for it with its desired revision.
func release(t *testing.T, files map[string]string) (string, source.Source, source.Revision) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hello-web")
	sourcetest.WriteTree(t, filepath.Join(dir, "bundle"), files)
	m := sourcetest.Release{Label: "r1"}.Manifest()
	m.Bundle.Path = "bundle"
	if err := os.WriteFile(filepath.Join(dir, manifest.FileName), manifest.Format(m), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := dirsrc.New(dirsrc.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := src.Desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dir, src, rev
}

func TestVerdicts(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		link  [2]string // a symlink to add: name, target
		want  []string  // problems, with DIR for the bundle's directory; nil: valid
	}{
		{name: "valid", files: map[string]string{
			"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: s.sh\n      timeout: 120\n",
			"s.sh":        "#!/bin/sh\n"}},
		{name: "timeout with a unit", files: map[string]string{
			"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: s.sh\n      timeout: 2m\n",
			"s.sh":        "#!/bin/sh\n"},
			want: []string{`DIR/appspec.yml:6: hooks.AfterInstall[0].timeout: must be a positive number of seconds, got "2m"`}},
		{name: "missing script and files source", files: map[string]string{
			"appspec.yml": "version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv\nhooks:\n  ApplicationStart:\n    - location: start.sh\n"},
			want: []string{`DIR/appspec.yml:4: files[0].source: "site" is not in the bundle`,
				`DIR/appspec.yml:8: hooks.ApplicationStart[0].location: script "start.sh" is not in the bundle`}},
		{name: "no appspec", files: map[string]string{"index.html": "x"},
			want: []string{"DIR/appspec.yml: no appspec.yml or appspec.yaml at the root of the bundle"}},
		{name: "symlink out of the bundle", files: map[string]string{"appspec.yml": "version: 0.0\nos: linux\n"},
			link: [2]string{"escape", "../../../etc/passwd"},
			want: []string{`DIR: unsafe link escape: symbolic link target "../../../etc/passwd" leaves the bundle root`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, src, rev := release(t, tt.files)
			if tt.link[0] != "" {
				if err := os.Symlink(tt.link[1], filepath.Join(dir, "bundle", tt.link[0])); err != nil {
					t.Fatal(err)
				}
				var err error
				if rev, err = src.Desired(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			tmp := t.TempDir()
			err := New(src, tmp, nil)(context.Background(), rev)
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("the check left %d entries behind", len(ents))
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("valid bundle refused: %v", err)
				}
				return
			}
			var be *source.BundleError
			if !errors.As(err, &be) || !source.IsInvalidManifest(err) {
				t.Fatalf("got %v, want a *source.BundleError", err)
			}
			bundleDir := filepath.Join(dir, "bundle")
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "DIR", bundleDir))
			}
			if strings.Join(be.Problems, "\n") != strings.Join(want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(be.Problems, "\n"), strings.Join(want, "\n"))
			}
			if strings.Contains(err.Error(), tmp) {
				t.Fatalf("error names the staging directory: %v", err)
			}
		})
	}
}

// plainSource has no BundleNamer: files are named relative to the bundle.
type plainSource struct {
	t     testing.TB
	files map[string]string
	err   error
}

func (p plainSource) Desired(context.Context) (source.Revision, error) { return source.Revision{}, nil }
func (p plainSource) String() string                                   { return "plain" }
func (p plainSource) Fetch(ctx context.Context, _ source.Revision, dst string) error {
	if p.err != nil {
		return p.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sourcetest.WriteTree(p.t, dst, p.files)
	return nil
}

func TestWithoutNamerAndFetchFailures(t *testing.T) {
	rev := source.Revision{ID: "abc", Label: "r9"}
	bad := plainSource{t: t, files: map[string]string{"appspec.yml": "version: 0.0\nos: windows\n"}}
	err := New(bad, t.TempDir(), nil)(context.Background(), rev)
	if !source.IsInvalidManifest(err) || !strings.Contains(err.Error(), "\n  appspec.yml:2: os: ") ||
		!strings.HasPrefix(err.Error(), "bundle of revision r9 (abc) is invalid") {
		t.Fatalf("no namer: %v", err)
	}

	// A failed fetch is no verdict: the Poller asks again.
	tmp := t.TempDir()
	down := plainSource{t: t, err: errors.New("dial tcp: connection refused while writing " + tmp + "/x")}
	err = New(down, tmp, nil)(context.Background(), rev)
	if err == nil || source.IsInvalidManifest(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("fetch failure: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	good := plainSource{t: t, files: map[string]string{"appspec.yml": "version: 0.0\nos: linux\n"}}
	if err := New(good, t.TempDir(), nil)(ctx, rev); !errors.Is(err, context.Canceled) || source.IsInvalidManifest(err) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestWarningsAndLeftovers(t *testing.T) {
	dir, src, rev := release(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\nfiles_exist_behavior: OVERWRITE\n"})
	tmp := t.TempDir()
	// A crash left a check's directory behind; an unrelated file stays.
	if err := os.MkdirAll(filepath.Join(tmp, "drover-check-123", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	check := New(src, tmp, slog.New(slog.NewTextHandler(&logs, nil)))
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 || ents[0].Name() != "keep" {
		t.Fatalf("after New: %v", ents)
	}
	if err := check(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	want := "appspec: " + filepath.Join(dir, "bundle", "appspec.yml") + ":3: files_exist_behavior: "
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("warning not logged as %q:\n%s", want, logs.String())
	}
}
