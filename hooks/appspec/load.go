package appspec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// names is where Find looks, in order.
var names = [...]string{"appspec.yml", "appspec.yaml"}

// Find returns the path of the appspec file at the root of bundleDir:
// appspec.yml, else appspec.yaml. The error wraps ErrNotFound when there is
// neither.
func Find(bundleDir string) (string, error) {
	for _, n := range names {
		p := filepath.Join(bundleDir, n)
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.Mode().IsRegular():
			return p, nil
		case err == nil:
			return "", fmt.Errorf("appspec %s is not a regular file", p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("look for appspec: %w", err)
		}
	}
	return "", fmt.Errorf("%w: no appspec.yml or appspec.yaml at the root of %s", ErrNotFound, bundleDir)
}

// Load finds, reads and parses the appspec of an unpacked bundle, then
// checks it against the bundle: every hook location is a regular file (or
// a symlink to one inside the bundle), every files source exists, and
// permissions entries whose object is a file copied from the bundle use no
// pattern, except or default ACL (as CodeDeploy requires). Problems from
// parsing and from these checks are reported together in one *Error.
func Load(bundleDir string) (*AppSpec, error) {
	name, err := Find(bundleDir)
	if err != nil {
		return nil, err
	}
	data, err := readLimited(name)
	if err != nil {
		return nil, err
	}
	p := newParser(name)
	spec := p.parse(data)
	// The bundle checks see only the entries that parsed, so their
	// problems never repeat the parser's.
	if err := p.checkBundle(spec, bundleDir); err != nil {
		return nil, err
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	spec.Warnings = p.Warnings()
	return spec, nil
}

func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read appspec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read appspec %s: %w", name, err)
	}
	return data, nil
}

// lineOf returns the recorded line of a field, or fallback.
func (s *AppSpec) lineOf(field string, fallback int) int {
	if l, ok := s.lines[field]; ok {
		return l
	}
	return fallback
}

// checkBundle adds the problems of spec against the unpacked bundle. Its
// error is for a bundle it cannot inspect at all.
func (p *parser) checkBundle(spec *AppSpec, bundleDir string) error {
	root, err := filepath.EvalSymlinks(bundleDir)
	if err != nil {
		return fmt.Errorf("inspect bundle: %w", err)
	}
	b := bundle{root: root}
	for _, ev := range Events {
		for i, h := range spec.Hooks[ev] {
			field := index(join("hooks", string(ev)), i) + ".location"
			line := spec.lineOf(field, h.Line)
			switch kind, err := b.kind(h.Location); {
			case err != nil:
				return err
			case kind == missing:
				p.errorf(line, field, "script %q is not in the bundle", h.Location)
			case kind == escapes:
				p.errorf(line, field, "script %q is a symlink that leads outside the bundle", h.Location)
			case kind == directory:
				p.errorf(line, field, "%q is a directory, not a script", h.Location)
			case kind == other:
				p.errorf(line, field, "%q is not a regular file", h.Location)
			}
		}
	}
	for i, f := range spec.Files {
		field := index("files", i) + ".source"
		line := spec.lineOf(field, f.Line)
		switch kind, err := b.kind(f.Source); {
		case err != nil:
			return err
		case kind == missing:
			p.errorf(line, field, "%q is not in the bundle", f.Source)
		case kind == escapes:
			p.errorf(line, field, "%q is a symlink that leads outside the bundle", f.Source)
		}
	}
	return p.checkFileObjects(spec, b)
}

// checkFileObjects applies CodeDeploy's rules for permissions entries whose
// object is a file installed from the bundle: pattern and except only make
// sense below a directory, and only directories carry default ACLs.
func (p *parser) checkFileObjects(spec *AppSpec, b bundle) error {
	var suspects []int
	for i, perm := range spec.Permissions {
		if !perm.HasType(TypeFile) {
			continue
		}
		def := false
		for _, a := range perm.ACLs {
			def = def || isDefaultACE(a)
		}
		if perm.Pattern != "**" || len(perm.Except) > 0 || def {
			suspects = append(suspects, i)
		}
	}
	if len(suspects) == 0 {
		return nil
	}
	targets, err := b.copyTargets(spec.Files)
	if err != nil {
		return err
	}
	for _, i := range suspects {
		perm := spec.Permissions[i]
		if !targets[perm.Object] {
			continue
		}
		field := index("permissions", i)
		if perm.Pattern != "**" {
			p.errorf(spec.lineOf(field+".pattern", perm.Line), field+".pattern",
				"object %s is a file copied from the bundle; a pattern only applies below a directory (leave it out or use \"**\")", perm.Object)
		}
		if len(perm.Except) > 0 {
			p.errorf(spec.lineOf(field+".except", perm.Line), field+".except",
				"object %s is a file copied from the bundle; except only applies below a directory", perm.Object)
		}
		for _, a := range perm.ACLs {
			if isDefaultACE(a) {
				p.errorf(spec.lineOf(field+".acls", perm.Line), field+".acls",
					"object %s is a file copied from the bundle; default ACL entries (%s) apply to directories only", perm.Object, a)
				break
			}
		}
	}
	return nil
}

type entryKind int

const (
	missing entryKind = iota
	regular
	directory
	other
	escapes
)

// bundle inspects the unpacked bundle; root has its symlinks resolved.
type bundle struct{ root string }

// kind says what rel (cleaned, relative to the root; "" is the root) is,
// following symlinks only while they stay inside the bundle.
func (b bundle) kind(rel string) (entryKind, error) {
	full := filepath.Join(b.root, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return missing, nil
		}
		return 0, fmt.Errorf("inspect bundle entry %s: %w", rel, err)
	}
	if r, err := filepath.Rel(b.root, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return escapes, nil
	}
	fi, err := os.Stat(real)
	if err != nil {
		return 0, fmt.Errorf("inspect bundle entry %s: %w", rel, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return regular, nil
	case fi.IsDir():
		return directory, nil
	}
	return other, nil
}

// copyTargets lists the instance paths of the files Install will copy, the
// way CodeDeploy lays them out: a file source lands in destination/basename,
// a directory source's content lands below destination.
func (b bundle) copyTargets(files []File) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range files {
		kind, err := b.kind(f.Source)
		if err != nil {
			return nil, err
		}
		switch kind {
		case regular, other:
			out[path.Join(f.Destination, path.Base("/"+f.Source))] = true
		case directory:
			src := filepath.Join(b.root, filepath.FromSlash(f.Source))
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				rel, err := filepath.Rel(src, p)
				if err != nil {
					return err
				}
				out[path.Join(f.Destination, filepath.ToSlash(rel))] = true
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("list bundle files under %s: %w", f.Source, err)
			}
		}
	}
	return out, nil
}
