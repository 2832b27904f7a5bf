package bundle

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// maxLinkTarget bounds the size of a symbolic link stored in a zip.
const maxLinkTarget = 4096

func (x *extractor) readZip(r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%w: zip: %w", ErrFormat, err)
	}
	// Names are checked here, entry by entry, whatever GODEBUG says.
	if len(zr.File) > x.lim.MaxEntries {
		return fmt.Errorf("%w: %d entries, more than %d", ErrTooLarge, len(zr.File), x.lim.MaxEntries)
	}
	for _, f := range zr.File {
		if err := x.zipEntry(f); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) zipEntry(f *zip.File) error {
	// Info-ZIP's unzip treats backslashes as separators in archives made on
	// Windows; do the same, then apply the ordinary checks.
	name := strings.ReplaceAll(f.Name, `\`, "/")
	mode := f.Mode()
	switch {
	case mode.IsDir() || strings.HasSuffix(name, "/"):
		return x.dir(name, permMode(mode), f.Modified)
	case mode&fs.ModeSymlink != 0:
		if f.UncompressedSize64 > maxLinkTarget {
			return entryErr(name, ErrFormat, "symbolic link target longer than %d bytes", maxLinkTarget)
		}
		rc, err := f.Open()
		if err != nil {
			return &EntryError{Entry: name, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
		rc.Close()
		if err != nil {
			return &EntryError{Entry: name, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
		}
		if len(b) > maxLinkTarget {
			return entryErr(name, ErrFormat, "symbolic link target longer than %d bytes", maxLinkTarget)
		}
		return x.symlink(name, string(b))
	case mode.IsRegular():
		size := x.lim.MaxBytes + 1 // refused by file() unless the header fits
		if f.UncompressedSize64 <= uint64(x.lim.MaxBytes) {
			size = int64(f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return &EntryError{Entry: name, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
		}
		defer rc.Close()
		return x.file(name, permMode(mode), f.Modified, size, rc)
	case mode&fs.ModeNamedPipe != 0:
		return x.special(name, "FIFO")
	case mode&fs.ModeCharDevice != 0:
		return x.special(name, "character device")
	case mode&fs.ModeDevice != 0:
		return x.special(name, "block device")
	case mode&fs.ModeSocket != 0:
		return x.special(name, "socket")
	default:
		return x.special(name, fmt.Sprintf("unsupported zip entry mode %v", mode))
	}
}
