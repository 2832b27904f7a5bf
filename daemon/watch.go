package daemon

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchFile calls onChange when the content of path changes: fsnotify on
// its directory (editors and config management replace files by rename,
// which drops a watch on the file itself) plus a periodic re-check, with
// the events of one save coalesced. It returns when ctx ends.
func watchFile(ctx context.Context, path string, recheck time.Duration, log *slog.Logger, onChange func()) {
	sum := func() [32]byte {
		b, err := os.ReadFile(path)
		if err != nil {
			return [32]byte{}
		}
		return sha256.Sum256(b)
	}
	last := sum()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("config file watch unavailable; re-checking periodically", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(path)); err != nil {
			log.Warn("config file watch unavailable; re-checking periodically", "err", err)
		} else {
			events, errs = w.Events, w.Errors
		}
	}
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if filepath.Clean(ev.Name) == filepath.Clean(path) {
				settle = time.After(300 * time.Millisecond) // let a save finish
			}
			continue
		case err := <-errs:
			log.Debug("config file watch", "err", err)
			continue
		case <-settle:
			settle = nil
		case <-tick.C:
		}
		if s := sum(); s != last {
			last = s
			onChange()
		}
	}
}
