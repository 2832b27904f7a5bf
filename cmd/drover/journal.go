package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
)

// underJournal reports whether f is the stream systemd's journal gave this
// process (JOURNAL_STREAM is "DEVICE:INODE" of it, see systemd.exec(5)):
// then a "<N>" prefix on a line sets its priority, so that
// `journalctl -p warning -u drover` shows warnings and errors.
func underJournal(f *os.File, env string) bool {
	if env == "" {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler prefixes each record with its syslog priority for the
// journal: <7> debug, <6> info, <4> warn, <3> error.
type journalHandler struct {
	h slog.Handler
	w *prioWriter
}

// prioWriter writes the priority of the record being handled before it.
type prioWriter struct {
	mu   sync.Mutex
	out  io.Writer
	prio string
}

func (w *prioWriter) Write(p []byte) (int, error) {
	// A record is one Write; a message with newlines becomes several
	// journal lines, each given the record's priority.
	s := strings.TrimSuffix(string(p), "\n")
	s = w.prio + strings.ReplaceAll(s, "\n", "\n"+w.prio) + "\n"
	if _, err := io.WriteString(w.out, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

func newJournalHandler(out io.Writer, mk func(io.Writer) slog.Handler) slog.Handler {
	w := &prioWriter{out: out}
	return &journalHandler{h: mk(w), w: w}
}

func syslogPrio(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool { return j.h.Enabled(ctx, l) }

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.w.mu.Lock()
	defer j.w.mu.Unlock()
	j.w.prio = syslogPrio(r.Level)
	return j.h.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{h: j.h.WithAttrs(as), w: j.w}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{h: j.h.WithGroup(name), w: j.w}
}
