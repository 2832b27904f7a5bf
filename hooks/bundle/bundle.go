// Package bundle unpacks a deployment bundle (a directory, or a .tar,
// .tar.gz/.tgz or .zip archive) into a staging directory, safely.
//
// Safety rules, for every format:
//   - no entry may name a path outside the bundle root: absolute names and
//     ".." components are refused, never silently rewritten;
//   - no entry is written through a symbolic link, and every symbolic link in
//     the result must resolve (following chains of links) inside the root;
//     links that do are preserved as links;
//   - device files, FIFOs and sockets are refused;
//   - the number of entries and the total size of the content are limited.
//
// All writes go through an [os.Root] opened on the destination, so even a bug
// in the checks above cannot make the kernel write outside it.
//
// As CodeDeploy does, when the root of the bundle holds no appspec.yml (or
// appspec.yaml) and exactly one top-level directory does, that directory
// becomes the root: its contents are moved up and its siblings are dropped.
package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Limits bounds what Unpack accepts. A zero or negative field means the
// matching DefaultLimits value.
type Limits struct {
	MaxBytes   int64 // total size of all file contents
	MaxEntries int   // number of entries (files, directories, links)
}

// DefaultLimits are used for the zero fields of a Limits.
var DefaultLimits = Limits{MaxBytes: 4 << 30, MaxEntries: 200_000}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	return l
}

// Errors a caller can test with errors.Is. They reach the caller wrapped in
// an *EntryError naming the offending entry, or wrapped with the bundle name.
var (
	// ErrUnsafePath: an entry's name or a symbolic link leaves the bundle
	// root, or an entry would be written through a symbolic link.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrSpecialFile: a device file, FIFO, socket or unknown entry type.
	ErrSpecialFile = errors.New("special file not allowed")
	// ErrTooLarge: the bundle exceeds Limits.
	ErrTooLarge = errors.New("bundle exceeds limits")
	// ErrFormat: not a supported archive, or a corrupt one.
	ErrFormat = errors.New("unsupported or corrupt bundle")
	// ErrDestination: dst exists and is not an empty directory.
	ErrDestination = errors.New("destination is not an empty directory")
)

// EntryError is the error for one entry of a bundle.
type EntryError struct {
	Entry string // the name as written in the archive (or relative to a directory bundle)
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("bundle entry %q: %v", e.Entry, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

func entryErr(name string, kind error, format string, args ...any) error {
	return &EntryError{Entry: name, Err: fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))}
}

// Unpack makes dst, which must not exist or be an empty directory, hold the
// bundle at src. src is a directory (copied; symbolic links are preserved
// under the same rules as for archives) or a .tar, .tar.gz, .tgz or .zip
// archive, recognised by its first bytes (the extension only decides for an
// old tar without a ustar magic).
//
// On error nothing has been written outside dst; dst may hold a partial
// bundle, and the caller removes it.
func Unpack(ctx context.Context, src, dst string, lim Limits) error {
	lim = lim.withDefaults()
	if err := prepareDst(dst); err != nil {
		return err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("bundle: open destination: %w", err)
	}
	defer root.Close()
	x := newExtractor(ctx, root, lim)

	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if fi.IsDir() {
		if inside(dst, src) {
			return fmt.Errorf("bundle: destination %s is inside the bundle directory %s", dst, src)
		}
		err = x.copyDir(src)
	} else {
		err = x.openArchive(src)
	}
	if err != nil {
		return fmt.Errorf("bundle %s: %w", src, err)
	}
	if err := x.finish(); err != nil {
		return fmt.Errorf("bundle %s: %w", src, err)
	}
	return nil
}

func prepareDst(dst string) error {
	fi, err := os.Lstat(dst)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dst, 0o755); err != nil {
			return fmt.Errorf("bundle: create destination: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("bundle: destination: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("bundle: %s: %w", dst, ErrDestination)
	}
	d, err := os.Open(dst)
	if err != nil {
		return fmt.Errorf("bundle: destination: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("bundle: %s: %w", dst, ErrDestination)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("bundle: destination: %w", err)
	}
	return nil
}

// format is a recognised archive format.
type format int

const (
	formatUnknown format = iota
	formatTar
	formatGzip
	formatZip
)

// sniff recognises an archive by its first bytes, then by its name.
func sniff(head []byte, name string) format {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return formatGzip
	case len(head) >= 4 && head[0] == 'P' && head[1] == 'K' &&
		(head[2] == 3 && head[3] == 4 || head[2] == 5 && head[3] == 6 || head[2] == 7 && head[3] == 8):
		return formatZip
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return formatTar
	}
	lower := strings.ToLower(name)
	if strings.HasSuffix(lower, ".tar") && len(head) >= 512 {
		return formatTar // pre-POSIX tar: no magic
	}
	return formatUnknown
}

func (x *extractor) openArchive(src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	switch sniff(head, filepath.Base(src)) {
	case formatTar:
		return x.readTar(f)
	case formatGzip:
		return x.readGzip(f)
	case formatZip:
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return x.readZip(f, fi.Size())
	}
	return fmt.Errorf("%w: not a tar, tar.gz or zip archive", ErrFormat)
}

// inside reports whether p is dir or below it, comparing absolute paths.
func inside(p, dir string) bool {
	ap, err1 := filepath.Abs(p)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	return ap == ad || strings.HasPrefix(ap, strings.TrimSuffix(ad, "/")+"/")
}
