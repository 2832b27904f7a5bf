package install

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

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
		n, err = copyFile(op.src, target, in.umask)
	}
	if err == nil && op.replace {
		err = os.Rename(target, op.dst)
	}
	if err != nil && op.replace {
		os.Remove(target) // best effort: the temporary is in no cleanup list
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

// copyFile copies a regular file's content, mode bits and modification
// time; dst must not exist. It works on raw descriptors: for many small
// files, the system calls are the cost (an *os.File adds a poller
// registration per open), and copy_file_range moves the data in the kernel.
func copyFile(src, dst string, umask uint32) (int64, error) {
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("%s is no longer a regular file", src)
	}
	perm := st.Mode & 0o7777
	dfd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, perm&0o777)
	if err != nil {
		return 0, &fs.PathError{Op: "create", Path: dst, Err: err}
	}
	n, err := copyFD(dfd, sfd, st.Size)
	if err == nil && (perm&0o7000 != 0 || perm&umask != 0) {
		err = unix.Fchmod(dfd, perm)
	}
	if err == nil {
		ts := []unix.Timespec{st.Mtim, st.Mtim}
		err = unix.UtimesNanoAt(dfd, "", ts, unix.AT_EMPTY_PATH)
	}
	if cerr := unix.Close(dfd); err == nil {
		err = cerr
	}
	if err != nil {
		return n, &fs.PathError{Op: "copy", Path: dst, Err: err}
	}
	return n, nil
}

// copyFD copies size bytes (more if the file grew) with copy_file_range,
// falling back to read and write where the kernel or file system cannot.
func copyFD(dfd, sfd int, size int64) (int64, error) {
	var n int64
	for {
		want := max(size-n, 1<<20) // past the expected size: look for EOF
		m, err := unix.CopyFileRange(sfd, nil, dfd, nil, int(min(want, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if n == 0 && (err == unix.EXDEV || err == unix.ENOSYS || err == unix.EOPNOTSUPP || err == unix.EINVAL || err == unix.EPERM) {
				return copyRW(dfd, sfd)
			}
			return n, err
		}
		n += int64(m)
		if m == 0 || n == size {
			// At the expected size a final call would only confirm EOF; a
			// file that changes while the bundle is installed is not ours
			// to chase.
			return n, nil
		}
	}
}

func copyRW(dfd, sfd int) (int64, error) {
	buf := make([]byte, 128<<10)
	var n int64
	for {
		r, err := unix.Read(sfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if r == 0 {
			return n, nil
		}
		for w := 0; w < r; {
			k, err := unix.Write(dfd, buf[w:r])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return n, err
			}
			w += k
		}
		n += int64(r)
	}
}

// processUmask reads the umask without changing it (Linux 4.7+). When it
// cannot be read it returns 0o777, so that every copy is chmodded.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}

// syncTargets returns one directory on each file system the plan wrote to.
func syncTargets(p *planner) ([]string, error) {
	seen := make(map[uint64]bool)
	dirs := make(map[string]bool)
	var out []string
	check := func(d string) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
		if !seen[st.Dev] {
			seen[st.Dev] = true
			out = append(out, d)
		}
		return nil
	}
	for _, d := range p.mkdirs {
		if err := check(filepath.Dir(d)); err != nil {
			return nil, err
		}
	}
	for _, c := range p.copies {
		if err := check(filepath.Dir(c.dst)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Sync flushes the file systems of dirs (Result.Unsynced) with one syncfs
// each.
func Sync(dirs []string) error {
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("install: sync %s: %w", d, err)
		}
	}
	return nil
}
