package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

func (x *extractor) readGzip(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: gzip: %w", ErrFormat, err)
	}
	defer zr.Close()
	return x.readTar(zr)
}

func (x *extractor) readTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: tar: %w", ErrFormat, err)
		}
		if err := x.tarEntry(tr, hdr); err != nil {
			return err
		}
	}
}

func (x *extractor) tarEntry(tr *tar.Reader, hdr *tar.Header) error {
	name := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return x.file(name, unixMode(hdr.Mode), hdr.ModTime, hdr.Size, tr)
	case tar.TypeDir:
		// A directory's data, if any, is skipped by the reader: charge it so
		// a huge one cannot make us decompress without bound.
		if err := x.charge(name, hdr.Size); err != nil {
			return err
		}
		return x.dir(name, unixMode(hdr.Mode), hdr.ModTime)
	case tar.TypeSymlink:
		if err := x.charge(name, hdr.Size); err != nil {
			return err
		}
		return x.symlink(name, hdr.Linkname)
	case tar.TypeLink:
		if err := x.charge(name, hdr.Size); err != nil {
			return err
		}
		return x.hardlink(name, hdr.Linkname)
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar:
		return x.special(name, "character device")
	case tar.TypeBlock:
		return x.special(name, "block device")
	case tar.TypeFifo:
		return x.special(name, "FIFO")
	default:
		return x.special(name, fmt.Sprintf("unsupported tar entry type %q", hdr.Typeflag))
	}
}
