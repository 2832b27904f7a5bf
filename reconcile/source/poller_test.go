package source

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

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
