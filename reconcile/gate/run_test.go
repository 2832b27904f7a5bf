package gate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func gateFor(count, failLimit, inconcLimit int) manifest.Gate {
	return manifest.Gate{Name: "g", Interval: 10 * time.Second, Timeout: 5 * time.Second,
		Count: count, FailureLimit: failLimit, InconclusiveLimit: inconcLimit}
}

func TestRun(t *testing.T) {
	const P, F, I = Pass, Fail, Inconclusive
	tests := []struct {
		name             string
		count, fail, inc int
		samples          []Result
		want             Verdict
		at               int // samples taken when the verdict came (0: still pending after all)
		reasonHas        string
	}{
		{"one pass", 1, 1, 3, []Result{P}, VerdictPass, 1, "1 samples, the last passed"},
		{"one fail", 1, 1, 3, []Result{F}, VerdictFail, 1, "1 consecutive failed samples (failure_limit 1)"},
		{"count 4 all pass", 4, 1, 3, []Result{P, P, P, P}, VerdictPass, 4, ""},
		{"count 4 pending", 4, 1, 3, []Result{P, P, P}, VerdictPending, 0, ""},
		{"fail in the middle", 4, 1, 3, []Result{P, F, P, P}, VerdictFail, 2, ""},
		{"failure_limit 2 not consecutive", 4, 2, 3, []Result{F, P, F, P}, VerdictPass, 4, ""},
		{"failure_limit 2 consecutive", 4, 2, 3, []Result{P, F, F}, VerdictFail, 3, "2 consecutive failed"},
		{"inconclusive does not reset failures", 5, 2, 3, []Result{F, I, F}, VerdictFail, 3, ""},
		{"failure resets inconclusive", 9, 3, 2, []Result{I, F, I, P, I, I}, VerdictInconclusive, 6, "2 consecutive inconclusive samples (inconclusive_limit 2)"},
		{"inconclusive limit", 4, 1, 3, []Result{I, I, I}, VerdictInconclusive, 3, ""},
		{"pass resets inconclusive", 6, 1, 3, []Result{I, I, P, I, I, P}, VerdictPass, 6, ""},
		{"never passes on a failing last sample", 2, 3, 3, []Result{P, F, F, P}, VerdictPass, 4, ""},
		{"goes on past count until a limit", 1, 2, 3, []Result{F, F}, VerdictFail, 2, ""},
		{"goes on past count on inconclusive", 1, 1, 2, []Result{I, P}, VerdictPass, 2, ""},
		{"continuous never passes", 0, 2, 3, []Result{P, P, P, P, F, P, P}, VerdictPending, 0, ""},
		{"continuous fails", 0, 2, 3, []Result{P, P, F, F}, VerdictFail, 4, ""},
		{"continuous inconclusive", 0, 2, 1, []Result{P, I}, VerdictInconclusive, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRun(gateFor(tt.count, tt.fail, tt.inc), t0)
			got, at := VerdictPending, 0
			for i, res := range tt.samples {
				v := r.Record(Sample{Result: res, Reason: "because " + res.String(), At: r.Due()})
				if v != VerdictPending && got == VerdictPending {
					got, at = v, i+1
				}
			}
			if got != tt.want || at != tt.at {
				t.Fatalf("verdict %s after %d samples, want %s after %d", got, at, tt.want, tt.at)
			}
			v, why := r.Verdict()
			if v != tt.want || !strings.Contains(why, tt.reasonHas) {
				t.Fatalf("Verdict() = %s %q, want %s containing %q", v, why, tt.want, tt.reasonHas)
			}
			if tt.at > 0 && r.Taken() != tt.at {
				t.Fatalf("samples after the verdict were counted: %d", r.Taken())
			}
		})
	}
}

func TestRunDue(t *testing.T) {
	g := gateFor(3, 1, 3)
	g.InitialDelay = time.Minute
	r := NewRun(g, t0)
	if !r.Due().Equal(t0.Add(time.Minute)) {
		t.Fatalf("first due %v", r.Due())
	}
	r.Record(Sample{Result: Pass, At: r.Due(), Took: time.Second})
	if want := t0.Add(time.Minute + 10*time.Second); !r.Due().Equal(want) {
		t.Fatalf("second due %v, want %v", r.Due(), want)
	}
	// A sample that ends after its successor was due delays it to its end.
	at := r.Due()
	r.Record(Sample{Result: Pass, At: at, Took: 12 * time.Second})
	if want := at.Add(12 * time.Second); !r.Due().Equal(want) {
		t.Fatalf("after a slow sample due %v, want %v", r.Due(), want)
	}
}

// fakeClock is a manual clock: After's channels fire when Advance passes
// their deadline. waiting is poked whenever someone waits.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	waiting chan struct{}
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	c.waiting <- struct{}{}
	return ch
}

// Advance moves to the earliest pending timer and fires it.
func (c *fakeClock) AdvanceToNext() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := -1
	for i, tm := range c.timers {
		if best < 0 || tm.at.Before(c.timers[best].at) {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	tm := c.timers[best]
	c.timers = append(c.timers[:best], c.timers[best+1:]...)
	d := tm.at.Sub(c.now)
	c.now = tm.at
	tm.ch <- c.now
	return d
}

// scripted returns its results in order, recording when it was asked.
type scripted struct {
	clock   *fakeClock
	results []Result
	asked   []time.Time
}

func (s *scripted) Evaluate(_ context.Context, g manifest.Gate, _ Vars) Sample {
	i := len(s.asked)
	s.asked = append(s.asked, s.clock.Now())
	return Sample{Gate: g.Name, Result: s.results[i], Reason: "scripted", At: s.clock.Now()}
}

func TestRunner(t *testing.T) {
	clock := newFakeClock(t0)
	g := gateFor(3, 2, 3)
	g.InitialDelay = 5 * time.Second
	sampler := &scripted{clock: clock, results: []Result{Pass, Fail, Fail}}
	var seen []Verdict
	rn := &Runner{Sampler: sampler, Clock: clock, OnSample: func(_ Sample, v Verdict) { seen = append(seen, v) }}
	type out struct {
		v   Verdict
		why string
		err error
	}
	done := make(chan out, 1)
	go func() {
		v, why, err := rn.Run(context.Background(), g, Vars{})
		done <- out{v, why, err}
	}()
	for range 3 {
		select {
		case <-clock.waiting:
			clock.AdvanceToNext()
		case <-time.After(10 * time.Second):
			t.Fatal("the runner did not wait for its next sample")
		}
	}
	o := <-done
	if o.v != VerdictFail || o.err != nil || !strings.Contains(o.why, "2 consecutive failed") {
		t.Fatalf("got %v %q %v", o.v, o.why, o.err)
	}
	want := []time.Time{t0.Add(5 * time.Second), t0.Add(15 * time.Second), t0.Add(25 * time.Second)}
	for i := range want {
		if !sampler.asked[i].Equal(want[i]) {
			t.Errorf("sample %d at %v, want %v", i, sampler.asked[i].Sub(t0), want[i].Sub(t0))
		}
	}
	if len(seen) != 3 || seen[2] != VerdictFail {
		t.Errorf("OnSample saw %v", seen)
	}
}

func TestRunnerCancel(t *testing.T) {
	clock := newFakeClock(t0)
	g := gateFor(0, 1, 1) // continuous
	sampler := &scripted{clock: clock, results: []Result{Pass, Pass, Pass}}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &Runner{Sampler: sampler, Clock: clock}
	done := make(chan error, 1)
	go func() {
		_, _, err := rn.Run(ctx, g, Vars{})
		done <- err
	}()
	<-clock.waiting // after the first sample, waiting for the second
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(sampler.asked) != 1 {
		t.Fatalf("%d samples taken", len(sampler.asked))
	}
}

// FuzzRun checks Run's rules over arbitrary sample sequences: a pass needs
// count samples and a passing last one, a fail failure_limit consecutive
// failures, and a gate with a count always decides within
// count + failure_limit × inconclusive_limit samples (the longest run of
// samples that neither pass nor reach a limit is F·I − 1).
func FuzzRun(f *testing.F) {
	f.Add(uint8(3), uint8(2), uint8(3), []byte{0, 1, 1, 2, 0, 0})
	f.Add(uint8(0), uint8(1), uint8(1), []byte{0, 0, 2})
	f.Add(uint8(1), uint8(4), uint8(4), []byte{1, 2, 2, 2, 1, 2, 2, 2, 1, 2, 2, 2, 1})
	f.Fuzz(func(t *testing.T, count, fl, il uint8, seq []byte) {
		g := gateFor(int(count%20), int(fl%10)+1, int(il%10)+1)
		r := NewRun(g, t0)
		var failStreak int
		for i, b := range seq {
			res := []Result{Pass, Fail, Inconclusive}[int(b)%3]
			switch res {
			case Pass:
				failStreak = 0
			case Fail:
				failStreak++
			}
			v := r.Record(Sample{Result: res, At: r.Due()})
			n := i + 1
			switch v {
			case VerdictPass:
				if res != Pass || n < g.Count || g.Count == 0 {
					t.Fatalf("passed at sample %d (%s), count %d", n, res, g.Count)
				}
			case VerdictFail:
				if res != Fail || failStreak < g.FailureLimit {
					t.Fatalf("failed at sample %d with a failure streak of %d < %d", n, failStreak, g.FailureLimit)
				}
			case VerdictInconclusive:
				if res != Inconclusive {
					t.Fatalf("inconclusive on a %s sample", res)
				}
			case VerdictPending:
				if g.Count > 0 && n >= g.Count+g.FailureLimit*g.InconclusiveLimit {
					t.Fatalf("no verdict after %d samples (count %d, limits %d, %d)", n, g.Count, g.FailureLimit, g.InconclusiveLimit)
				}
			}
			if v != VerdictPending {
				if r.Taken() != n {
					t.Fatalf("taken %d, want %d", r.Taken(), n)
				}
				return
			}
		}
	})
}
