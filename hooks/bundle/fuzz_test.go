package bundle

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimits keep each fuzz iteration small.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxEntries: 500}

func fuzzSeeds() [][]ent {
	return [][]ent{
		{dirEnt("app"), file("app/a", "hello"), symlinkEnt("app/l", "a"), file("appspec.yml", "v")},
		{file("top/appspec.yml", "x"), file("top/d/f", "y"), hardlinkEnt("top/h", "top/d/f")},
		{file("../x", "evil")},
		{symlinkEnt("a", "../../"), file("a/b", "evil")},
		{symlinkEnt("l1", "."), symlinkEnt("l2", "l1/..")},
		{specialEnt("p", tar.TypeFifo)},
		{hardlinkEnt("h", "/etc/passwd")},
	}
}

// checkConfined fails when anything but dst is in parent, or, after a
// successful unpack, when dst holds a special file or a link that resolves
// outside it. It uses the kernel's resolution (EvalSymlinks), not ours.
func checkConfined(t *testing.T, parent, dst string, unpackErr error) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "dst" {
			t.Fatalf("unpack wrote %q outside dst", e.Name())
		}
	}
	if unpackErr != nil {
		return
	}
	realDst, err := filepath.EvalSymlinks(dst)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t == fs.ModeSymlink:
		case t&(fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice|fs.ModeSocket) != 0:
			return &fs.PathError{Op: "special file", Path: p, Err: fs.ErrInvalid}
		default:
			return nil
		}
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: resolves to nothing
		}
		if r != realDst && !strings.HasPrefix(r, realDst+"/") {
			t.Errorf("link %s resolves outside dst to %s", p, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fuzzUnpack(t *testing.T, name string, data []byte) {
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dst := filepath.Join(parent, "dst")
	err := Unpack(context.Background(), src, dst, fuzzLimits)
	checkConfined(t, parent, dst, err)
}

func FuzzUnpackTar(f *testing.F) {
	for _, s := range fuzzSeeds() {
		b := tarBytes(f, s)
		f.Add(b)
		f.Add(gzipBytes(f, b))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzUnpack(t, "b.tar", data)
	})
}

func FuzzUnpackZip(f *testing.F) {
	for _, s := range fuzzSeeds() {
		var zs []ent
		for _, e := range s {
			if e.typ != tar.TypeLink { // zip has no hard links
				zs = append(zs, e)
			}
		}
		f.Add(zipBytes(f, zs))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzUnpack(t, "b.zip", data)
	})
}
