package tarball

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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

	out := t.TempDir()
	if err := Extract(context.Background(), bytes.NewReader(a), out, Limits{}); err != nil {
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

type entry struct {
	name, link string
	typ        byte
	body       string
}

func mkArchive(t testing.TB, entries []entry) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestExtractRefusesUnsafe(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
	}{
		{"absolute", []entry{{name: "/etc/x", typ: tar.TypeReg, body: "x"}}},
		{"dotdot", []entry{{name: "a/../../x", typ: tar.TypeReg, body: "x"}}},
		{"absolute link", []entry{{name: "l", link: "/etc", typ: tar.TypeSymlink}}},
		{"escaping link", []entry{{name: "a/l", link: "../../x", typ: tar.TypeSymlink}}},
		{"dotdot after link", []entry{{name: "s", link: ".", typ: tar.TypeSymlink}, {name: "t", link: "s/..", typ: tar.TypeSymlink}}},
		{"through link", []entry{{name: "l", link: "d", typ: tar.TypeSymlink}, {name: "l/x", typ: tar.TypeReg, body: "x"}}},
		{"hard link", []entry{{name: "a", typ: tar.TypeReg, body: "x"}, {name: "h", link: "a", typ: tar.TypeLink}}},
		{"device", []entry{{name: "dev", typ: tar.TypeChar}}},
		{"too big", []entry{{name: "a", typ: tar.TypeReg, body: "0123456789"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			os.Mkdir(dst, 0o755)
			err := Extract(context.Background(), bytes.NewReader(mkArchive(t, tt.entries)), dst, Limits{MaxBytes: 5})
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("got %v, want ErrUnsafe", err)
			}
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 {
				t.Fatalf("something was written next to dst: %v", ents)
			}
		})
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(mkArchive(f, []entry{{name: "a/b", typ: tar.TypeReg, body: "x"}, {name: "l", link: "a/b", typ: tar.TypeSymlink}}))
	f.Add(mkArchive(f, []entry{{name: "../x", typ: tar.TypeReg, body: "x"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "dst")
		os.Mkdir(dst, 0o755)
		_ = Extract(context.Background(), bytes.NewReader(data), dst, Limits{MaxBytes: 1 << 20, MaxEntries: 100})
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("something was written next to dst: %v", ents)
		}
		// Every symlink written resolves inside dst.
		filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type()&os.ModeSymlink != 0 {
				if r, err := filepath.EvalSymlinks(p); err == nil {
					if rel, _ := filepath.Rel(dst, r); rel == ".." || len(rel) > 2 && rel[:3] == "../" {
						t.Fatalf("symlink %s escapes to %s", p, r)
					}
				}
			}
			return nil
		})
	})
}
