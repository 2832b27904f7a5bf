package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/safelink"
)

// kind is what the extractor created at a path.
type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

type dirMeta struct {
	mode  fs.FileMode
	mtime time.Time // zero: leave as is
}

// extractor writes entries below root, checking every name. It is the only
// writer of root while it runs, so its map of what it created is the truth
// about what is on disk.
type extractor struct {
	ctx     context.Context
	root    *os.Root
	lim     Limits
	entries int
	bytes   int64
	kinds   map[string]kind    // cleaned relative path -> what we made there
	dirs    map[string]dirMeta // metadata applied once all entries are written
}

func newExtractor(ctx context.Context, root *os.Root, lim Limits) *extractor {
	return &extractor{
		ctx:   ctx,
		root:  root,
		lim:   lim,
		kinds: make(map[string]kind),
		dirs:  make(map[string]dirMeta),
	}
}

// begin counts an entry and returns its cleaned relative name; "" means the
// bundle root itself.
func (x *extractor) begin(raw string) (string, error) {
	if err := x.ctx.Err(); err != nil {
		return "", err
	}
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return "", entryErr(raw, ErrTooLarge, "more than %d entries", x.lim.MaxEntries)
	}
	rel, err := cleanName(raw)
	if err != nil {
		return "", &EntryError{Entry: raw, Err: err}
	}
	return rel, nil
}

// Bounds on one entry's name: Linux's PATH_MAX, and a depth no real bundle
// comes near. Creating an entry costs time in its depth (each ancestor is
// checked from the root, through no link): without a bound one 60 KB zip
// name of 30,000 directories kept Unpack busy for hours.
const (
	maxNameBytes = 4096
	maxNameDepth = 128
)

// cleanName turns an archive name into a clean relative slash path. It
// refuses what could leave the root rather than rewriting it, and a name
// beyond maxNameBytes or maxNameDepth (ErrTooLarge).
func cleanName(raw string) (string, error) {
	if len(raw) > maxNameBytes {
		return "", fmt.Errorf("%w: name of %d bytes, more than %d", ErrTooLarge, len(raw), maxNameBytes)
	}
	if strings.IndexByte(raw, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafePath)
	}
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrUnsafePath)
	}
	parts := strings.Split(raw, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: path leaves the bundle root (\"..\")", ErrUnsafePath)
		}
		out = append(out, p)
		if len(out) > maxNameDepth {
			return "", fmt.Errorf("%w: path deeper than %d directories", ErrTooLarge, maxNameDepth)
		}
	}
	return strings.Join(out, "/"), nil
}

// charge adds n bytes of content to the budget.
func (x *extractor) charge(raw string, n int64) error {
	if n < 0 || n > x.lim.MaxBytes-x.bytes {
		return entryErr(raw, ErrTooLarge, "content exceeds %d bytes", x.lim.MaxBytes)
	}
	x.bytes += n
	return nil
}

// parents makes sure every ancestor of rel is a directory we created,
// creating missing ones; each one created counts as an entry (MaxEntries
// bounds what the bundle makes on disk, not only what it lists). An
// ancestor that is a link or a file is refused: nothing is ever written
// through a symbolic link.
func (x *extractor) parents(raw, rel string) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		p := rel[:i]
		switch x.kinds[p] {
		case kindDir:
		case 0:
			x.entries++
			if x.entries > x.lim.MaxEntries {
				return entryErr(raw, ErrTooLarge, "more than %d entries, counting the directories its paths imply", x.lim.MaxEntries)
			}
			if err := x.root.Mkdir(p, 0o700); err != nil {
				return &EntryError{Entry: raw, Err: err}
			}
			x.kinds[p] = kindDir
			x.dirs[p] = dirMeta{mode: 0o755}
		case kindSymlink:
			return entryErr(raw, ErrUnsafePath, "path passes through symbolic link %q", p)
		default:
			return entryErr(raw, ErrUnsafePath, "path passes through non-directory %q", p)
		}
	}
	return nil
}

// claim prepares rel for a new entry of kind k: parents exist, and whatever
// is there may be replaced (a file by a file, as tar does for appended
// members; a directory by a directory).
func (x *extractor) claim(raw, rel string, k kind) (exists bool, err error) {
	if rel == "" {
		if k == kindDir {
			return true, nil
		}
		return false, entryErr(raw, ErrUnsafePath, "entry names the bundle root")
	}
	if err := x.parents(raw, rel); err != nil {
		return false, err
	}
	switch old := x.kinds[rel]; {
	case old == 0:
		return false, nil
	case old == k && k != kindSymlink:
		return true, nil
	default:
		return false, entryErr(raw, ErrUnsafePath, "entry replaces an earlier entry of another type")
	}
}

func (x *extractor) dir(raw string, mode fs.FileMode, mtime time.Time) error {
	rel, err := x.begin(raw)
	if err != nil {
		return err
	}
	exists, err := x.claim(raw, rel, kindDir)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil // the root keeps the mode it was created with
	}
	if !exists {
		if err := x.root.Mkdir(rel, 0o700); err != nil {
			return &EntryError{Entry: raw, Err: err}
		}
		x.kinds[rel] = kindDir
	}
	x.dirs[rel] = dirMeta{mode: mode, mtime: mtime}
	return nil
}

func (x *extractor) file(raw string, mode fs.FileMode, mtime time.Time, size int64, r io.Reader) error {
	rel, err := x.begin(raw)
	if err != nil {
		return err
	}
	if size >= 0 && size > x.lim.MaxBytes-x.bytes {
		return entryErr(raw, ErrTooLarge, "content exceeds %d bytes", x.lim.MaxBytes)
	}
	exists, err := x.claim(raw, rel, kindFile)
	if err != nil {
		return err
	}
	if exists {
		if err := x.root.Remove(rel); err != nil {
			return &EntryError{Entry: raw, Err: err}
		}
	}
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &EntryError{Entry: raw, Err: err}
	}
	x.kinds[rel] = kindFile
	budget := x.lim.MaxBytes - x.bytes
	n, err := io.Copy(f, io.LimitReader(r, budget+1))
	if err == nil && n > budget {
		err = fmt.Errorf("%w: content exceeds %d bytes", ErrTooLarge, x.lim.MaxBytes)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return &EntryError{Entry: raw, Err: err}
		}
		return &EntryError{Entry: raw, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
	}
	x.bytes += n
	if !mtime.IsZero() {
		if err := x.root.Chtimes(rel, mtime, mtime); err != nil {
			return &EntryError{Entry: raw, Err: err}
		}
	}
	return nil
}

func (x *extractor) symlink(raw, target string) error {
	rel, err := x.begin(raw)
	if err != nil {
		return err
	}
	if err := x.charge(raw, int64(len(target))); err != nil {
		return err
	}
	if err := safelink.Target(rel, target); err != nil {
		return linkErr(raw, err)
	}
	if _, err := x.claim(raw, rel, kindSymlink); err != nil {
		return err
	}
	if err := x.root.Symlink(target, rel); err != nil {
		return &EntryError{Entry: raw, Err: err}
	}
	x.kinds[rel] = kindSymlink
	return nil
}

// linkErr is the EntryError of a link that breaks safelink's rule (or
// could not be checked).
func linkErr(entry string, err error) error {
	var le *safelink.Error
	if errors.As(err, &le) {
		return &EntryError{Entry: entry, Err: fmt.Errorf("%w: %s", ErrUnsafePath, le.Msg)}
	}
	return &EntryError{Entry: entry, Err: err}
}

func (x *extractor) hardlink(raw, linkname string) error {
	rel, err := x.begin(raw)
	if err != nil {
		return err
	}
	old, err := cleanName(linkname)
	if err != nil {
		return &EntryError{Entry: raw, Err: fmt.Errorf("hard link target %q: %w", linkname, err)}
	}
	if x.kinds[old] != kindFile {
		return entryErr(raw, ErrUnsafePath, "hard link to %q, which is not a regular file earlier in the bundle", linkname)
	}
	if old == rel {
		return nil
	}
	exists, err := x.claim(raw, rel, kindFile)
	if err != nil {
		return err
	}
	if exists {
		if err := x.root.Remove(rel); err != nil {
			return &EntryError{Entry: raw, Err: err}
		}
	}
	if err := x.root.Link(old, rel); err != nil {
		return &EntryError{Entry: raw, Err: err}
	}
	x.kinds[rel] = kindFile
	return nil
}

func (x *extractor) special(raw, what string) error {
	if _, err := x.begin(raw); err != nil {
		return err
	}
	return entryErr(raw, ErrSpecialFile, "%s", what)
}

// finish strips a single top-level directory holding the appspec, applies
// directory modes and times, and checks that every symbolic link resolves
// inside the root (internal/safelink's rule, once stripped).
func (x *extractor) finish() error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	if err := x.strip(); err != nil {
		return err
	}
	if err := safelink.Tree(x.ctx, x.root); err != nil {
		var le *safelink.Error
		if errors.As(err, &le) {
			return linkErr(le.Link, err)
		}
		return err
	}
	// Deepest first, so that no directory becomes unwritable before its
	// children are done (matters only when not running as root).
	names := make([]string, 0, len(x.dirs))
	for n := range x.dirs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return strings.Count(names[i], "/") > strings.Count(names[j], "/") })
	for _, n := range names {
		m := x.dirs[n]
		if err := x.root.Chmod(n, m.mode); err != nil {
			return fmt.Errorf("directory %q: %w", n, err)
		}
		if !m.mtime.IsZero() {
			if err := x.root.Chtimes(n, m.mtime, m.mtime); err != nil {
				return fmt.Errorf("directory %q: %w", n, err)
			}
		}
	}
	return nil
}

// permMode keeps the permission, setuid, setgid and sticky bits of m.
func permMode(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// unixMode converts a Unix st_mode style permission (as tar stores it) into
// an fs.FileMode.
func unixMode(m int64) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
