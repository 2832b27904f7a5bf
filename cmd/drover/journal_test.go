package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestJournalPriorities: when stderr is the stream JOURNAL_STREAM names,
// every log line starts with its syslog priority;
// when it is not (a terminal, a file, another stream), lines are plain.
func TestJournalPriorities(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	if !underJournal(f, env) {
		t.Fatalf("JOURNAL_STREAM=%s is the file's own device and inode: not recognised", env)
	}
	for _, bad := range []string{"", "junk", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)} {
		if underJournal(f, bad) {
			t.Errorf("JOURNAL_STREAM=%q taken for the file's stream", bad)
		}
	}
	var b strings.Builder
	log := slog.New(newJournalHandler(&b, func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})).With("app", "hello")
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e\nsecond line")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"} // the handler quotes the newline: one line
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s", b.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) || !strings.Contains(l, "app=hello") {
			t.Errorf("line %d %q: want prefix %s and the logger's attributes", i, l, want[i])
		}
	}
}
