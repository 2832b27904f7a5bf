package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ent is one archive entry for the test builders.
type ent struct {
	name string
	typ  byte // tar type flag; zip builder maps it to a mode
	body string
	link string
	mode int64
	size int64 // declared size override for tar (0: len(body))
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dirEnt(name string) ent     { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlinkEnt(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}
func hardlinkEnt(name, to string) ent {
	return ent{name: name, typ: tar.TypeLink, link: to, mode: 0o644}
}
func specialEnt(name string, t byte) ent { return ent{name: name, typ: t, mode: 0o644} }

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func tarBytes(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipBytes(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mtime}
		body := e.body
		switch e.typ {
		case tar.TypeReg:
			h.SetMode(fs.FileMode(e.mode))
		case tar.TypeDir:
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
			h.SetMode(fs.ModeDir | fs.FileMode(e.mode))
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.link
		case tar.TypeFifo:
			h.SetMode(fs.ModeNamedPipe | 0o644)
		case tar.TypeChar:
			h.SetMode(fs.ModeDevice | fs.ModeCharDevice | 0o644)
		case tar.TypeBlock:
			h.SetMode(fs.ModeDevice | 0o644)
		default:
			t.Fatalf("zip builder: type %q", e.typ)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sandbox returns dst inside a fresh parent directory, and a check that the
// parent holds nothing but dst afterwards.
func sandbox(t testing.TB) (dst string, check func()) {
	t.Helper()
	parent := t.TempDir()
	dst = filepath.Join(parent, "dst")
	return dst, func() {
		t.Helper()
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "dst" {
				t.Errorf("unpack wrote %q outside dst", filepath.Join(parent, e.Name()))
			}
		}
	}
}

// tree describes dst as "path type [target|content]" lines, sorted.
func tree(t testing.TB, dst string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" = "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestUnpackFormats(t *testing.T) {
	ents := []ent{
		dirEnt("app"),
		{name: "app/run.sh", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o750},
		symlinkEnt("app/current", "run.sh"),
		file("appspec.yml", "version: 0.0\n"),
		file("./web/index.html", "<html>"),
	}
	want := []string{"app/", "app/current -> run.sh", "app/run.sh = #!/bin/sh\n", "appspec.yml = version: 0.0\n", "web/", "web/index.html = <html>"}
	cases := []struct {
		name string
		src  func(t *testing.T) string
	}{
		{"tar", func(t *testing.T) string { return writeTemp(t, "b.tar", tarBytes(t, ents)) }},
		{"tar.gz", func(t *testing.T) string { return writeTemp(t, "b.tar.gz", gzipBytes(t, tarBytes(t, ents))) }},
		{"tgz", func(t *testing.T) string { return writeTemp(t, "b.tgz", gzipBytes(t, tarBytes(t, ents))) }},
		{"gzip by magic, no extension", func(t *testing.T) string { return writeTemp(t, "bundle", gzipBytes(t, tarBytes(t, ents))) }},
		{"tar by magic, zip extension", func(t *testing.T) string { return writeTemp(t, "b.zip", tarBytes(t, ents)) }},
		{"zip", func(t *testing.T) string { return writeTemp(t, "b.zip", zipBytes(t, ents)) }},
		{"directory", func(t *testing.T) string {
			d := t.TempDir()
			mustWrite(t, filepath.Join(d, "app/run.sh"), "#!/bin/sh\n", 0o750)
			mustSymlink(t, "run.sh", filepath.Join(d, "app/current"))
			mustWrite(t, filepath.Join(d, "appspec.yml"), "version: 0.0\n", 0o644)
			mustWrite(t, filepath.Join(d, "web/index.html"), "<html>", 0o644)
			return d
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src(t)
			dst, check := sandbox(t)
			if err := Unpack(context.Background(), src, dst, Limits{}); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			check()
			if got := tree(t, dst); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			fi, err := os.Stat(filepath.Join(dst, "app/run.sh"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o750 {
				t.Errorf("app/run.sh mode %v, want 0750", fi.Mode().Perm())
			}
			if tc.name != "directory" && !fi.ModTime().Equal(mtime) {
				t.Errorf("app/run.sh mtime %v, want %v", fi.ModTime(), mtime)
			}
		})
	}
}

func mustWrite(t testing.TB, p, body string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t testing.TB, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestUnpackStrip(t *testing.T) {
	cases := []struct {
		name string
		ents []ent
		want []string
		err  error
	}{
		{
			name: "single top-level dir with appspec is stripped",
			ents: []ent{dirEnt("top"), file("top/appspec.yml", "x"), file("top/a/b", "b"), symlinkEnt("top/l", "a/b")},
			want: []string{"a/", "a/b = b", "appspec.yml = x", "l -> a/b"},
		},
		{
			name: "appspec.yaml counts, siblings dropped as CodeDeploy does",
			ents: []ent{file("top/appspec.yaml", "x"), file("README", "r"), file("other/f", "f")},
			want: []string{"appspec.yaml = x"},
		},
		{
			name: "appspec at root: nothing stripped",
			ents: []ent{file("appspec.yml", "x"), file("top/appspec.yml", "y")},
			want: []string{"appspec.yml = x", "top/", "top/appspec.yml = y"},
		},
		{
			name: "two candidates: nothing stripped",
			ents: []ent{file("a/appspec.yml", "x"), file("b/appspec.yml", "y")},
			want: []string{"a/", "a/appspec.yml = x", "b/", "b/appspec.yml = y"},
		},
		{
			name: "no appspec anywhere: nothing stripped",
			ents: []ent{file("top/f", "x")},
			want: []string{"top/", "top/f = x"},
		},
		{
			name: "inner entry named like the top dir",
			ents: []ent{file("top/appspec.yml", "x"), file("top/top/f", "y")},
			want: []string{"appspec.yml = x", "top/", "top/f = y"},
		},
		{
			name: "link that escapes once stripped",
			ents: []ent{file("top/appspec.yml", "x"), symlinkEnt("top/l", "../other"), file("other", "o")},
			err:  ErrUnsafePath,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := writeTemp(t, "b.tar", tarBytes(t, tc.ents))
			dst, check := sandbox(t)
			err := Unpack(context.Background(), src, dst, Limits{})
			check()
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Unpack error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if got := tree(t, dst); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestUnpackMalicious(t *testing.T) {
	// abs is an absolute path that would exist afterwards if an absolute
	// entry were honoured.
	abs := filepath.Join(t.TempDir(), "abs-escape")
	big := strings.Repeat("x", 2048)
	type mk func(t *testing.T, ents []ent) string
	tarSrc := func(t *testing.T, ents []ent) string { return writeTemp(t, "b.tar", tarBytes(t, ents)) }
	tgzSrc := func(t *testing.T, ents []ent) string { return writeTemp(t, "b.tgz", gzipBytes(t, tarBytes(t, ents))) }
	zipSrc := func(t *testing.T, ents []ent) string { return writeTemp(t, "b.zip", zipBytes(t, ents)) }
	cases := []struct {
		name string
		src  mk
		ents []ent
		lim  Limits
		err  error
	}{
		{"tar dotdot", tarSrc, []ent{file("../x", "evil")}, Limits{}, ErrUnsafePath},
		{"tar dotdot inside", tarSrc, []ent{file("a/../../x", "evil")}, Limits{}, ErrUnsafePath},
		{"tar absolute", tarSrc, []ent{file(abs, "evil")}, Limits{}, ErrUnsafePath},
		{"tar symlink to parent then through it", tarSrc, []ent{symlinkEnt("a", "../../"), file("a/b", "evil")}, Limits{}, ErrUnsafePath},
		{"tar symlink absolute", tarSrc, []ent{symlinkEnt("a", "/etc")}, Limits{}, ErrUnsafePath},
		{"tar write through inside symlink", tarSrc, []ent{dirEnt("d"), symlinkEnt("a", "d"), file("a/b", "x")}, Limits{}, ErrUnsafePath},
		{"tar symlink chain escape", tarSrc, []ent{symlinkEnt("l1", "."), symlinkEnt("l2", "l1/..")}, Limits{}, ErrUnsafePath},
		{"tar symlink chain via subdir", tarSrc, []ent{dirEnt("d"), symlinkEnt("d/up", ".."), symlinkEnt("x", "d/up/d/up/..")}, Limits{}, ErrUnsafePath},
		{"tar symlink replaced by file", tarSrc, []ent{symlinkEnt("a", "b"), file("a", "x")}, Limits{}, ErrUnsafePath},
		{"tar hardlink dotdot", tarSrc, []ent{hardlinkEnt("h", "../../etc/passwd")}, Limits{}, ErrUnsafePath},
		{"tar hardlink absolute", tarSrc, []ent{hardlinkEnt("h", "/etc/passwd")}, Limits{}, ErrUnsafePath},
		{"tar hardlink to symlink", tarSrc, []ent{symlinkEnt("s", "x"), hardlinkEnt("h", "s")}, Limits{}, ErrUnsafePath},
		{"tar hardlink to missing", tarSrc, []ent{hardlinkEnt("h", "nothere")}, Limits{}, ErrUnsafePath},
		{"tar char device", tarSrc, []ent{specialEnt("null", tar.TypeChar)}, Limits{}, ErrSpecialFile},
		{"tar block device", tarSrc, []ent{specialEnt("sda", tar.TypeBlock)}, Limits{}, ErrSpecialFile},
		{"tar fifo", tarSrc, []ent{specialEnt("p", tar.TypeFifo)}, Limits{}, ErrSpecialFile},
		{"tgz fifo", tgzSrc, []ent{file("ok", "x"), specialEnt("p", tar.TypeFifo)}, Limits{}, ErrSpecialFile},
		{"tar too many entries", tarSrc, []ent{file("a", "1"), file("b", "2"), file("c", "3")}, Limits{MaxEntries: 2}, ErrTooLarge},
		{"tar too large", tarSrc, []ent{file("a", big), file("b", big)}, Limits{MaxBytes: 3000}, ErrTooLarge},
		{"tgz too large single", tgzSrc, []ent{file("a", big)}, Limits{MaxBytes: 100}, ErrTooLarge},
		// 30,000 directories deep: hours of work without the bound, refused at once
		{"tar too deep", tarSrc, []ent{file(strings.Repeat("a/", maxNameDepth)+"f", "x")}, Limits{}, ErrTooLarge},
		{"zip too deep", zipSrc, []ent{file(strings.Repeat("a/", 30000)+"f", "x")}, Limits{}, ErrTooLarge},
		{"zip implied directories count", zipSrc, []ent{file("a/b/c/f", "x")}, Limits{MaxEntries: 3}, ErrTooLarge},
		{"zip name too long", zipSrc, []ent{file(strings.Repeat("x", maxNameBytes+1), "x")}, Limits{}, ErrTooLarge},
		{"zip dotdot", zipSrc, []ent{file("../x", "evil")}, Limits{}, ErrUnsafePath},
		{"zip backslash dotdot", zipSrc, []ent{file(`..\..\x`, "evil")}, Limits{}, ErrUnsafePath},
		{"zip absolute", zipSrc, []ent{file(abs, "evil")}, Limits{}, ErrUnsafePath},
		{"zip symlink escape then through it", zipSrc, []ent{symlinkEnt("a", "../.."), file("a/b", "evil")}, Limits{}, ErrUnsafePath},
		{"zip fifo", zipSrc, []ent{specialEnt("p", tar.TypeFifo)}, Limits{}, ErrSpecialFile},
		{"zip char device", zipSrc, []ent{specialEnt("c", tar.TypeChar)}, Limits{}, ErrSpecialFile},
		{"zip block device", zipSrc, []ent{specialEnt("b", tar.TypeBlock)}, Limits{}, ErrSpecialFile},
		{"zip too many entries", zipSrc, []ent{file("a", "1"), file("b", "2"), file("c", "3")}, Limits{MaxEntries: 2}, ErrTooLarge},
		{"zip too large", zipSrc, []ent{file("a", big), file("b", big)}, Limits{MaxBytes: 3000}, ErrTooLarge},
		{"not an archive", func(t *testing.T, _ []ent) string { return writeTemp(t, "b.tar.gz", []byte("hello, world")) }, nil, Limits{}, ErrFormat},
		{"truncated tar", func(t *testing.T, ents []ent) string { b := tarBytes(t, ents); return writeTemp(t, "b.tar", b[:600]) }, []ent{file("a", big)}, Limits{}, ErrFormat},
		{"truncated gzip", func(t *testing.T, ents []ent) string {
			b := gzipBytes(t, tarBytes(t, ents))
			return writeTemp(t, "b.tgz", b[:len(b)/2])
		}, []ent{file("a", big)}, Limits{}, ErrFormat},
		{"directory with fifo", func(t *testing.T, _ []ent) string {
			d := t.TempDir()
			if err := syscall.Mkfifo(filepath.Join(d, "p"), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return d
		}, nil, Limits{}, ErrSpecialFile},
		{"directory with escaping symlink", func(t *testing.T, _ []ent) string {
			d := t.TempDir()
			mustSymlink(t, "../../etc", filepath.Join(d, "sub/l"))
			return d
		}, nil, Limits{}, ErrUnsafePath},
		{"directory with absolute symlink", func(t *testing.T, _ []ent) string {
			d := t.TempDir()
			mustSymlink(t, "/etc/passwd", filepath.Join(d, "l"))
			return d
		}, nil, Limits{}, ErrUnsafePath},
		{"directory too large", func(t *testing.T, _ []ent) string {
			d := t.TempDir()
			mustWrite(t, filepath.Join(d, "a"), big, 0o644)
			return d
		}, nil, Limits{MaxBytes: 1000}, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src(t, tc.ents)
			dst, check := sandbox(t)
			err := Unpack(context.Background(), src, dst, tc.lim)
			check()
			if _, serr := os.Lstat(abs); serr == nil {
				t.Errorf("unpack created %s", abs)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Unpack error %v, want %v", err, tc.err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestUnpackDestination(t *testing.T) {
	src := writeTemp(t, "b.tar", tarBytes(t, []ent{file("a", "x")}))
	t.Run("not empty", func(t *testing.T) {
		dst := t.TempDir()
		mustWrite(t, filepath.Join(dst, "old"), "x", 0o644)
		if err := Unpack(context.Background(), src, dst, Limits{}); !errors.Is(err, ErrDestination) {
			t.Fatalf("Unpack error %v, want ErrDestination", err)
		}
	})
	t.Run("empty existing", func(t *testing.T) {
		dst := t.TempDir()
		if err := Unpack(context.Background(), src, dst, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("file", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "f")
		mustWrite(t, dst, "x", 0o644)
		if err := Unpack(context.Background(), src, dst, Limits{}); !errors.Is(err, ErrDestination) {
			t.Fatalf("Unpack error %v, want ErrDestination", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		dst := filepath.Join(t.TempDir(), "d")
		if err := Unpack(ctx, src, dst, Limits{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Unpack error %v, want context.Canceled", err)
		}
	})
}

func TestUnpackDuplicateFileReplaced(t *testing.T) {
	src := writeTemp(t, "b.tar", tarBytes(t, []ent{file("a", "old"), file("a", "new"), hardlinkEnt("h", "a")}))
	dst, check := sandbox(t)
	if err := Unpack(context.Background(), src, dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	check()
	want := []string{"a = new", "h = new"}
	if got := tree(t, dst); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree %q, want %q", got, want)
	}
}

// TestUnpackDeepestAllowed: a name at the depth bound unpacks.
func TestUnpackDeepestAllowed(t *testing.T) {
	name := strings.Repeat("d/", maxNameDepth-1) + "f"
	src := writeTemp(t, "b.zip", zipBytes(t, []ent{file(name, "deep")}))
	dst := filepath.Join(t.TempDir(), "dst")
	if err := Unpack(context.Background(), src, dst, Limits{}); err != nil {
		t.Fatalf("unpack of a %d-deep name: %v", maxNameDepth, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != "deep" {
		t.Errorf("read back %q, %v", b, err)
	}
}
