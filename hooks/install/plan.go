package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-dev/drover/hooks/appspec"
)

// view is how the planner sees the destination file system.
type view interface {
	lstat(p string) (fs.FileInfo, error)
	stat(p string) (fs.FileInfo, error)
}

type copyOp struct {
	src     string // in the bundle
	dst     string // host path
	link    bool   // src is a symbolic link
	replace bool   // dst exists (OVERWRITE)
}

// planner turns the files section into directories to create and copies to
// make, in CodeDeploy's order, without touching the destination.
type planner struct {
	in       *installer
	bundle   string
	behavior appspec.FileExistsBehavior
	v        view
	// exact says v is the file system itself, so a directory found missing
	// has no entries to look up. (The after-cleanup view takes directories
	// the previous list names as gone although what they hold may stay.)
	exact bool

	mkdirs    []string // in creation order, parents first
	isMkdir   map[string]bool
	copies    []copyOp
	copyIndex map[string]int // dst -> index in copies
	conflicts []string       // DISALLOW
}

func newPlanner(in *installer, bundle string, behavior appspec.FileExistsBehavior, v view) *planner {
	return &planner{
		in:        in,
		bundle:    bundle,
		behavior:  behavior,
		v:         v,
		exact:     v == view(osView{}),
		isMkdir:   make(map[string]bool),
		copyIndex: make(map[string]int),
	}
}

func (p *planner) planFiles(files []appspec.File) error {
	for _, f := range files {
		if err := p.planFile(f); err != nil {
			return err
		}
	}
	return nil
}

func (p *planner) planFile(f appspec.File) error {
	src, err := p.source(f)
	if err != nil {
		return err
	}
	dest, err := p.in.hostPath(f.Destination)
	if err != nil {
		return fmt.Errorf("install: files entry (appspec line %d): destination %w", f.Line, err)
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("install: files entry (appspec line %d): source %q: %w", f.Line, f.Source, err)
	}
	if fi.IsDir() {
		if err := p.ancestors(dest); err != nil {
			return err
		}
		return p.dirCopy(src, dest, false)
	}
	target := filepath.Join(dest, filepath.Base(src))
	if err := p.ancestors(target); err != nil {
		return err
	}
	return p.normalCopy(src, target, fi.Mode().Type(), false)
}

// source resolves a files source inside the bundle; "/" and "" are the
// bundle itself. A source may not leave the bundle, lexically or through a
// symbolic link in its parent directories.
func (p *planner) source(f appspec.File) (string, error) {
	src := filepath.Join(p.bundle, filepath.Clean("/"+f.Source))
	if src == p.bundle {
		return src, nil
	}
	realBundle, err := filepath.EvalSymlinks(p.bundle)
	if err != nil {
		return "", fmt.Errorf("install: bundle directory: %w", err)
	}
	realParent, err := filepath.EvalSymlinks(filepath.Dir(src))
	if err != nil {
		return "", fmt.Errorf("install: files entry (appspec line %d): source %q: %w", f.Line, f.Source, err)
	}
	if realParent != realBundle && !strings.HasPrefix(realParent, realBundle+"/") {
		return "", fmt.Errorf("install: files entry (appspec line %d): source %q leaves the bundle through a symbolic link", f.Line, f.Source)
	}
	return src, nil
}

// isDir reports whether p is, or will be, a directory (following links, as
// CodeDeploy's File.directory? does). It fails when p exists and is not one.
func (p *planner) isDir(path string) (bool, error) {
	if p.isMkdir[path] {
		return true, nil
	}
	if _, ok := p.copyIndex[path]; ok {
		return false, fmt.Errorf("install: %s is both a file and a directory in the files section", path)
	}
	fi, err := p.v.stat(path)
	if err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("install: %s exists and is not a directory", path)
		}
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("install: %w", err)
	}
	if _, lerr := p.v.lstat(path); lerr == nil {
		return false, fmt.Errorf("install: %s is a dangling symbolic link where a directory is needed", path)
	}
	return false, nil
}

// ancestors plans the creation of the missing ancestors of path, stopping at
// the root.
func (p *planner) ancestors(path string) error {
	var missing []string
	top := "/"
	if p.in.root != "" {
		top = p.in.root
	}
	for d := filepath.Dir(path); d != top && d != "/" && d != "."; d = filepath.Dir(d) {
		ok, err := p.isDir(d)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := p.mkdir(missing[i]); err != nil {
			return err
		}
	}
	return nil
}

func (p *planner) mkdir(path string) error {
	if err := checkListable(path); err != nil {
		return err
	}
	if _, ok := p.copyIndex[path]; ok {
		return fmt.Errorf("install: %s is both a file and a directory in the files section", path)
	}
	if !p.isMkdir[path] {
		p.isMkdir[path] = true
		p.mkdirs = append(p.mkdirs, path)
	}
	return nil
}

// dirCopy plans copying the directory src into dest. absent says dest is
// known not to exist (its parent is being created), so nothing below it
// needs looking up.
func (p *planner) dirCopy(src, dest string, absent bool) error {
	if !absent {
		ok, err := p.isDir(dest)
		if err != nil {
			return err
		}
		absent = !ok && p.exact
		if !ok {
			if err := p.mkdir(dest); err != nil {
				return err
			}
		}
	} else if err := p.mkdir(dest); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("install: read bundle directory: %w", err)
	}
	for _, e := range ents {
		s := filepath.Join(src, e.Name())
		d := filepath.Join(dest, e.Name())
		if e.IsDir() {
			if err := p.dirCopy(s, d, absent); err != nil {
				return err
			}
			continue
		}
		if err := p.normalCopy(s, d, e.Type(), absent); err != nil {
			return err
		}
	}
	return nil
}

// normalCopy plans copying the file or link src, of type t, to dest. absent
// says dest's directory is being created, so dest cannot exist.
func (p *planner) normalCopy(src, dest string, t fs.FileMode, absent bool) error {
	if err := checkListable(dest); err != nil {
		return err
	}
	if t != 0 && t != fs.ModeSymlink {
		return fmt.Errorf("install: bundle file %s is not a regular file, directory or symbolic link (%v)", src, t)
	}
	if i, ok := p.copyIndex[dest]; ok {
		return fmt.Errorf("install: two sources, %s and %s, for the same destination %s", p.copies[i].src, src, dest)
	}
	if p.isMkdir[dest] {
		return fmt.Errorf("install: %s is both a file and a directory in the files section", dest)
	}
	op := copyOp{src: src, dst: dest, link: t == fs.ModeSymlink}
	var fi fs.FileInfo
	err := fs.ErrNotExist
	if !absent {
		fi, err = p.v.lstat(dest)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
	case err != nil:
		return fmt.Errorf("install: %w", err)
	default:
		switch p.behavior {
		case appspec.Disallow:
			p.conflicts = append(p.conflicts, dest)
			return nil
		case appspec.Retain:
			p.in.log.Debug("destination exists, retained", "path", dest)
			return nil
		case appspec.Overwrite:
			if fi.IsDir() {
				return fmt.Errorf("install: %s is a directory and cannot be overwritten by the file %s", dest, src)
			}
			op.replace = true
		}
	}
	p.copyIndex[dest] = len(p.copies)
	p.copies = append(p.copies, op)
	return nil
}

func (p *planner) conflictErr() error {
	switch n := len(p.conflicts); n {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("install: %s exists and file_exists_behavior is DISALLOW: %w", p.conflicts[0], ErrFileExists)
	default:
		return fmt.Errorf("install: %s (and %d more) exists and file_exists_behavior is DISALLOW: %w", p.conflicts[0], n-1, ErrFileExists)
	}
}
