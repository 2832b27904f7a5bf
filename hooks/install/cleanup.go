package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Cleanup list format: plain text, one entry per line, each line ended by
// "\n"; a last line without one is a write cut short by a crash and is
// ignored. An entry is either
//
//	/absolute/host/path          a file, link or directory created
//	semanage:/absolute/host/path an SELinux file-context rule added
//
// Paths that contain a newline are refused at install time, so every line is
// exactly one path. Entries are undone in reverse order.

const semanagePrefix = "semanage:"

type cleanupEntry struct {
	path     string
	semanage bool
}

func readCleanupList(name string) ([]cleanupEntry, error) {
	if name == "" {
		return nil, nil
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseCleanupList(string(b)), nil
}

func parseCleanupList(s string) []cleanupEntry {
	var out []cleanupEntry
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return out // no line, or an unfinished one
		}
		line := s[:i]
		s = s[i+1:]
		e := cleanupEntry{path: line}
		if rest, ok := strings.CutPrefix(line, semanagePrefix); ok {
			e = cleanupEntry{path: rest, semanage: true}
		}
		out = append(out, e)
	}
}

// cleanupList is this deployment's list, open for appending.
type cleanupList struct {
	f   *os.File
	buf []byte
}

func openCleanupList(name string) (*cleanupList, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &cleanupList{f: f}, nil
}

// add queues entries; commit writes and fsyncs them.
func (l *cleanupList) add(path string) {
	l.buf = append(l.buf, path...)
	l.buf = append(l.buf, '\n')
}

func (l *cleanupList) addSemanage(path string) {
	l.buf = append(l.buf, semanagePrefix...)
	l.add(path)
}

func (l *cleanupList) commit() error {
	if len(l.buf) == 0 {
		return nil
	}
	if _, err := l.f.Write(l.buf); err != nil {
		return err
	}
	l.buf = l.buf[:0]
	return l.f.Sync()
}

func (l *cleanupList) close() error {
	if l.f == nil {
		return nil
	}
	err := l.commit()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// checkListable refuses a path that the list format cannot hold.
func checkListable(p string) error {
	if strings.ContainsAny(p, "\n\x00") {
		return fmt.Errorf("install: destination %q contains a newline or NUL byte", p)
	}
	return nil
}

// removePrevious undoes the previous deployment's list in reverse order:
// files and links are removed, directories only when empty, SELinux rules
// deleted. Entries outside the root, or not absolute and clean, are skipped.
func (in *installer) removePrevious(ctx context.Context, prev []cleanupEntry) (int, error) {
	removed := 0
	for i := len(prev) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		e := prev[i]
		if !filepath.IsAbs(e.path) || filepath.Clean(e.path) != e.path || e.path == "/" {
			in.log.Warn("cleanup list: skipping malformed entry", "entry", e.path)
			continue
		}
		if in.root != "" && !strings.HasPrefix(e.path, in.root+"/") {
			in.log.Warn("cleanup list: skipping entry outside the root", "entry", e.path, "root", in.root)
			continue
		}
		if e.semanage {
			in.deleteContextRule(ctx, e.path)
			continue
		}
		fi, err := os.Lstat(e.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("install: remove %s, installed by the previous deployment: %w", e.path, err)
		}
		if fi.IsDir() {
			err := syscall.Rmdir(e.path)
			switch {
			case err == nil:
				removed++
			case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOENT):
				in.log.Debug("cleanup list: directory not empty, kept", "dir", e.path)
			default:
				return removed, fmt.Errorf("install: remove directory %s, created by the previous deployment: %w", e.path, err)
			}
			continue
		}
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("install: remove %s, installed by the previous deployment: %w", e.path, err)
		}
		removed++
	}
	if removed > 0 {
		in.log.Info("removed the previous deployment's files", "entries", removed)
	}
	return removed, nil
}

// afterCleanupView answers as the file system will look once the previous
// list is undone, for finding DISALLOW conflicts before undoing it. What the
// list names is taken as gone, and so is whatever lies below a link it names.
// A directory it names may in fact stay (when not empty), but taking it as
// gone only makes the planner create it, never report a false conflict;
// paths below it that the list does not name are looked up for real.
type afterCleanupView struct {
	gone map[string]bool
}

func newAfterCleanupView(prev []cleanupEntry) afterCleanupView {
	v := afterCleanupView{gone: make(map[string]bool, len(prev))}
	for _, e := range prev {
		if !e.semanage {
			v.gone[e.path] = true
		}
	}
	return v
}

// removed reports whether p, or a non-directory ancestor of p, is named by
// the list (a link to a directory is removed, and with it what lies below).
func (v afterCleanupView) removed(p string) bool {
	if v.gone[p] {
		return true
	}
	for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
		if v.gone[d] {
			if fi, err := os.Lstat(d); err == nil && !fi.IsDir() {
				return true
			}
		}
	}
	return false
}

func (v afterCleanupView) lstat(p string) (fs.FileInfo, error) {
	if v.removed(p) {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return os.Lstat(p)
}

func (v afterCleanupView) stat(p string) (fs.FileInfo, error) {
	if v.removed(p) {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	return os.Stat(p)
}

type osView struct{}

func (osView) lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }
func (osView) stat(p string) (fs.FileInfo, error)  { return os.Stat(p) }
