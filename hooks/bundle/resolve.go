package bundle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// maxLinkHops bounds how many symbolic links one resolution follows, as the
// kernel's own limit (ELOOP) does.
const maxLinkHops = 40

// appspecNames are the file names CodeDeploy looks for.
var appspecNames = [...]string{"appspec.yml", "appspec.yaml"}

func hasAppspec(root *os.Root, dir string) bool {
	for _, n := range appspecNames {
		p := n
		if dir != "" {
			p = dir + "/" + n
		}
		if _, err := root.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// strip applies CodeDeploy's nested-appspec rule: if the root holds no
// appspec and exactly one top-level directory does, that directory's contents
// become the root and everything else is dropped.
func (x *extractor) strip() error {
	if hasAppspec(x.root, "") {
		return nil
	}
	top, err := readDirNames(x.root, ".")
	if err != nil {
		return err
	}
	nested := ""
	for _, n := range top {
		fi, err := x.root.Lstat(n)
		if err != nil || !fi.IsDir() || !hasAppspec(x.root, n) {
			continue
		}
		if nested != "" {
			return nil // several candidates: CodeDeploy does not strip either
		}
		nested = n
	}
	if nested == "" {
		return nil
	}
	inner, err := readDirNames(x.root, nested)
	if err != nil {
		return err
	}
	taken := make(map[string]bool, len(top)+len(inner))
	for _, n := range top {
		taken[n] = true
	}
	for _, n := range inner {
		taken[n] = true
	}
	tmp := ""
	for tmp == "" || taken[tmp] {
		var b [8]byte
		_, _ = rand.Read(b[:])
		tmp = ".drover-strip-" + hex.EncodeToString(b[:])
	}
	if err := x.root.Rename(nested, tmp); err != nil {
		return fmt.Errorf("strip top-level directory %q: %w", nested, err)
	}
	for _, n := range top {
		if n == nested {
			continue
		}
		if err := x.root.RemoveAll(n); err != nil {
			return fmt.Errorf("strip top-level directory %q: remove sibling %q: %w", nested, n, err)
		}
	}
	for _, n := range inner {
		if err := x.root.Rename(tmp+"/"+n, n); err != nil {
			return fmt.Errorf("strip top-level directory %q: %w", nested, err)
		}
	}
	if err := x.root.Remove(tmp); err != nil {
		return fmt.Errorf("strip top-level directory %q: %w", nested, err)
	}
	prefix := nested + "/"
	dirs := make(map[string]dirMeta, len(x.dirs))
	for n, m := range x.dirs {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			dirs[rest] = m
		}
	}
	x.dirs = dirs
	x.kinds = nil // no longer describes the tree; nothing uses it after finish
	return nil
}

func readDirNames(root *os.Root, dir string) ([]string, error) {
	d, err := root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// checkLinks walks the tree under root and checks that every symbolic link
// resolves inside it.
func checkLinks(ctx context.Context, root *os.Root) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if err := resolveInside(root, p); err != nil {
			return &EntryError{Entry: p, Err: err}
		}
		return nil
	})
}

// resolveInside follows the symbolic link at rel, and any links its target
// passes through, component by component, and fails if the resolution ever
// goes above root. Components that do not exist are resolved lexically.
func resolveInside(root *os.Root, rel string) error {
	target, err := root.Readlink(rel)
	if err != nil {
		return err
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("%w: symbolic link to absolute path %q", ErrUnsafePath, target)
	}
	var stack []string // resolved components, relative to root
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		stack = strings.Split(rel[:i], "/")
	}
	pending := strings.Split(target, "/")
	hops := 1
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("%w: symbolic link target %q leaves the bundle root", ErrUnsafePath, target)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cand := strings.Join(append(stack, c), "/")
		fi, err := root.Lstat(cand)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
				return err
			}
			stack = append(stack, c)
			continue
		}
		hops++
		if hops > maxLinkHops {
			return fmt.Errorf("%w: too many levels of symbolic links resolving %q", ErrUnsafePath, target)
		}
		t, err := root.Readlink(cand)
		if err != nil {
			return err
		}
		if strings.HasPrefix(t, "/") {
			return fmt.Errorf("%w: symbolic link target %q passes through %q, a link to absolute path %q", ErrUnsafePath, target, cand, t)
		}
		pending = append(strings.Split(t, "/"), pending...)
	}
	return nil
}
