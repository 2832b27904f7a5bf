package gate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Verdict is a gate's decision from its samples.
type Verdict uint8

// Verdicts: pending until the samples decide.
const (
	VerdictPending Verdict = iota
	VerdictPass
	VerdictFail
	VerdictInconclusive
)

func (v Verdict) String() string {
	switch v {
	case VerdictPending:
		return "pending"
	case VerdictPass:
		return "passed"
	case VerdictFail:
		return "failed"
	case VerdictInconclusive:
		return "inconclusive"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Run decides one gate's verdict from its samples. It is a deterministic
// state machine: no clock, no I/O; the caller takes a sample when Due says
// and hands it to Record.
//
// The rules (README, "Health gates"):
//   - a passing sample resets both streaks; a failing one adds to the
//     failure streak and resets the inconclusive streak; an inconclusive
//     one adds to the inconclusive streak and leaves the failure streak
//     alone (a sample that could not look is no evidence of health);
//   - failure_limit consecutive failures: VerdictFail;
//   - inconclusive_limit consecutive inconclusive samples: VerdictInconclusive;
//   - count samples taken and the last one passed: VerdictPass. If the last one
//     did not pass, sampling goes on until one passes or a limit is met
//     (a gate never passes on a failing sample). This always ends: every
//     sample that does not pass brings one of the two limits closer;
//   - a continuous gate (count 0) never passes; it runs until it fails,
//     turns inconclusive, or the rollout stops it.
//
// Not safe for concurrent use.
type Run struct {
	gate         manifest.Gate
	due          time.Time
	taken        int
	failStreak   int
	inconcStreak int
	verdict      Verdict
	reason       string
	last         Sample
}

// NewRun starts a run of g at start: the first sample is due after the
// gate's initial_delay.
func NewRun(g manifest.Gate, start time.Time) *Run {
	return &Run{gate: g, due: start.Add(g.InitialDelay)}
}

// ResumeRun continues a run of g that another host began (the gate state a
// new evaluator saw in gossip, reconcile/gate/DESIGN.md): taken samples so
// far and both streaks; the next sample is due at due. A resumed run passes
// only on a passing sample of its own, never on the state it was given.
func ResumeRun(g manifest.Gate, due time.Time, taken, failStreak, inconcStreak int) *Run {
	return &Run{gate: g, due: due, taken: max(taken, 0), failStreak: max(failStreak, 0), inconcStreak: max(inconcStreak, 0)}
}

// Streaks returns the consecutive failed and inconclusive samples so far.
func (r *Run) Streaks() (fail, inconclusive int) { return r.failStreak, r.inconcStreak }

// Due is when the next sample should be taken. Meaningless once the verdict
// is not VerdictPending.
func (r *Run) Due() time.Time { return r.due }

// Verdict is the verdict so far, and a one-line reason once decided.
func (r *Run) Verdict() (Verdict, string) { return r.verdict, r.reason }

// Taken is the number of samples recorded.
func (r *Run) Taken() int { return r.taken }

// Last is the last sample recorded.
func (r *Run) Last() Sample { return r.last }

// Record takes a sample into account and returns the verdict. Samples after
// a verdict are ignored. The next sample is due one interval after this one
// was, or when this one ended if it took longer than that.
func (r *Run) Record(s Sample) Verdict {
	if r.verdict != VerdictPending {
		return r.verdict
	}
	r.taken++
	r.last = s
	switch s.Result {
	case Pass:
		r.failStreak, r.inconcStreak = 0, 0
	case Fail:
		r.failStreak++
		r.inconcStreak = 0
	default:
		r.inconcStreak++
	}
	g := r.gate
	switch {
	case r.failStreak >= g.FailureLimit:
		r.verdict = VerdictFail
		r.reason = fmt.Sprintf("%d consecutive failed samples (failure_limit %d): %s", r.failStreak, g.FailureLimit, s.Reason)
	case r.inconcStreak >= g.InconclusiveLimit:
		r.verdict = VerdictInconclusive
		r.reason = fmt.Sprintf("%d consecutive inconclusive samples (inconclusive_limit %d): %s", r.inconcStreak, g.InconclusiveLimit, s.Reason)
	case g.Count > 0 && r.taken >= g.Count && s.Result == Pass:
		r.verdict = VerdictPass
		r.reason = fmt.Sprintf("%d samples, the last passed: %s", r.taken, s.Reason)
	}
	next := r.due.Add(g.Interval)
	if end := s.At.Add(s.Took); end.After(next) {
		next = end
	}
	r.due = next
	return r.verdict
}

// Clock is the time source of a Runner.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After is time.After.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Sampler takes one sample of a gate; *Evaluator is one.
type Sampler interface {
	Evaluate(ctx context.Context, g manifest.Gate, vars Vars) Sample
}

var _ Sampler = (*Evaluator)(nil)

// Runner runs a gate to its verdict: it waits for each sample's due time on
// Clock, takes it with Sampler, and reports it to OnSample (may be nil; it
// must not block long).
type Runner struct {
	Sampler  Sampler
	Clock    Clock
	OnSample func(Sample, Verdict)
}

// Run runs g from now until its verdict or until ctx ends; then it returns
// VerdictPending and ctx's error.
func (rn *Runner) Run(ctx context.Context, g manifest.Gate, vars Vars) (Verdict, string, error) {
	run := NewRun(g, rn.Clock.Now())
	for {
		if wait := run.Due().Sub(rn.Clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return VerdictPending, "", ctx.Err()
			case <-rn.Clock.After(wait):
			}
		}
		if err := ctx.Err(); err != nil {
			return VerdictPending, "", err
		}
		s := rn.Sampler.Evaluate(ctx, g, vars)
		if ctx.Err() != nil {
			return VerdictPending, "", ctx.Err() // a sample cut short is no evidence
		}
		v := run.Record(s)
		if rn.OnSample != nil {
			rn.OnSample(s, v)
		}
		if v != VerdictPending {
			_, why := run.Verdict()
			return v, why, nil
		}
	}
}
