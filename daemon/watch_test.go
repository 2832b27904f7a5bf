package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchFileSeesRenameAndWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(p, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A long re-check: the changes must come through fsnotify.
		watchFile(ctx, p, time.Hour, slog.New(slog.DiscardHandler), func() { changes <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()
	expect := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(20 * time.Second):
			t.Fatalf("no change seen after %s", what)
		}
	}
	// The watcher may not be set up yet: write until it notices.
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		os.WriteFile(p, []byte{byte('b' + n%20)}, 0o644)
		select {
		case <-changes:
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				t.Fatal("in-place write not seen")
			}
			continue
		}
		break
	}
	// Replace by rename, as editors and config management do.
	tmp := filepath.Join(dir, ".drover.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("renamed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	expect("rename")
	// Same content again: no change.
	os.WriteFile(p, []byte("renamed"), 0o644)
	select {
	case <-changes:
		t.Error("rewriting the same content counted as a change")
	case <-time.After(time.Second):
	}
}
