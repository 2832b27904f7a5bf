package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/syncbuf"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// fakeSource returns scripted answers.
type fakeSource struct {
	mu  sync.Mutex
	rev Revision
	err error
}

func (f *fakeSource) set(rev Revision, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev, f.err = rev, err
}

func (f *fakeSource) Desired(context.Context) (Revision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev, f.err
}
func (f *fakeSource) Fetch(context.Context, Revision, string) error { return nil }
func (f *fakeSource) String() string                                { return "fake" }

// fakeClock fires After channels only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []chan time.Time
	asked   chan time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	c.asked <- d
	return ch
}

func (c *fakeClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		w <- c.now
	}
	c.waiters = nil
}

var invalid = &manifest.Error{Problems: []manifest.Problem{{File: "m.yaml", Line: 2, Msg: "bad"}}}

func TestPollPolicy(t *testing.T) {
	m1 := &manifest.Manifest{Version: 1, Application: "a"}
	m1paused := &manifest.Manifest{Version: 1, Application: "a", Deployment: manifest.Deployment{Paused: true}}
	r1 := Revision{ID: "1", Label: "one", Manifest: m1}
	steps := []struct {
		rev     Revision
		err     error
		want    Result
		wantID  string
		backoff bool
	}{
		{err: ErrNoManifest, want: ResultEmpty},
		{rev: r1, want: ResultChanged, wantID: "1"},
		{rev: r1, want: ResultUnchanged, wantID: "1"},
		{err: invalid, want: ResultInvalid, wantID: "1"},
		{err: errors.New("connection refused"), want: ResultError, wantID: "1", backoff: true},
		{rev: r1, want: ResultUnchanged, wantID: "1"},
		{rev: Revision{ID: "1", Label: "one", Manifest: m1paused}, want: ResultChanged, wantID: "1"},
		{rev: Revision{ID: "2", Label: "two", Manifest: m1}, want: ResultChanged, wantID: "2"},
	}
	src := &fakeSource{}
	p := NewPoller(src, PollerConfig{App: "a", Interval: 10 * time.Second, RetryMin: time.Second, Rand: func() float64 { return 0.5 }})
	for i, s := range steps {
		src.set(s.rev, s.err)
		u := p.Poll(context.Background())
		if u.Result != s.want || u.Desired.ID != s.wantID {
			t.Fatalf("step %d: got %s/%q, want %s/%q", i, u.Result, u.Desired.ID, s.want, s.wantID)
		}
		if s.backoff != (u.Next < 5*time.Second) {
			t.Fatalf("step %d: next poll in %v", i, u.Next)
		}
	}
	st := p.Status()
	want := map[Result]uint64{ResultEmpty: 1, ResultChanged: 3, ResultUnchanged: 2, ResultInvalid: 1, ResultError: 1}
	for r, n := range want {
		if st.Polls[r] != n {
			t.Errorf("polls[%s] = %d, want %d", r, st.Polls[r], n)
		}
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999} {
		src := &fakeSource{err: errors.New("down")}
		p := NewPoller(src, PollerConfig{Interval: time.Minute, RetryMin: time.Second, RetryMax: 30 * time.Second, Rand: func() float64 { return r }})
		ceil := time.Second
		for i := 0; i < 10; i++ {
			u := p.Poll(context.Background())
			if u.Next < ceil/2 || u.Next > ceil {
				t.Fatalf("rand %v failure %d: delay %v outside [%v, %v]", r, i+1, u.Next, ceil/2, ceil)
			}
			ceil = min(2*ceil, 30*time.Second)
		}
	}
}

// TestRunLoop drives Run with a fake clock: it reports changes once, waits
// the delay Poll chose, wakes up on Poke, and stops on cancel.
func TestRunLoop(t *testing.T) {
	src := &fakeSource{rev: Revision{ID: "1", Label: "one"}}
	clock := &fakeClock{now: time.Unix(1000, 0), asked: make(chan time.Duration, 10)}
	p := NewPoller(src, PollerConfig{Interval: time.Minute, Clock: clock, Rand: func() float64 { return 0.5 }})
	changes := make(chan Revision, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, func(r Revision) { changes <- r }) }()

	if d := <-clock.asked; d != time.Minute {
		t.Fatalf("first wait %v, want 1m", d)
	}
	if r := <-changes; r.ID != "1" {
		t.Fatalf("change %+v", r)
	}
	src.set(Revision{ID: "2", Label: "two"}, nil)
	clock.fire()
	<-clock.asked
	if r := <-changes; r.ID != "2" {
		t.Fatalf("change %+v", r)
	}
	src.set(Revision{ID: "3", Label: "three"}, nil)
	p.Poke()
	<-clock.asked
	if r := <-changes; r.ID != "3" {
		t.Fatalf("change after poke %+v", r)
	}
	clock.fire() // unchanged: no callback
	<-clock.asked
	cancel()
	<-done
	select {
	case r := <-changes:
		t.Fatalf("unexpected change %+v", r)
	default:
	}
	if n := p.Status().Polls[ResultUnchanged]; n != 1 {
		t.Fatalf("unchanged polls %d, want 1", n)
	}
}

func TestSanitizer(t *testing.T) {
	s := NewSanitizer("tok-123456")
	tests := []struct{ in, want string }{
		{`Get "https://user:pw@git.example/x": 401`, `Get "https://git.example/x": 401`},
		{"auth failed for tok-123456", "auth failed for ***"},
		{"ssh://git@host:22/repo", "ssh://git@host:22/repo"},
		{"https://x-access-token@host/repo", "https://host/repo"},
	}
	for _, tt := range tests {
		if got := s.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	err := s.Error(errors.Join(ErrNoManifest, errors.New("tok-123456")))
	if !errors.Is(err, ErrNoManifest) || err.Error() != "no manifest published\n***" {
		t.Fatalf("Error: %v", err)
	}
	if got := RedactURL("https://u:p@h/r"); got != "https://h/r" {
		t.Errorf("RedactURL = %q", got)
	}
}

// TestNotFoundIsAnError: a place that does not exist is an error like an
// unreachable server: counted, backed off, logged once, shown, and no
// success recorded; ErrNoManifest (a publication in progress) is empty:
// shown and logged at Info, and not a success either.
func TestNotFoundIsAnError(t *testing.T) {
	var logs syncbuf.Buffer
	clock := &fakeClock{now: time.Unix(1000, 0)}
	src := &fakeSource{rev: Revision{ID: "1", Label: "one"}}
	p := NewPoller(src, PollerConfig{App: "a", Interval: 10 * time.Second, RetryMin: time.Second, Clock: clock,
		Rand: func() float64 { return 0.5 }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if u := p.Poll(context.Background()); u.Result != ResultChanged {
		t.Fatalf("first poll: %+v", u)
	}
	success := p.Status().LastSuccess

	notFound := Markf(ErrNotFound, `git x branch "relase" not found (did you mean "release"?)`)
	if !errors.Is(notFound, ErrNotFound) || errors.Is(notFound, ErrNoManifest) {
		t.Fatalf("Markf: %v", notFound)
	}
	src.set(Revision{}, notFound)
	for i := range 3 {
		clock.now = clock.now.Add(time.Minute)
		u := p.Poll(context.Background())
		if u.Result != ResultError || u.Desired.ID != "1" || u.Next >= 5*time.Second {
			t.Fatalf("poll %d: %+v", i, u)
		}
	}
	st := p.Status()
	if st.Polls[ResultError] != 3 || st.Polls[ResultEmpty] != 0 || !st.LastSuccess.Equal(success) ||
		st.LastError != notFound.Error() || st.ConsecutiveFailures != 3 {
		t.Fatalf("status: %+v", st)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), `branch \"relase\" not found`) {
		t.Fatalf("%d warnings, want 1 naming the branch:\n%s", n, logs.String())
	}

	empty := Markf(ErrNoManifest, "s3://b/p/: no manifest.yaml yet")
	src.set(Revision{}, empty)
	for range 2 {
		clock.now = clock.now.Add(time.Minute)
		if u := p.Poll(context.Background()); u.Result != ResultEmpty || u.Desired.ID != "1" || u.Next < 9*time.Second {
			t.Fatalf("empty poll: %+v", u)
		}
	}
	st = p.Status()
	if st.Polls[ResultEmpty] != 2 || !st.LastSuccess.Equal(success) || st.LastError != empty.Error() || st.ConsecutiveFailures != 0 {
		t.Fatalf("status while empty: %+v", st)
	}
	if n := strings.Count(logs.String(), `level=INFO msg="no manifest published yet"`); n != 1 {
		t.Fatalf("%d infos for two empty polls, want 1:\n%s", n, logs.String())
	}

	src.set(Revision{ID: "1", Label: "one"}, nil)
	clock.now = clock.now.Add(time.Minute)
	if u := p.Poll(context.Background()); u.Result != ResultUnchanged {
		t.Fatalf("after recovery: %+v", u)
	}
	if st := p.Status(); st.LastError != "" || !st.LastSuccess.Equal(clock.now) {
		t.Fatalf("status after recovery: %+v", st)
	}
}

// TestCheck: the bundle check runs once per new revision ID; a refused
// revision leaves the previous one desired and is not checked again; a
// check that fails without a verdict is an error and runs again.
func TestCheck(t *testing.T) {
	var logs syncbuf.Buffer
	verdicts := map[string]error{
		"2": &BundleError{ID: "2", Label: "two", Problems: []string{"app/appspec.yml:6: hooks.AfterInstall[0].timeout: bad"}},
		"3": errors.New("fetch: connection reset"),
	}
	calls := map[string]int{}
	var mu sync.Mutex
	src := &fakeSource{rev: Revision{ID: "1", Label: "one"}}
	changes := 0
	p := NewPoller(src, PollerConfig{App: "a", Rand: func() float64 { return 0.5 }, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Check: func(_ context.Context, rev Revision) error {
			mu.Lock()
			defer mu.Unlock()
			calls[rev.ID]++
			return verdicts[rev.ID]
		}})
	poll := func(want Result, wantID string) Update {
		t.Helper()
		u := p.Poll(context.Background())
		if u.Result != want || u.Desired.ID != wantID {
			t.Fatalf("poll: %s desired %q (err %v), want %s %q", u.Result, u.Desired.ID, u.Err, want, wantID)
		}
		if u.Result == ResultChanged {
			changes++
		}
		return u
	}
	poll(ResultChanged, "1")
	poll(ResultUnchanged, "1")
	src.set(Revision{ID: "2", Label: "two"}, nil)
	u := poll(ResultInvalid, "1")
	if !IsInvalidManifest(u.Err) || !strings.Contains(u.Err.Error(), "app/appspec.yml:6: hooks.AfterInstall[0].timeout") {
		t.Fatalf("refusal: %v", u.Err)
	}
	poll(ResultInvalid, "1")
	// The same content under a new manifest (paused) stays refused.
	src.set(Revision{ID: "2", Label: "two", Manifest: &manifest.Manifest{Version: 1, Deployment: manifest.Deployment{Paused: true}}}, nil)
	poll(ResultInvalid, "1")
	st := p.Status()
	if st.LastResult != ResultInvalid || st.LastError != u.Err.Error() || st.Polls[ResultInvalid] != 3 {
		t.Fatalf("status while refused: %+v", st)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d errors logged for one refusal, want 1:\n%s", n, logs.String())
	}
	src.set(Revision{ID: "3", Label: "three"}, nil)
	poll(ResultError, "1")
	poll(ResultError, "1")
	delete(verdicts, "3")
	poll(ResultChanged, "3")
	poll(ResultUnchanged, "3")
	// Back to revision 1 (a revert): its verdict is remembered.
	src.set(Revision{ID: "1", Label: "one"}, nil)
	poll(ResultChanged, "1")
	if want := map[string]int{"1": 1, "2": 1, "3": 3}; !maps.Equal(calls, want) || changes != 3 {
		t.Fatalf("checks %v, want %v; %d changes", calls, want, changes)
	}
	if !strings.Contains(logs.String(), `msg="checking bundle of new revision before publishing it as desired" app=a source=fake revision=two`) {
		t.Errorf("check not logged:\n%s", logs.String())
	}
}

// TestCheckProgressAndShutdown: a slow check is logged while it runs and
// is stopped by the poller's context; nothing is recorded for it and the
// revision is checked again after a restart.
func TestCheckProgressAndShutdown(t *testing.T) {
	var logs syncbuf.Buffer
	clock := &fakeClock{now: time.Unix(1000, 0), asked: make(chan time.Duration, 10)}
	started := make(chan struct{}, 2)
	check := func(ctx context.Context, _ Revision) error {
		started <- struct{}{}
		<-ctx.Done()
		return fmt.Errorf("fetch: %w", ctx.Err())
	}
	src := &fakeSource{rev: Revision{ID: "1", Label: "one"}}
	p := NewPoller(src, PollerConfig{App: "a", Clock: clock, Check: check, CheckProgress: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, func(Revision) { t.Error("a revision was published") }) }()
	<-started
	if d := <-clock.asked; d != 30*time.Second {
		t.Fatalf("progress timer %v, want 30s", d)
	}
	clock.now = clock.now.Add(30 * time.Second)
	clock.fire()
	<-clock.asked // the next progress timer: the first line is written
	if !strings.Contains(logs.String(), `msg="still checking bundle" app=a source=fake revision=one id=1 elapsed=30s`) {
		t.Fatalf("no progress line:\n%s", logs.String())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel while checking")
	}
	if st := p.Status(); len(st.Polls) != 0 || st.LastError != "" || st.HasDesired {
		t.Fatalf("a cancelled check was recorded: %+v", st)
	}
	if len(p.verdicts) != 0 {
		t.Fatalf("a cancelled check left a verdict: %v", p.verdicts)
	}
}
