package bundle

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// copyDir copies a directory bundle entry by entry through the same checks
// as an archive. Symbolic links are copied as links, never followed.
func (x *extractor) copyDir(src string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch t := fi.Mode().Type(); {
		case t == fs.ModeDir:
			return x.dir(rel, permMode(fi.Mode()), fi.ModTime())
		case t == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return x.symlink(rel, target)
		case t == 0:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return x.file(rel, permMode(fi.Mode()), fi.ModTime(), fi.Size(), f)
		default:
			return x.special(rel, typeName(t))
		}
	})
}

func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	case t&fs.ModeSocket != 0:
		return "socket"
	}
	return fmt.Sprintf("file of type %v", t)
}
