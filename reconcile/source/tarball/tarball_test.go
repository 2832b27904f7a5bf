package tarball

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks/bundle"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o600)
		if filepath.Ext(name) == ".sh" {
			mode = 0o700
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func build(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(context.Background(), dir, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestWriteReproducible(t *testing.T) {
	files := map[string]string{"appspec.yml": "version: 0.0\n", "scripts/start.sh": "#!/bin/sh\n", "z/a/b.txt": "x", "a.txt": ""}
	d1, d2 := t.TempDir(), t.TempDir()
	writeTree(t, d1, files)
	writeTree(t, d2, files)
	if err := os.Symlink("a.txt", filepath.Join(d1, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(d2, "link")); err != nil {
		t.Fatal(err)
	}
	// Different times, owners and non-exec mode bits must not matter.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(d2, "a.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(d2, "a.txt"), 0o664); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(d2, "z"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	a, b := build(t, d1), build(t, d2)
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatal("same contents gave different archives")
	}
	if err := os.WriteFile(filepath.Join(d2, "a.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := build(t, d2); bytes.Equal(a, c) {
		t.Fatal("different contents gave the same archive")
	}

	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(archive, a, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := bundle.Unpack(context.Background(), archive, out, bundle.Limits{}); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || string(got) != body {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, body)
		}
		fi, _ := os.Stat(filepath.Join(out, name))
		want := os.FileMode(0o644)
		if filepath.Ext(name) == ".sh" {
			want = 0o755
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if l, err := os.Readlink(filepath.Join(out, "link")); err != nil || l != "a.txt" {
		t.Errorf("link: %q, %v", l, err)
	}
}
