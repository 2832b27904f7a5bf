package hooks

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/hooks/proc"
)

// fakeClock is a Config.Now that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// slowRunner runs scripts for real, and has each take `by` on the clock.
type slowRunner struct {
	ProcessRunner
	clock *fakeClock
	by    time.Duration
}

func (r slowRunner) Run(ctx context.Context, s proc.Spec) (proc.Result, error) {
	res, err := r.ProcessRunner.Run(ctx, s)
	r.clock.advance(r.by)
	return res, err
}

// TestEngineReadsOnlyItsClock: the lifecycle reads time from Config.Now
// alone: the record, every event, the hook log's lines and the one-hour
// budget the scripts of one event share.
func TestEngineReadsOnlyItsClock(t *testing.T) {
	runner, err := proc.New(context.Background(), "off", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	clock := &fakeClock{t: start}
	e, err := NewEngine(Config{
		Store: st, Runner: slowRunner{runner, clock, 61 * time.Minute}, Root: t.TempDir(), Host: "h1", Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two scripts without a timeout share the event's 3600 s: the first
	// takes 61 minutes of the clock, so the second must not start.
	rec, err := e.Deploy(context.Background(), Request{Application: "a", Group: "g", Revision: "v1", Fetch: dirBundle(t, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n    - location: b.sh\n",
		"a.sh":        "#!/bin/sh\necho from a\n",
		"b.sh":        "#!/bin/sh\necho from b\n",
	})})
	var ee *EventError
	if !errors.As(err, &ee) || ee.Event != appspec.AfterInstall || !strings.Contains(err.Error(), "used up its 3600 seconds before script b.sh could start") {
		t.Fatalf("deploy: %v, want AfterInstall to run out of its hour before b.sh", err)
	}
	end := start.Add(61 * time.Minute)
	if !rec.Started.Equal(start) || !rec.Finished.Equal(end) {
		t.Errorf("record from %v to %v, want %v to %v", rec.Started, rec.Finished, start, end)
	}
	for _, ev := range rec.Events {
		if ev.Started.Before(start) || ev.Finished.After(end) {
			t.Errorf("%s from %v to %v: not the engine's clock", ev.Name, ev.Started, ev.Finished)
		}
	}
	b, err := os.ReadFile(st.LogPath("g", rec.ID))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 3 {
		t.Fatalf("hook log:\n%s", b)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "2001-02-03T04:05:06.000Z ") && !strings.HasPrefix(l, "2001-02-03T05:06:06.000Z ") {
			t.Errorf("log line %q is not stamped by the engine's clock", l)
		}
	}
	if !strings.Contains(string(b), "from a") || strings.Contains(string(b), "from b") {
		t.Errorf("hook log:\n%s\nwant a's output and not b's", b)
	}
}
