// Package dirsrc is the directory Source: DIR/manifest.yaml and the bundle
// in DIR/<bundle.path>, laid out as in git. The revision ID is a sha256
// over the manifest bytes and the bundle tree (paths, types, execute bits,
// contents, link targets). File contents are rehashed only when a file's
// size, mtime, ctime or inode changed, so an idle poll is a stat walk.
//
// Watch uses fsnotify on DIR's parent, DIR and every bundle directory, and
// rebuilds its watches after each event: atomic renames (a new release
// directory renamed over the old) drop watches. The Poller's periodic poll
// is the safety net for whatever fsnotify misses.
//
// # Errors
//
// A directory that does not exist (the message suggests a close sibling)
// or is not a directory, and a directory without manifest.yaml whose
// subdirectory has one (DIR is the parent of the application's directory),
// wrap source.ErrNotFound; a directory drover may not read wraps
// source.ErrAccessDenied. An existing directory without manifest.yaml
// wraps source.ErrNoManifest: nothing is published there yet, or a
// release is on its way (publish the bundle first, the manifest last).
package dirsrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/drover-dev/drover/internal/safelink"
	"github.com/drover-dev/drover/internal/suggest"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
)

// Config configures a Source.
type Config struct {
	Dir    string
	Logger *slog.Logger
}

// Source is a directory source. It is safe for concurrent use.
type Source struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex // guards hashes
	hashes map[string]fileHash
}

var (
	_ source.Source      = (*Source)(nil)
	_ source.Watcher     = (*Source)(nil)
	_ source.BundleNamer = (*Source)(nil)
)

type fileHash struct {
	size, mtime, ctime int64
	ino                uint64
	sum                [32]byte
}

// New returns a directory source.
func New(cfg Config) (*Source, error) {
	if cfg.Dir == "" {
		return nil, errors.New("dir source: directory is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("dir source: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{dir: dir, log: cfg.Logger, hashes: map[string]fileHash{}}, nil
}

// String describes the source.
func (s *Source) String() string { return "dir " + s.dir }

// load reads and validates the manifest and returns it with its bytes.
func (s *Source) load() (*manifest.Manifest, []byte, error) {
	name := filepath.Join(s.dir, manifest.FileName)
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, s.explainMissing()
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, nil, source.Markf(source.ErrAccessDenied, "dir source: %w", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dir source: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, manifest.MaxSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("dir source: read %s: %w", name, err)
	}
	m, err := manifest.Parse(name, data)
	if err != nil {
		return nil, nil, err
	}
	if m.Bundle.Key != "" {
		return nil, nil, &manifest.Error{Problems: []manifest.Problem{{File: name,
			Msg: "bundle.key is for s3 sources; a directory manifest names a directory with bundle.path"}}}
	}
	if fi, err := os.Stat(filepath.Join(s.dir, m.Bundle.Path)); err != nil || !fi.IsDir() {
		return nil, nil, &manifest.Error{Problems: []manifest.Problem{{File: name,
			Msg: fmt.Sprintf("bundle.path %q: no such directory", m.Bundle.Path)}}}
	}
	return m, data, nil
}

// explainMissing says why DIR/manifest.yaml is not there.
func (s *Source) explainMissing() error {
	fi, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		parent := filepath.Dir(s.dir)
		ents, perr := os.ReadDir(parent)
		if perr != nil {
			return source.Markf(source.ErrNotFound, "dir source: directory %s does not exist, nor does %s", s.dir, parent)
		}
		var names []string
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		hint := ""
		if c := suggest.Closest(filepath.Base(s.dir), names); c != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", filepath.Join(parent, c))
		}
		return source.Markf(source.ErrNotFound, "dir source: directory %s does not exist%s", s.dir, hint)
	case errors.Is(err, os.ErrPermission):
		return source.Markf(source.ErrAccessDenied, "dir source: %w", err)
	case err != nil:
		return fmt.Errorf("dir source: %w", err)
	case !fi.IsDir():
		return source.Markf(source.ErrNotFound, "dir source: %s is not a directory", s.dir)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("dir source: %w", err)
	}
	// A directory one level off the manifest is a mistake, not a release
	// on its way.
	near := []string{filepath.Dir(s.dir)}
	for _, e := range ents {
		if e.IsDir() {
			near = append(near, filepath.Join(s.dir, e.Name()))
		}
	}
	for _, d := range near {
		if _, err := os.Stat(filepath.Join(d, manifest.FileName)); err == nil {
			return source.Markf(source.ErrNotFound, "dir source: no %s in %s, but %s has one (did you mean %s?)",
				manifest.FileName, s.dir, d, d)
		}
	}
	return source.Markf(source.ErrNoManifest, "dir source: no %s in %s yet (publish the bundle first, the manifest last)",
		manifest.FileName, s.dir)
}

// BundleFile implements source.BundleNamer: the file's path on disk.
func (s *Source) BundleFile(rev source.Revision, rel string) string {
	bpath := "."
	if rev.Manifest != nil {
		bpath = rev.Manifest.Bundle.Path
	}
	return filepath.Join(s.dir, bpath, filepath.FromSlash(rel))
}

// Desired implements source.Source.
func (s *Source) Desired(ctx context.Context) (source.Revision, error) {
	m, data, err := s.load()
	if err != nil {
		return source.Revision{}, err
	}
	id, err := s.treeID(ctx, data, filepath.Join(s.dir, m.Bundle.Path), "")
	if err != nil {
		return source.Revision{}, err
	}
	label := m.Revision
	if label == "" {
		label = id
	}
	return source.Revision{ID: id, Label: label, Manifest: m, Env: map[string]string{}}, nil
}

// treeID hashes the manifest bytes and the bundle tree at root. When dst is
// set, it also copies the tree there, hashing what it copies, so that the
// ID describes exactly the files written.
func (s *Source) treeID(ctx context.Context, mdata []byte, root, dst string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "drover-dir-v1\x00manifest\x00%d\x00", len(mdata))
	h.Write(mdata)
	var entries []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries = append(entries, p)
		return ctx.Err()
	})
	if err != nil {
		return "", fmt.Errorf("dir source: walk %s: %w", root, err)
	}
	sort.Strings(entries) // WalkDir's order already is; be explicit
	seen := make(map[string]bool, len(entries))
	for _, p := range entries {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("dir source: %w", err)
		}
		var target string
		if dst != "" {
			target = filepath.Join(dst, filepath.FromSlash(rel))
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			fmt.Fprintf(h, "d\x00%s\x00", rel)
			if target != "" {
				if err := os.Mkdir(target, 0o755); err != nil {
					return "", err
				}
			}
		case mode.IsRegular():
			exec := mode&0o111 != 0
			sum, err := s.fileSum(p, rel, fi, target, exec)
			if err != nil {
				return "", err
			}
			seen[rel] = true
			fmt.Fprintf(h, "f\x00%s\x00%t\x00%x\x00", rel, exec, sum)
		case mode&fs.ModeSymlink != 0:
			lt, err := os.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("dir source: %w", err)
			}
			fmt.Fprintf(h, "l\x00%s\x00%s\x00", rel, lt)
			if target != "" {
				if err := safelink.Target(rel, lt); err != nil {
					return "", err
				}
				if err := os.Symlink(lt, target); err != nil {
					return "", err
				}
			}
		default:
			return "", fmt.Errorf("dir source: %s: %s files cannot be in a bundle", rel, mode.Type())
		}
	}
	s.mu.Lock()
	for k := range s.hashes {
		if !seen[k] {
			delete(s.hashes, k)
		}
	}
	s.mu.Unlock()
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileSum returns a file's sha256, from the stat cache when nothing about
// the file changed and it need not be copied.
func (s *Source) fileSum(p, rel string, fi fs.FileInfo, target string, exec bool) ([32]byte, error) {
	key := fileHash{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino, key.ctime = st.Ino, time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UnixNano()
	}
	if target == "" {
		s.mu.Lock()
		c, ok := s.hashes[rel]
		s.mu.Unlock()
		if ok && c.size == key.size && c.mtime == key.mtime && c.ctime == key.ctime && c.ino == key.ino {
			return c.sum, nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return key.sum, fmt.Errorf("dir source: %w", err)
	}
	defer f.Close()
	var fh hash.Hash = sha256.New()
	var w io.Writer = fh
	var out *os.File
	if target != "" {
		mode := os.FileMode(0o644)
		if exec {
			mode = 0o755
		}
		if out, err = os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode); err != nil {
			return key.sum, err
		}
		defer out.Close()
		w = io.MultiWriter(fh, out)
	}
	if _, err := io.Copy(w, f); err != nil {
		return key.sum, fmt.Errorf("dir source: read %s: %w", rel, err)
	}
	if out != nil {
		if err := out.Close(); err != nil {
			return key.sum, err
		}
		if err := os.Chmod(target, map[bool]os.FileMode{false: 0o644, true: 0o755}[exec]); err != nil {
			return key.sum, err
		}
	}
	copy(key.sum[:], fh.Sum(nil))
	if target == "" {
		s.mu.Lock()
		s.hashes[rel] = key
		s.mu.Unlock()
	}
	return key.sum, nil
}

// Fetch implements source.Source: it copies the bundle into dst and fails
// if what it copied is not rev (the directory changed meanwhile; the next
// poll will see the new revision).
func (s *Source) Fetch(ctx context.Context, rev source.Revision, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, data, err := s.load()
	if err != nil {
		return err
	}
	id, err := s.treeID(ctx, data, filepath.Join(s.dir, m.Bundle.Path), dst)
	if err != nil {
		return err
	}
	if id != rev.ID {
		return fmt.Errorf("%s changed while fetching (%s, want %s): %w", s.dir, id[:12], rev.ID[:min(12, len(rev.ID))], source.ErrGone)
	}
	return safelink.Dir(ctx, dst) // chains of links, which no single link shows
}

// Watch implements source.Watcher.
//
// fsnotify's reader sends an event or an error while it holds the lock
// that Add and Remove take, so the loop that re-adds watches must never be
// the only reader of its channels: two goroutines drain them at once and
// only signal (coalesced, never blocking) that something changed. Reading
// and re-watching in one loop deadlocked when an error came while the loop
// was in Remove (TestWatch hung in CI).
func (s *Source) Watch(ctx context.Context, poke func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("dir source: watch: %w", err)
	}
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	var drain sync.WaitGroup
	closed := make(chan struct{}, 2)
	drain.Go(func() {
		defer func() { closed <- struct{}{} }()
		for ev := range w.Events {
			if ev.Name == s.dir || within(s.dir, ev.Name) { // not a sibling in the parent directory
				signal()
			}
		}
	})
	drain.Go(func() {
		defer func() { closed <- struct{}{} }()
		for err := range w.Errors {
			s.log.Warn("fsnotify error; relying on periodic polls", "err", err)
			signal()
		}
	})
	defer drain.Wait()
	defer w.Close()
	watched := map[string]bool{}
	rewatch := func() {
		want := map[string]bool{filepath.Dir(s.dir): true}
		filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				want[p] = true
			}
			return nil
		})
		for p := range watched {
			if !want[p] {
				w.Remove(p)
				delete(watched, p)
			}
		}
		for p := range want {
			// Re-adding is cheap and repairs a watch that a rename dropped.
			if err := w.Add(p); err == nil {
				watched[p] = true
			}
		}
	}
	rewatch()
	poke() // anything that changed before the watches existed
	recheck := time.NewTicker(30 * time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return errors.New("dir source: watcher closed")
		case <-changed:
			poke()
			rewatch()
		case <-recheck.C:
			rewatch()
		}
	}
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}
