package gossip

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// sampleGates feeds the gates each host's Node names (App.Evaluating) with
// samples decided by result, when they are due, as the daemon does, until
// stop is closed.
func sampleGates(hs []*host, result func(h string, j rollout.GateJob) gate.Result, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Go(func() {
			last := map[string]time.Duration{}
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				for _, j := range h.app.Evaluating() {
					k := j.Gate.Name + "/" + strconv.Itoa(j.Step)
					if d, ok := last[k]; ok && d == j.Due || time.Until(h.app.TimeAt(j.Due)) > 0 {
						continue
					}
					last[k] = j.Due
					r := result(h.name, j)
					h.app.GateSample(j.Gate.Name, j.Step, gate.Sample{Gate: j.Gate.Name, Result: r, Values: []gate.Value{{V: 0.1}}, Query: "up",
						Reason: "prometheus: unreachable: dial tcp 127.0.0.1:45905: connect: connection refused " + strings.Repeat("x", 200)})
				}
			}
		})
	}
	return &wg
}

// TestGatedRollout: over real memberlist, a batch gate's samples reach the
// evaluator's Node through App.GateSample, its verdict reaches every host's
// App.Gates, a pass lets every step go on, and a failure at step 1 halts
// the rollout on every host and rolls back.
func TestGatedRollout(t *testing.T) {
	g := manifest.Gate{Name: "err", When: manifest.WhenBatch, Prometheus: &manifest.PrometheusCheck{URL: "http://p", Query: "up"},
		Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Count: 2, FailureLimit: 2, InconclusiveLimit: 3, NoData: manifest.NoDataFail}
	dep := manifest.Deployment{Strategy: manifest.OneAtATime, Rollback: manifest.RollbackOnFailure, Gates: []manifest.Gate{g}}
	for _, tt := range []struct {
		name     string
		failAt   int
		inconcAt int
	}{{"pass", -1, -1}, {"fail at step 1", 1, -1}, {"inconclusive at step 1", -1, 1}} {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			f := newFleet(t)
			f.window = 1
			hs := f.startFleet(4, false)
			stop := make(chan struct{})
			wg := sampleGates(hs, func(_ string, j rollout.GateJob) gate.Result {
				switch j.Step {
				case tt.failAt:
					return gate.Fail
				case tt.inconcAt:
					return gate.Inconclusive
				}
				return gate.Pass
			}, stop)
			defer func() { close(stop); wg.Wait() }()
			for _, h := range hs {
				h.app.SetDesired(desired("r2", dep))
			}
			if tt.inconcAt >= 0 {
				// The evaluator pauses the fleet; the flag reaches every
				// host directly (not at the next push-pull).
				waitFor(t, "every host paused by the gate", 5*time.Second, func() bool {
					for _, h := range hs {
						if f := h.app.Flag(); !h.app.Paused() || !strings.HasPrefix(f.Reason, "gate err inconclusive") {
							return false
						}
					}
					return true
				})
			} else if tt.failAt < 0 {
				waitFor(t, "every host to install r2", 60*time.Second, func() bool { return installed(hs, "r2") })
				waitFor(t, "every host to see step 2's gate pass", 45*time.Second, func() bool {
					for _, h := range hs {
						gs := h.app.Gates()
						if len(gs) != 1 || gs[0].Verdict != gate.VerdictPass || gs[0].Step != 2 {
							return false
						}
					}
					return true
				})
			} else {
				waitFor(t, "every host to halt, roll back and show the failed gate", 60*time.Second, func() bool {
					for _, h := range hs {
						gs := h.app.Gates()
						if len(gs) != 1 || gs[0].Verdict != gate.VerdictFail {
							return false
						}
						for _, s := range h.app.Status() {
							if s.Host == h.name && (!s.Halted || s.Installed != "r1" || s.Phase.Running()) {
								return false
							}
						}
					}
					return true
				})
			}
			f.check()
		})
	}
}
