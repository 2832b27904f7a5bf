package proc

import (
	"bufio"
	"bytes"
	"os"
	"sync"
	"time"
)

// output reads a script's stdout and stderr pipes line by line.
type output struct {
	fn        func(Line)
	now       func() time.Time
	files     []*os.File
	done      chan struct{} // closed when every reader hit EOF or an error
	closeOnce sync.Once

	mu       sync.Mutex // held while calling fn, so calls never overlap; guards detached
	detached bool       // Run returned: read on, but never call fn again
}

func newOutput(fn func(Line), now func() time.Time, stdout, stderr *os.File) *output {
	o := &output{fn: fn, now: now, files: []*os.File{stdout, stderr}, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { o.read(stdout, "stdout") })
	wg.Go(func() { o.read(stderr, "stderr") })
	go func() { // ends with the readers
		wg.Wait()
		close(o.done)
	}()
	return o
}

// read passes the lines of f to fn until EOF or f is closed.
func (o *output) read(f *os.File, stream string) {
	br := bufio.NewReaderSize(f, maxLine)
	split := false // the last piece was a full buffer without a newline
	for {
		b, err := br.ReadSlice('\n')
		// A newline right after a split piece ends that line; it is not
		// an empty line of its own.
		if len(b) > 0 && !(split && len(b) == 1 && b[0] == '\n') {
			o.emit(stream, bytes.TrimSuffix(b, []byte{'\n'}))
		}
		split = err == bufio.ErrBufferFull
		if err != nil && !split {
			return
		}
	}
}

func (o *output) emit(stream string, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.detached || o.fn == nil {
		return
	}
	// The time is taken under the lock, so times never go backwards
	// from one call to the next.
	o.fn(Line{Time: o.now(), Stream: stream, Text: string(b)})
}

// detach stops calls to fn; from its return on, fn is never called again.
// It reports whether a reader is still running (something holds a pipe).
func (o *output) detach() bool {
	o.mu.Lock()
	o.detached = true
	o.mu.Unlock()
	select {
	case <-o.done:
		return false
	default:
		return true
	}
}

// closeFiles closes the read ends; blocked readers return.
func (o *output) closeFiles() {
	o.closeOnce.Do(func() {
		for _, f := range o.files {
			f.Close()
		}
	})
}
