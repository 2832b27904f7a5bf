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
// Reading bundles back is hooks/bundle's job (bundle.Unpack); what a
// symbolic link in a bundle may point at is internal/safelink's rule, for
// every source.
package tarball

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
