package install

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// execute creates the planned directories, then copies the planned files in
// batches: each batch is named in the cleanup list, fsynced, then copied by a
// few goroutines.
func (in *installer) execute(ctx context.Context, p *planner, list *cleanupList, res *Result) error {
	for _, d := range p.mkdirs {
		list.add(d)
	}
	if err := list.commit(); err != nil {
		return fmt.Errorf("install: cleanup list: %w", err)
	}
	for _, d := range p.mkdirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("install: create directory %s: %w", d, err)
		}
		res.Dirs++
	}

	for start := 0; start < len(p.copies); start += in.batch {
		batch := p.copies[start:min(start+in.batch, len(p.copies))]
		for _, op := range batch {
			list.add(op.dst)
		}
		if err := list.commit(); err != nil {
			return fmt.Errorf("install: cleanup list: %w", err)
		}
		n, err := in.copyBatch(ctx, batch)
		res.Bytes += n
		if err != nil {
			return err
		}
		res.Files += len(batch)
	}
	return nil
}

// copyBatch copies ops with up to in.workers goroutines, stopping at the
// first error. It returns the bytes copied.
func (in *installer) copyBatch(ctx context.Context, ops []copyOp) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards next, total, firstErr
		next     int
		total    int64
		firstErr error
	)
	work := func() {
		for {
			mu.Lock()
			if firstErr != nil || next >= len(ops) {
				mu.Unlock()
				return
			}
			op := ops[next]
			next++
			mu.Unlock()
			n, err := in.copyOne(ctx, op)
			mu.Lock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
			mu.Unlock()
		}
	}
	workers := min(in.workers, len(ops))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return total, firstErr
}

func (in *installer) copyOne(ctx context.Context, op copyOp) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if in.beforeCopy != nil {
		if err := in.beforeCopy(op.dst); err != nil {
			return 0, fmt.Errorf("install: copy %s: %w", op.dst, err)
		}
	}
	target := op.dst
	if op.replace {
		target = tempName(op.dst)
	}
	var n int64
	var err error
	if op.link {
		err = copyLink(op.src, target)
	} else {
		n, err = copyFile(op.src, target)
	}
	if err == nil && op.replace {
		if err = os.Rename(target, op.dst); err != nil {
			os.Remove(target)
		}
	}
	if err != nil {
		return n, fmt.Errorf("install: copy %s to %s: %w", op.src, op.dst, err)
	}
	return n, nil
}

func tempName(dst string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".drover-"+hex.EncodeToString(b[:]))
}

func copyLink(src, dst string) error {
	t, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(t, dst)
}

// copyFile copies a regular file's content (copy_file_range through
// io.Copy), mode bits and modification time. dst must not exist.
func copyFile(src, dst string) (int64, error) {
	sf, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer sf.Close()
	fi, err := sf.Stat()
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is no longer a regular file", src)
	}
	df, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(df, sf)
	if err == nil {
		err = df.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
	}
	if err == nil {
		err = futimes(df, fi.ModTime())
	}
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func futimes(f *os.File, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var uerr error
	err = rc.Control(func(fd uintptr) {
		uerr = unix.UtimesNanoAt(int(fd), "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH)
	})
	if err != nil {
		return err
	}
	return uerr
}

// syncAll flushes every file system the plan wrote to, once.
func (in *installer) syncAll(p *planner) error {
	seen := make(map[uint64]bool)
	dirs := make(map[string]bool)
	check := func(d string) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
		if seen[st.Dev] {
			return nil
		}
		seen[st.Dev] = true
		f, err := os.Open(d)
		if err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
		defer f.Close()
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
		return nil
	}
	for _, d := range p.mkdirs {
		if err := check(filepath.Dir(d)); err != nil {
			return err
		}
	}
	for _, c := range p.copies {
		if err := check(filepath.Dir(c.dst)); err != nil {
			return err
		}
	}
	return nil
}
