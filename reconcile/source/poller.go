package source

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"
)

// Result classifies one poll; it is the result label of
// drover_source_polls_total{app,result}.
type Result string

// Poll results.
const (
	ResultChanged   Result = "changed"   // a new desired revision (or manifest)
	ResultUnchanged Result = "unchanged" // same as before
	ResultEmpty     Result = "empty"     // the place exists but its manifest is not written yet (s3, dir)
	ResultInvalid   Result = "invalid"   // the manifest or the bundle is invalid; the previous revision stands
	ResultError     Result = "error"     // the source failed (not found, auth, network, corrupt data)
)

// Results lists every Result, for exporters that pre-create label values.
var Results = [...]Result{ResultChanged, ResultUnchanged, ResultEmpty, ResultInvalid, ResultError}

// Clock is the time the Poller uses; tests pass a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// PollerConfig configures a Poller. Zero fields take the defaults shown.
type PollerConfig struct {
	App      string         // for logs and status
	Interval time.Duration  // between polls while healthy; 30s
	RetryMin time.Duration  // first delay after a failure; min(Interval, 2s)
	RetryMax time.Duration  // longest delay while failing; max(Interval, 5m)
	Clock    Clock          // SystemClock{}
	Rand     func() float64 // in [0,1), for jitter; math/rand/v2.Float64
	Logger   *slog.Logger   // slog.New(slog.DiscardHandler)
	// Check, when set, inspects the bundle of each new revision before the
	// Poller publishes it as desired (the daemon fetches it and validates
	// its appspec.yml). An error for which IsInvalidManifest holds (a
	// *BundleError) refuses the revision: ResultInvalid, the previous
	// desired revision stands. Any other error is ResultError and the
	// revision is checked again at the next poll. Verdicts are kept per
	// revision ID (a bundle's content is its ID), so an idle poll does not
	// check again, and a refused revision stays refused until the source
	// publishes another one.
	Check func(ctx context.Context, rev Revision) error
	// CheckProgress is how often a check still running is logged; 30s.
	CheckProgress time.Duration
}

// maxVerdicts bounds the Check verdicts kept.
const maxVerdicts = 16

// Update is what one poll found.
type Update struct {
	Result  Result
	Desired Revision // the desired revision after this poll (the previous one on failure)
	Has     bool     // whether Desired is set
	Err     error    // set for ResultInvalid and ResultError
	Next    time.Duration
}

// Status is a snapshot for status output and metrics. The daemon exports
// Polls as drover_source_polls_total{app,result} and LastSuccess as
// drover_source_last_success_timestamp_seconds{app}, reading Status at
// scrape time (a prometheus.Collector of its own), so this package needs no
// metrics registry.
type Status struct {
	Source              string // sanitized source description
	Desired             Revision
	HasDesired          bool
	LastError           string // sanitized; "" after a success
	LastErrorTime       time.Time
	LastSuccess         time.Time // zero until the first successful poll
	ConsecutiveFailures int
	LastResult          Result // of the last poll; ResultInvalid while the newest manifest is ignored
	Polls               map[Result]uint64
}

// Poller applies the polling policy to one Source: it keeps the last valid
// desired revision, ignores (but reports) invalid manifests, backs off with
// jitter while the source fails and recovers when it comes back.
type Poller struct {
	src  Source
	cfg  PollerConfig
	poke chan struct{}

	mu       sync.Mutex // guards the fields below
	st       Status
	verdicts map[string]error // Check's verdict per revision ID: nil (valid) or invalid
	order    []string         // verdicts' keys, oldest first
}

// NewPoller returns a Poller for src.
func NewPoller(src Source, cfg PollerConfig) *Poller {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = min(cfg.Interval, 2*time.Second)
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = max(cfg.Interval, 5*time.Minute)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckProgress <= 0 {
		cfg.CheckProgress = 30 * time.Second
	}
	cfg.Logger = cfg.Logger.With("app", cfg.App, "source", src.String())
	p := &Poller{src: src, cfg: cfg, poke: make(chan struct{}, 1), verdicts: map[string]error{}}
	p.st.Source = src.String()
	p.st.Polls = make(map[Result]uint64, len(Results))
	return p
}

// Poke asks Run to poll now. It never blocks; pokes coalesce.
func (p *Poller) Poke() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// Status returns a copy of the current status.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Polls = make(map[Result]uint64, len(p.st.Polls))
	for k, v := range p.st.Polls {
		st.Polls[k] = v
	}
	return st
}

// Poll asks the source once and applies the policy. Run calls it; calls
// must not overlap.
func (p *Poller) Poll(ctx context.Context) Update {
	rev, err := p.src.Desired(ctx)
	if err == nil && p.cfg.Check != nil && p.isNew(rev) {
		err = p.check(ctx, rev)
	}
	now := p.cfg.Clock.Now()

	p.mu.Lock()
	defer p.mu.Unlock()
	u := Update{}
	switch {
	case err == nil:
		u.Result = ResultUnchanged
		if !p.st.HasDesired || !sameRevision(p.st.Desired, rev) {
			u.Result = ResultChanged
			p.cfg.Logger.Info("new desired revision", "revision", rev.ID, "label", rev.Label)
		}
		p.st.Desired, p.st.HasDesired = rev, true
	case ctx.Err() != nil && !IsInvalidManifest(err):
		// Shutting down: not the source's fault, and nothing to record.
		u.Result, u.Err = ResultError, err
		u.Desired, u.Has = p.st.Desired, p.st.HasDesired
		return u
	case errors.Is(err, ErrNoManifest):
		u.Result, u.Err = ResultEmpty, err
	case IsInvalidManifest(err):
		u.Result, u.Err = ResultInvalid, err
	default:
		u.Result, u.Err = ResultError, err
	}
	p.st.Polls[u.Result]++
	p.st.LastResult = u.Result

	if u.Result == ResultError {
		p.st.ConsecutiveFailures++
		if p.st.LastError != err.Error() {
			p.cfg.Logger.Warn("source poll failed", "err", err, "failures", p.st.ConsecutiveFailures)
		} else {
			p.cfg.Logger.Debug("source poll failed", "err", err, "failures", p.st.ConsecutiveFailures)
		}
		p.st.LastError, p.st.LastErrorTime = err.Error(), now
		u.Next = p.backoffLocked()
	} else {
		if p.st.ConsecutiveFailures > 0 {
			p.cfg.Logger.Info("source recovered", "after_failures", p.st.ConsecutiveFailures)
		}
		p.st.ConsecutiveFailures = 0
		switch {
		case err == nil:
			p.st.LastError = ""
			p.st.LastSuccess = now
		case p.st.LastError == err.Error():
			// Logged when first seen.
		case u.Result == ResultInvalid:
			p.cfg.Logger.Error("invalid revision ignored; the previous desired revision stands", "err", err)
		default: // ResultEmpty
			p.cfg.Logger.Info("no manifest published yet", "err", err)
		}
		if err != nil {
			// Not a success: LastSuccess stays, and status says why.
			p.st.LastError, p.st.LastErrorTime = err.Error(), now
		}
		u.Next = p.jitter(p.cfg.Interval, 0.1)
	}
	u.Desired, u.Has = p.st.Desired, p.st.HasDesired
	return u
}

// isNew reports whether rev differs from the desired revision, i.e. whether
// publishing it would be a change.
func (p *Poller) isNew(rev Revision) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.st.HasDesired || !sameRevision(p.st.Desired, rev)
}

// check runs cfg.Check on rev once per revision ID, logging while it runs.
func (p *Poller) check(ctx context.Context, rev Revision) error {
	p.mu.Lock()
	v, ok := p.verdicts[rev.ID]
	p.mu.Unlock()
	if ok {
		return v
	}
	log := p.cfg.Logger.With("revision", rev.Label, "id", rev.ID)
	log.Info("checking bundle of new revision before publishing it as desired")
	start := p.cfg.Clock.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-p.cfg.Clock.After(p.cfg.CheckProgress):
				log.Info("still checking bundle", "elapsed", p.cfg.Clock.Now().Sub(start).Round(time.Second))
			}
		}
	})
	err := p.cfg.Check(ctx, rev)
	close(done)
	wg.Wait()
	took := p.cfg.Clock.Now().Sub(start)
	switch {
	case err == nil:
		log.Info("bundle checked", "took", took.Round(time.Millisecond))
	case IsInvalidManifest(err):
		log.Debug("bundle refused", "took", took.Round(time.Millisecond))
	default:
		// Not a verdict (a fetch failed, or shutdown): ask again next time.
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) >= maxVerdicts {
		delete(p.verdicts, p.order[0])
		p.order = p.order[1:]
	}
	p.verdicts[rev.ID] = err
	p.order = append(p.order, rev.ID)
	return err
}

// backoffLocked is the delay after the n-th consecutive failure: RetryMin
// doubled per failure up to RetryMax, with "equal jitter" (half fixed, half
// random) so that a fleet that lost its source together does not return in
// lockstep.
func (p *Poller) backoffLocked() time.Duration {
	d := p.cfg.RetryMin
	for i := 1; i < p.st.ConsecutiveFailures && d < p.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.RetryMax)
	return d/2 + time.Duration(p.cfg.Rand()*float64(d/2))
}

// jitter spreads d by ±frac.
func (p *Poller) jitter(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 - frac + 2*frac*p.cfg.Rand()))
}

// sameRevision reports whether two revisions are the same desired state:
// the same content and the same manifest (a manifest may change, e.g. to
// pause, without the bundle changing).
func sameRevision(a, b Revision) bool {
	return a.ID == b.ID && a.Label == b.Label && reflect.DeepEqual(a.Manifest, b.Manifest) &&
		reflect.DeepEqual(a.Env, b.Env)
}

// Run polls until ctx is done, calling onChange (from this goroutine) with
// every new desired revision. A Watcher source is watched meanwhile; its
// pokes trigger an early poll. Run returns when ctx is done and its
// goroutines have stopped.
func (p *Poller) Run(ctx context.Context, onChange func(Revision)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if w, ok := p.src.(Watcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Watch(ctx, p.Poke); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("watch stopped; polling only", "err", err)
			}
		}()
	}
	for {
		u := p.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if u.Result == ResultChanged && onChange != nil {
			onChange(u.Desired)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.cfg.Clock.After(u.Next):
		case <-p.poke:
		}
	}
}
