// Package tarball writes reproducible bundle archives (tar.gz) and reads
// them back safely.
//
// Write gives the same bytes, hence the same sha256, for the same directory
// contents: entries sorted by path, owners zeroed, times zeroed, modes
// normalised (directories 0755; files 0755 when any execute bit is set,
// else 0644; symlinks kept as links). The gzip header carries no name and
// no time. Bytes depend on Go's compress/flate, so a drover built with
// another Go release may produce another (equally valid) sha256.
//
// Extract is a minimal, path-safe reader used until hooks/bundle's
// unpacker is available: no absolute paths, no "..", no links escaping the
// destination, no writes through links, no hard links or devices, and
// limits on total size and entry count.
package tarball

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Write archives the tree at dir to w as a reproducible tar.gz.
func Write(ctx context.Context, dir string, w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, ModTime: epoch, Format: tar.FormatPAX}
		switch mode := info.Mode(); {
		case mode.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		case mode.IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
			if mode&0o111 != 0 {
				hdr.Mode = 0o755
			}
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		default:
			return fmt.Errorf("%s: cannot archive %s (only files, directories and symlinks)", rel, mode.Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("archive %s: %w", rel, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if n, err := io.Copy(tw, io.LimitReader(f, hdr.Size)); err != nil {
			return fmt.Errorf("archive %s: %w", rel, err)
		} else if n != hdr.Size {
			return fmt.Errorf("archive %s: file changed size while archiving", rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build bundle from %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build bundle: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("build bundle: %w", err)
	}
	return nil
}

// Limits bound what Extract writes. Zero fields take the defaults.
type Limits struct {
	MaxBytes   int64 // total file bytes; 4 GiB
	MaxEntries int   // entries; 200,000
}

// ErrUnsafe marks an archive refused for an unsafe entry or a limit.
var ErrUnsafe = errors.New("unsafe bundle archive")

// Extract unpacks the tar.gz stream r into dst, which must exist and should
// be empty.
func Extract(ctx context.Context, r io.Reader, dst string, lim Limits) error {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 4 << 30
	}
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = 200_000
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	links := map[string]bool{} // relative paths of symlinks written so far
	var total int64
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read bundle: %w", err)
		}
		if n >= lim.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrUnsafe, lim.MaxEntries)
		}
		rel, err := safeName(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue
		}
		for p := path.Dir(rel); p != "."; p = path.Dir(p) {
			if links[p] {
				return fmt.Errorf("%w: %s: written through the symlink %s", ErrUnsafe, hdr.Name, p)
			}
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", rel, err)
			}
		case tar.TypeReg:
			total += hdr.Size
			if hdr.Size < 0 || total > lim.MaxBytes {
				return fmt.Errorf("%w: more than %d bytes", ErrUnsafe, lim.MaxBytes)
			}
			mode := os.FileMode(0o644)
			if hdr.Mode&0o111 != 0 {
				mode = 0o755
			}
			if err := writeFile(target, tr, hdr.Size, mode); err != nil {
				return fmt.Errorf("unpack %s: %w", rel, err)
			}
		case tar.TypeSymlink:
			lt := hdr.Linkname
			if err := CheckLink(rel, lt); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", rel, err)
			}
			if err := os.Symlink(lt, target); err != nil {
				return fmt.Errorf("unpack %s: %w", rel, err)
			}
			links[rel] = true
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%w: %s: entry type %q is not allowed", ErrUnsafe, hdr.Name, hdr.Typeflag)
		}
	}
}

// CheckLink returns an ErrUnsafe error unless a symlink at rel (a clean
// slash path relative to the bundle root) pointing to target stays inside
// the bundle, given that nothing is ever written through a link.
func CheckLink(rel, target string) error {
	if target == "" || strings.Contains(target, "\x00") || path.IsAbs(target) {
		return fmt.Errorf("%w: %s: symlink to %q", ErrUnsafe, rel, target)
	}
	if !leadingDotDotOnly(target) {
		return fmt.Errorf("%w: %s: symlink to %q (\"..\" after a name may cross a link)", ErrUnsafe, rel, target)
	}
	if resolved := path.Join(path.Dir(rel), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: %s: symlink to %q leaves the bundle", ErrUnsafe, rel, target)
	}
	return nil
}

// leadingDotDotOnly reports whether ".." appears in target only before its
// first other component. Leading ".." climbs real directories (nothing is
// written through a link), so with every link checked this way, and each
// checked to stay inside, no chain of links can resolve outside the root;
// "x/.." after a link x could.
func leadingDotDotOnly(target string) bool {
	named := false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "..":
			if named {
				return false
			}
		case "", ".":
		default:
			named = true
		}
	}
	return true
}

// safeName cleans an archive path and refuses ones that leave the root.
func safeName(name string) (string, error) {
	if name == "" || strings.Contains(name, "\x00") || strings.Contains(name, "\\") {
		return "", fmt.Errorf("%w: bad entry name %q", ErrUnsafe, name)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("%w: absolute entry name %q", ErrUnsafe, name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: entry %q leaves the bundle", ErrUnsafe, name)
	}
	return c, nil
}

func writeFile(target string, r io.Reader, size int64, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = os.Chmod(target, mode) // umask must not change what the bundle says
	}
	return err
}
