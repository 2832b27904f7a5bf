package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// bootTiming is testTiming with the rules a fresh group needs: a stalled
// host is passed over, and a majority of bootstrap_expect forms the first
// roster without the missing hosts after 10 s.
var bootTiming = func() Timing {
	t := testTiming
	t.SkipAfter = t.Lease
	t.BootstrapPartial = 10 * time.Second
	return t
}()

// newFreshNet is a net of n new hosts (nothing installed, no roster) with
// bootstrap_expect expect; none is up until start.
func newFreshNet(t *testing.T, n, expect int, timing Timing) *net {
	w := newNetTiming(t, 0, "", timing)
	for i := 0; i < n; i++ {
		w.names = append(w.names, fmt.Sprintf("h%d", i))
	}
	w.expect = expect
	return w
}

// start brings up host h, new (zero persisted state), at the current time.
func (w *net) start(hs ...string) {
	for _, h := range hs {
		w.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: w.timing, BootstrapExpect: w.expect}, Persisted{}, w.now)
	}
	w.flush()
}

// rosters returns each started host's roster as "epoch:members".
func (w *net) rosters() map[string]string {
	out := map[string]string{}
	for _, h := range w.names {
		if n := w.nodes[h]; n != nil {
			r := n.Roster()
			out[h] = fmt.Sprintf("%d:%s", r.Epoch, strings.Join(r.Members, ","))
		}
	}
	return out
}

// oneRoster reports whether every host in hs holds the same roster, with
// members, and returns it.
func (w *net) oneRoster(hs ...string) (Roster, bool) {
	var first Roster
	for i, h := range hs {
		r := w.nodes[h].Roster()
		if r.Epoch == 0 || i > 0 && (r.Epoch != first.Epoch || !slices.Equal(r.Members, first.Members)) {
			return r, false
		}
		first = r
	}
	return first, true
}

// conflicts fails the test when two hosts hold different rosters of the
// same epoch: the property bootstrap_expect exists for.
func (w *net) conflicts(t *testing.T) {
	t.Helper()
	byEpoch := map[uint64]string{}
	for _, h := range w.names {
		n := w.nodes[h]
		if n == nil || n.Roster().Epoch == 0 {
			continue
		}
		r := n.Roster()
		m := strings.Join(r.Members, ",")
		if prev, ok := byEpoch[r.Epoch]; ok && prev != m {
			t.Fatalf("two rosters of epoch %d: %s and %s (%v)", r.Epoch, prev, m, w.rosters())
		}
		byEpoch[r.Epoch] = m
	}
}

// run advances d in steps of 100 ms, checking for conflicting rosters.
func (w *net) run(t *testing.T, d time.Duration) {
	t.Helper()
	for end := w.now + d; w.now < end; {
		w.advance(100 * time.Millisecond)
		w.conflicts(t)
	}
}

func (w *net) installed(rev string, hs ...string) int {
	c := 0
	for _, h := range hs {
		if w.nodes[h].Row().Installed == rev {
			c++
		}
	}
	return c
}

// rollOut finishes every lifecycle as soon as it starts, until cond holds
// or limit passes; it reports whether cond held.
func (w *net) rollOut(limit time.Duration, cond func() bool) bool {
	for end := w.now + limit; w.now < end; {
		if cond() {
			return true
		}
		w.advance(100 * time.Millisecond)
		for _, h := range w.names {
			if _, ok := w.running[h]; ok {
				w.finish(h, true)
			}
		}
	}
	return cond()
}

func (w *net) desire(d Desired, hs ...string) {
	for _, h := range hs {
		w.nodes[h].SetDesired(w.now, d)
	}
	w.flush()
}

func rev(r string, s manifest.Strategy) Desired {
	return Desired{Revision: r, ManifestID: "m-" + r, Deployment: manifest.Deployment{Strategy: s, Rollback: manifest.RollbackOnFailure}}
}

// TestGrayCutFreshGroupGetsOneRoster is issue 9's gray partition without
// bootstrap_expect: five fresh hosts install revision 1 all at once (no
// slot), then datagrams between {h0,h1} and {h2,h3,h4} are dropped while
// streams pass. The roster formed after the cut must reach every host
// (roster requests and answers are reliable, push-pull carries the
// roster), and a one-at-a-time revision 2 then completes on the majority
// side one at a time, the minority starts nothing, and after the heal the
// minority goes too. Before the roster travelled over TCP h2–h4 never had
// one, never voted, and revision 2 never started.
func TestGrayCutFreshGroupGetsOneRoster(t *testing.T) {
	w := newFreshNet(t, 5, 0, bootTiming)
	w.pullEvery = 500 * time.Millisecond
	w.start(w.names...)
	w.desire(rev("r1", manifest.AllAtOnce), w.names...)
	if len(w.running) != 5 {
		t.Fatalf("%d fresh hosts installing r1, want 5", len(w.running))
	}
	for _, h := range w.names {
		w.finish(h, true)
	}
	if r := w.nodes["h0"].Roster(); r.Epoch != 0 {
		t.Fatalf("a roster formed before the cut (%+v): the test would not cut its way", r)
	}
	minority, majority := w.names[:2], w.names[2:]
	w.splitOff(splitDatagrams, minority...)
	w.run(t, 10*time.Second)
	r, ok := w.oneRoster(w.names...)
	if !ok || len(r.Members) != 5 {
		t.Fatalf("rosters after the cut: %v; want one roster of all five", w.rosters())
	}
	before := len(w.starts)
	w.desire(rev("r2", manifest.OneAtATime), w.names...)
	if !w.rollOut(2*time.Minute, func() bool { return w.installed("r2", majority...) == 3 }) {
		t.Fatalf("majority side: %d of 3 installed r2; rosters %v", w.installed("r2", majority...), w.rosters())
	}
	w.run(t, 10*time.Second) // the minority has had time to try
	if started := slices.ContainsFunc(w.starts[before:], func(h string) bool { return slices.Contains(minority, h) }); started {
		t.Fatalf("the minority side started r2 during the cut: starts %v", w.starts[before:])
	}
	t.Logf("cut: majority done at %s, starts %v", w.now, w.starts[before:])
	if w.maxRun > 1 {
		t.Fatalf("max concurrent %d, window 1", w.maxRun)
	}
	w.splitOff(splitNone)
	if !w.rollOut(2*time.Minute, func() bool { return w.installed("r2", w.names...) == 5 }) {
		t.Fatalf("after the heal %d of 5 installed r2", w.installed("r2", w.names...))
	}
	if w.maxRun > 1 {
		t.Fatalf("max concurrent %d, window 1", w.maxRun)
	}
}
