// Package safelink is drover's one rule for symbolic links in a bundle,
// whichever way the bundle arrives (an archive or a directory unpacked by
// hooks/bundle, a tree the git or directory source writes):
//
//   - a link's target is relative, not empty, without NUL bytes;
//   - followed from the link's directory, through every link it passes
//     (chains included, at most 40 hops as the kernel allows), it never
//     goes above the bundle root, not even for one step: "d/up/.." with
//     d/up a link to ".." leaves, as the kernel would resolve it;
//   - parts that do not exist (a dangling link) are resolved by name.
//
// Links that pass are kept as links, as CodeDeploy keeps them: a bundle's
// "current -> releases/2" or "lib -> ../shared/lib" inside the bundle work.
// Nothing is ever written through a link (hooks/bundle refuses it and
// writes through an os.Root; a git tree or a directory walk holds no path
// under a link), so the tree the rule checks is the tree the scripts get.
//
// Target is the check of one link from its text, made as it is written;
// Tree (or Dir) is the check of the whole tree once written, which alone
// sees chains.
package safelink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// ErrUnsafe is matched (errors.Is) by every *Error.
var ErrUnsafe = errors.New("unsafe symbolic link")

// Error is a link that breaks the rule.
type Error struct {
	Link string // its path, slash-separated, relative to the bundle root
	Msg  string // what is wrong, e.g. `symbolic link to absolute path "/etc"`
}

func (e *Error) Error() string        { return fmt.Sprintf("unsafe link %s: %s", e.Link, e.Msg) }
func (e *Error) Is(target error) bool { return target == ErrUnsafe }

// maxHops bounds how many symbolic links one resolution follows, as the
// kernel's own limit (ELOOP) does.
const maxHops = 40

// Target refuses a link at rel (a clean slash path relative to the root)
// to target when its text alone breaks the rule: empty, with a NUL,
// absolute, or leaving the root when joined to the link's directory.
// Chains of links are Tree's to check.
func Target(rel, target string) error {
	switch {
	case target == "":
		return &Error{Link: rel, Msg: "empty symbolic link target"}
	case strings.IndexByte(target, 0) >= 0:
		return &Error{Link: rel, Msg: "symbolic link target contains a NUL byte"}
	case strings.HasPrefix(target, "/"):
		return &Error{Link: rel, Msg: fmt.Sprintf("symbolic link to absolute path %q", target)}
	}
	if j := path.Join(path.Dir(rel), target); j == ".." || strings.HasPrefix(j, "../") {
		return &Error{Link: rel, Msg: fmt.Sprintf("symbolic link target %q leaves the bundle root", target)}
	}
	return nil
}

// Dir is Tree on the directory dir.
func Dir(ctx context.Context, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return Tree(ctx, root)
}

// Tree checks every symbolic link under root: each must resolve inside
// it. The first that does not is an *Error.
func Tree(ctx context.Context, root *os.Root) error {
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
		return resolveInside(root, p)
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
		return &Error{Link: rel, Msg: fmt.Sprintf("symbolic link to absolute path %q", target)}
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
				return &Error{Link: rel, Msg: fmt.Sprintf("symbolic link target %q leaves the bundle root", target)}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		cand := strings.Join(append(stack, c), "/")
		fi, err := root.Lstat(cand)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return err
			}
			stack = append(stack, c)
			continue
		}
		hops++
		if hops > maxHops {
			return &Error{Link: rel, Msg: fmt.Sprintf("too many levels of symbolic links resolving %q", target)}
		}
		t, err := root.Readlink(cand)
		if err != nil {
			return err
		}
		if strings.HasPrefix(t, "/") {
			return &Error{Link: rel, Msg: fmt.Sprintf("symbolic link target %q passes through %q, a link to absolute path %q", target, cand, t)}
		}
		pending = append(strings.Split(t, "/"), pending...)
	}
	return nil
}
