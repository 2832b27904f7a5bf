package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// net is a tiny perfect network for unit tests: messages are delivered in
// order, after every step, to hosts that are up and not cut off.
type net struct {
	t     testing.TB
	now   time.Duration
	nodes map[string]*Node
	names []string
	st    map[string]Persisted
	down  map[string]bool
	cut   map[string]bool // cut off from everyone
	mute  map[string]bool // its direct messages are lost, its gossip passes (a UDP cut with TCP push-pull)
	// side and split: a partition between the hosts of side 1 and the
	// others. splitAll drops everything between the sides; splitDatagrams
	// drops what memberlist sends as UDP (gossip, and direct messages that
	// are not Reliable) while streams pass: reliable messages and push-pull.
	side  map[string]int
	split splitMode
	// pullEvery > 0: every pullEvery each up host exchanges its LocalState
	// with one other (a rotating peer), as memberlist's push-pull does over
	// TCP.
	pullEvery time.Duration
	pulls     int
	running   map[string]Decision
	starts    []string
	timing    Timing            // of the nodes
	expect    int               // their bootstrap_expect
	nonce     string            // prefix of their Config.Nonce (start: nonce+host)
	ids       map[string]string // each host's last slotted deployment ID
	aborts    []string
	maxRun    int
	// sample, when set, takes the samples of the gates each up host
	// evaluates (Node.Evaluating) when they are due (gates_test.go).
	sample    func(host string, j GateJob) gate.Result
	samples   []string // "host gate step result", in order
	passedAt  map[int]time.Duration
	startedAt map[string]time.Duration // each host's last forward start
}

var testTiming = Timing{Lease: 4 * time.Second, Renew: time.Second, ClaimTimeout: 200 * time.Millisecond,
	Quarantine: 4 * time.Second, ProposeDelay: 300 * time.Millisecond, RemoveAfter: time.Hour, BootstrapDelay: time.Second, DriftRate: 0.01}

func newNet(t testing.TB, n int, installed string) *net {
	return newNetTiming(t, n, installed, testTiming)
}

func newNetTiming(t testing.TB, n int, installed string, timing Timing) *net {
	w := &net{t: t, timing: timing, nodes: map[string]*Node{}, st: map[string]Persisted{}, down: map[string]bool{}, cut: map[string]bool{}, mute: map[string]bool{}, running: map[string]Decision{}}
	for i := 0; i < n; i++ {
		w.names = append(w.names, fmt.Sprintf("h%d", i))
	}
	for _, h := range w.names {
		st := Persisted{Roster: Roster{Epoch: 1, Members: slices.Clone(w.names)}, Row: Row{Installed: installed}}
		w.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: timing}, st, w.now)
	}
	w.flush()
	return w
}

type splitMode uint8

const (
	splitNone splitMode = iota
	splitAll
	splitDatagrams
)

// splitOff partitions the hosts in side1 from the others (mode splitNone heals).
func (w *net) splitOff(mode splitMode, side1 ...string) {
	w.split = mode
	w.side = map[string]int{}
	for _, h := range side1 {
		w.side[h] = 1
	}
}

func (w *net) reachable(a, b string) bool {
	return !w.down[a] && !w.down[b] && !w.cut[a] && !w.cut[b] && (w.split != splitAll || w.side[a] == w.side[b])
}

// datagram reports whether a datagram from a reaches b.
func (w *net) datagram(a, b string) bool {
	return w.reachable(a, b) && (w.split != splitDatagrams || w.side[a] == w.side[b])
}

// pushPull exchanges the full state of a and b, as memberlist's push-pull
// does over a stream.
func (w *net) pushPull(a, b string) {
	na, nb := w.nodes[a], w.nodes[b]
	if na == nil || nb == nil || !w.reachable(a, b) {
		return
	}
	sa, sb := na.LocalState(), nb.LocalState()
	ptrs := func(ms []Message) []*Message {
		out := make([]*Message, len(ms))
		for i := range ms {
			out[i] = &ms[i]
		}
		return out
	}
	nb.ReceiveBatch(w.now, ptrs(sa))
	na.ReceiveBatch(w.now, ptrs(sb))
}

func (w *net) flush() {
	for more := true; more; {
		more = false
		for _, h := range w.names {
			n := w.nodes[h]
			if w.down[h] || n == nil {
				continue
			}
			o := n.TakeOutput()
			if o.Persist != nil {
				w.st[h] = *o.Persist
			}
			for _, d := range o.Decisions {
				w.decide(h, d)
			}
			for _, e := range o.Send {
				if (w.datagram(h, e.To) || e.Msg.Reliable() && w.reachable(h, e.To)) && !w.mute[h] && w.nodes[e.To] != nil {
					w.nodes[e.To].Receive(w.now, e.Msg)
					more = true
				}
			}
			for _, m := range o.Broadcast {
				for _, to := range w.names {
					if to != h && w.datagram(h, to) && w.nodes[to] != nil {
						w.nodes[to].Receive(w.now, m)
						more = true
					}
				}
			}
		}
	}
}

func (w *net) decide(h string, d Decision) {
	switch d.Kind {
	case DecideStart:
		if _, busy := w.running[h]; busy {
			w.t.Errorf("P3: %s started %s while running", h, d.Deployment)
		}
		w.running[h] = d
		w.starts = append(w.starts, h)
		if w.startedAt == nil {
			w.startedAt = map[string]time.Duration{}
		}
		if !d.Rollback {
			w.startedAt[h] = w.now
		}
		if !d.Slotless {
			if w.ids == nil {
				w.ids = map[string]string{}
			}
			w.ids[h] = d.Deployment
		}
		slotted := 0
		for _, r := range w.running {
			if !r.Slotless {
				slotted++
			}
		}
		w.maxRun = max(w.maxRun, slotted)
	case DecideAbort:
		w.aborts = append(w.aborts, h)
		delete(w.running, h)
		w.nodes[h].Finished(w.now, d.Deployment, false, "aborted")
	}
}

// advance moves time forward in small steps, ticking due nodes.
func (w *net) advance(d time.Duration) {
	end := w.now + d
	for w.now < end {
		w.now += 10 * time.Millisecond
		if w.pullEvery > 0 && w.now%w.pullEvery == 0 && len(w.names) > 1 {
			w.pulls++
			k := 1 + w.pulls%(len(w.names)-1)
			for i, h := range w.names {
				w.pushPull(h, w.names[(i+k)%len(w.names)])
			}
		}
		for _, h := range w.names {
			if n := w.nodes[h]; n != nil && !w.down[h] && n.NextWake() <= w.now {
				n.Tick(w.now)
			}
		}
		w.flush()
		w.sampleGates()
	}
}

// finish ends host h's running lifecycle.
func (w *net) finish(h string, ok bool) {
	d, running := w.running[h]
	if !running {
		w.t.Fatalf("%s is not running", h)
	}
	delete(w.running, h)
	w.nodes[h].Finished(w.now, d.Deployment, ok, "")
	w.flush()
}

func (w *net) setDesired(d Desired) {
	for _, h := range w.names {
		if !w.down[h] {
			w.nodes[h].SetDesired(w.now, d)
		}
	}
	w.flush()
}

func desired(s manifest.Strategy) Desired {
	return Desired{Revision: "r2", ManifestID: "m2", Deployment: manifest.Deployment{Strategy: s, Rollback: manifest.RollbackOnFailure}}
}

func TestOneAtATimeCompletes(t *testing.T) {
	w := newNet(t, 5, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	for i := 0; i < 5; i++ {
		w.advance(time.Second)
		if len(w.running) != 1 {
			t.Fatalf("step %d: %d hosts running, want 1", i, len(w.running))
		}
		for h := range w.running {
			w.finish(h, true)
		}
	}
	w.advance(time.Second)
	for _, h := range w.names {
		if r := w.nodes[h].Row(); r.Installed != "r2" || r.Phase != PhaseSucceeded || !w.nodes[h].Settled() {
			t.Errorf("%s: %+v", h, r)
		}
	}
	if w.maxRun != 1 {
		t.Errorf("max concurrent %d", w.maxRun)
	}
}

func TestFirstFailureHaltsAndRollsBack(t *testing.T) {
	w := newNet(t, 4, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	var first string
	for h := range w.running {
		first = h
	}
	w.finish(first, true)
	w.advance(time.Second)
	for h := range w.running {
		w.finish(h, false) // the second host fails: one-at-a-time halts
	}
	// both hosts that installed r2 roll back, one at a time
	for i := 0; i < 2; i++ {
		w.advance(time.Second)
		if len(w.running) != 1 {
			t.Fatalf("rollback step %d: %d running", i, len(w.running))
		}
		for h, d := range w.running {
			if !d.Rollback || d.Revision != "r1" {
				t.Errorf("%s: %+v, want a rollback to r1", h, d)
			}
			w.finish(h, true)
		}
	}
	w.advance(2 * time.Second)
	if len(w.running) != 0 {
		t.Errorf("still running after the rollback: %v", w.running)
	}
	for _, h := range w.names {
		n := w.nodes[h]
		if !n.Settled() || n.Row().Installed != "r1" || !n.Row().Halted {
			t.Errorf("%s: settled=%v %+v", h, n.Settled(), n.Row())
		}
	}
	// not retried under the same manifest, retried under a new one
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	if len(w.running) != 0 {
		t.Errorf("halted revision retried without a manifest change")
	}
	d := desired(manifest.OneAtATime)
	d.ManifestID = "m3"
	w.setDesired(d)
	w.advance(time.Second)
	if len(w.running) != 1 {
		t.Errorf("new manifest: %d running, want 1", len(w.running))
	}
}

func TestRestartMarksInterruptedDeploymentFailed(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.setDesired(desired(manifest.Rolling))
	w.advance(time.Second)
	var h string
	for k := range w.running {
		h = k
	}
	st := w.st[h]
	if st.Row.Phase != PhaseRunning {
		t.Fatalf("persisted phase %s, want running", st.Row.Phase)
	}
	w.down[h] = true
	delete(w.running, h)
	w.advance(time.Second)
	w.down[h] = false
	w.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: testTiming}, st, w.now)
	w.flush()
	if r := w.nodes[h].Row(); r.Phase != PhaseFailed && r.Phase != PhaseRollingBack {
		t.Errorf("after restart: %+v, want failed", r)
	}
}

func TestPausedFleetStartsNothing(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.nodes["h1"].SetPaused(w.now, true)
	w.flush()
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(2 * time.Second)
	if len(w.starts) != 0 {
		t.Fatalf("started while paused: %v", w.starts)
	}
	w.nodes["h2"].SetPaused(w.now, false)
	w.flush()
	w.advance(time.Second)
	if len(w.running) != 1 {
		t.Errorf("after resume: %d running, want 1", len(w.running))
	}
}

func TestFreshHostInstallsAtOnceWithoutSlot(t *testing.T) {
	w := newNet(t, 3, "")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(100 * time.Millisecond)
	if len(w.running) != 3 {
		t.Fatalf("%d fresh hosts installing, want all 3", len(w.running))
	}
	for _, d := range w.running {
		if !d.Slotless {
			t.Errorf("fresh install %+v took a slot", d)
		}
	}
}

// TestFreshHostsDoNotBlockEachOther: in a new group some hosts learn the
// first revision before others and install it; the late ones must install
// it too, without a slot, even while other fresh hosts are still at it.
// (A fresh host's row is "waiting" for the target while it installs; read
// as a rollout in flight, it made every late fresh host wait for a "last
// good" revision that did not exist, forever: seen with 20 real agents.)
func TestFreshHostsDoNotBlockEachOther(t *testing.T) {
	w := newNet(t, 6, "")
	d := desired(manifest.OneAtATime)
	early := func(hs ...string) {
		for _, h := range hs {
			w.nodes[h].SetDesired(w.now, d)
		}
		w.flush()
	}
	early("h0", "h1")
	w.advance(100 * time.Millisecond)
	w.finish("h0", true) // h0 has r2; h1 is still installing it
	early("h2", "h3", "h4", "h5")
	w.advance(100 * time.Millisecond)
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5"} {
		r, ok := w.running[h]
		if !ok {
			t.Errorf("fresh host %s is not installing r2: %+v", h, w.nodes[h].Row())
			continue
		}
		if !r.Slotless || r.Revision != "r2" {
			t.Errorf("fresh host %s runs %+v, want r2 without a slot", h, r)
		}
	}
}

// TestFreshHostBacksOffAfterAFailedInstall: a fresh host whose install
// fails tries again after a growing backoff, not back to back.
func TestFreshHostBacksOffAfterAFailedInstall(t *testing.T) {
	w := newNet(t, 3, "")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(100 * time.Millisecond)
	w.finish("h1", true)
	w.finish("h2", true)
	var gaps []time.Duration
	for i := 1; i <= 4; i++ {
		w.finish("h0", false)
		failedAt := w.now
		for deadline := w.now + 10*time.Second; w.running["h0"].Deployment == "" && w.now < deadline; {
			w.advance(10 * time.Millisecond)
		}
		if _, ok := w.running["h0"]; !ok {
			t.Fatalf("failure %d: h0 did not try again within 10s", i)
		}
		gaps = append(gaps, w.now-failedAt)
		if want := freshBackoff(testTiming, i); gaps[i-1] < want {
			t.Errorf("failure %d: retried after %s, want at least %s", i, gaps[i-1], want)
		}
	}
	if !(gaps[0] < gaps[1] && gaps[1] < gaps[2] && gaps[2] < gaps[3]) {
		t.Errorf("retry gaps %v do not grow", gaps)
	}
	w.finish("h0", true)
	if r := w.nodes["h0"].Row(); r.Installed != "r2" {
		t.Errorf("h0 after the retry: %+v", r)
	}
}

// deliverOnly hands h's pending output to the hosts in to and drops the
// rest, to stage a message that is still in flight to everyone else.
func (w *net) deliverOnly(h string, to ...string) {
	o := w.nodes[h].TakeOutput()
	if o.Persist != nil {
		w.st[h] = *o.Persist
	}
	for _, d := range o.Decisions {
		w.decide(h, d)
	}
	for _, e := range o.Send {
		if slices.Contains(to, e.To) {
			w.nodes[e.To].Receive(w.now, e.Msg)
		}
	}
	for _, m := range o.Broadcast {
		for _, dst := range to {
			w.nodes[dst].Receive(w.now, m)
		}
	}
}

// TestStaleRefusalIsAskedAgain: the next host learns that the holder
// released its slot before the other voters do, and claims at once; they
// refuse, naming the holder. The claimant asks them again a moment later,
// by which time the release has reached them, and gets the slot in that
// same round instead of abandoning the claim and backing off.
func TestStaleRefusalIsAskedAgain(t *testing.T) {
	// The rollout order is the same on every run: learn it from one.
	probe := newNet(t, 5, "r1")
	probe.setDesired(desired(manifest.OneAtATime))
	for range 2 {
		probe.advance(time.Second)
		for h := range probe.running {
			probe.finish(h, true)
		}
	}
	if len(probe.starts) < 2 {
		t.Fatalf("probe run started %v", probe.starts)
	}
	holder, next := probe.starts[0], probe.starts[1]

	w := newNet(t, 5, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	d, ok := w.running[holder]
	if !ok || len(w.running) != 1 {
		t.Fatalf("running %v, want only %s", w.running, holder)
	}
	delete(w.running, holder)
	w.nodes[holder].Finished(w.now, d.Deployment, true, "")
	w.deliverOnly(holder, next) // the release reaches next alone
	var stale []string
	for _, h := range w.names {
		if h != holder && h != next {
			stale = append(stale, h)
		}
	}
	w.deliverOnly(next, append([]string{holder}, stale...)...) // next claims from everyone
	for _, h := range stale {
		w.deliverOnly(h, next) // refusals naming the holder
	}
	w.deliverOnly(holder, next) // its grant
	if _, ok := w.running[next]; ok {
		t.Fatal("the stale voters granted: nothing was staged")
	}
	// Now the holder's row, with its release, lands everywhere.
	for _, h := range stale {
		w.nodes[h].Receive(w.now, Message{Kind: KindRow, App: "app", From: holder, Row: w.nodes[holder].Row()})
	}
	w.flush()
	w.advance(testTiming.recheckDelay() + 20*time.Millisecond)
	if r, ok := w.running[next]; !ok || r.Slotless {
		t.Fatalf("%s is not running in a slot %s after the stale refusals (running %v); a claim timeout is %s",
			next, testTiming.recheckDelay()+20*time.Millisecond, w.running, testTiming.ClaimTimeout)
	}
	if w.maxRun != 1 {
		t.Errorf("max concurrent %d", w.maxRun)
	}
}

func TestCutOffHolderAbortsBeforeItsLeaseExpires(t *testing.T) {
	w := newNet(t, 5, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(500 * time.Millisecond)
	var h string
	for k := range w.running {
		h = k
	}
	w.cut[h] = true // a partition: h keeps running on its side
	for _, o := range w.names {
		if o != h {
			w.nodes[o].PeerChanged(w.now, h, ReachDead)
			w.nodes[h].PeerChanged(w.now, o, ReachDead)
		}
	}
	w.flush()
	before := len(w.starts)
	var abortedAt, nextAt time.Duration
	for i := 0; i < 1000 && (abortedAt == 0 || nextAt == 0); i++ {
		w.advance(10 * time.Millisecond)
		if abortedAt == 0 && slices.Contains(w.aborts, h) {
			abortedAt = w.now
		}
		if nextAt == 0 && len(w.starts) > before {
			nextAt = w.now
		}
	}
	if abortedAt == 0 || nextAt == 0 {
		t.Fatalf("holder fenced at %s, next start at %s", abortedAt, nextAt)
	}
	if nextAt < abortedAt {
		t.Errorf("the majority started at %s, before the cut-off holder was fenced at %s", nextAt, abortedAt)
	}
	if w.maxRun > 1 {
		t.Errorf("max concurrent %d", w.maxRun)
	}
}

func TestLeaveChangesTheRoster(t *testing.T) {
	w := newNet(t, 4, "r1")
	w.down["h3"] = true
	for _, h := range w.names[:3] {
		w.nodes[h].PeerChanged(w.now, "h3", ReachLeft)
	}
	w.flush()
	w.advance(3 * time.Second)
	for _, h := range w.names[:3] {
		r := w.nodes[h].Roster()
		if r.Epoch != 2 || slices.Contains(r.Members, "h3") || len(r.Members) != 3 {
			t.Errorf("%s: roster %+v", h, r)
		}
	}
}

func TestLateGrantDoesNotHealALapsedLease(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	if len(w.running) != 1 {
		t.Fatalf("%d running, want 1", len(w.running))
	}
	var h string
	for k := range w.running {
		h = k
	}
	n := w.nodes[h]
	c := n.claimant.cur
	if c == nil || !c.acquired {
		t.Fatalf("%s holds no claim", h)
	}
	// A renewal round goes out but its grants are late: they arrive after
	// the previous round's grants (the majority) lapsed. They must not heal
	// the lease: the holder has to stop.
	lapse := c.holdUntil()
	w.now = c.nextRenew
	n.Tick(w.now)
	n.TakeOutput() // the renewal's messages are delayed
	w.now = lapse + time.Millisecond
	var voter string
	for _, v := range c.voters {
		if v != h {
			voter = v
			break
		}
	}
	n.Receive(w.now, Message{Kind: KindGrant, App: "app", From: voter, Epoch: c.epoch, Slot: c.slot, Claim: c.id, Round: c.round, OK: true})
	out := n.TakeOutput()
	aborted := false
	for _, d := range out.Decisions {
		aborted = aborted || d.Kind == DecideAbort
	}
	if !aborted {
		t.Fatalf("lapsed lease not aborted: decisions %+v", out.Decisions)
	}
	// The lifecycle is being killed: the slot is not released until the
	// daemon reports that it stopped (a Release now would let a voter hand
	// the slot on while this host's scripts still run).
	for _, e := range out.Send {
		if e.Msg.Kind == KindRelease {
			t.Fatalf("released at the abort, before the lifecycle stopped: %+v", e.Msg)
		}
	}
	if n.claimant.cur == nil || !n.claimant.cur.lost || n.Row().Claim == 0 {
		t.Fatalf("claim dropped at the abort: claim %v, row %+v", n.claimant.cur != nil, n.Row())
	}
	lostID := n.claimant.cur.id
	n.Finished(w.now+time.Millisecond, n.run.id, false, "")
	out = n.TakeOutput()
	released := false
	for _, e := range out.Send {
		released = released || e.Msg.Kind == KindRelease
	}
	// A lapsed lease is not the revision's failure: the host takes its
	// turn again (waiting), and says why.
	if !released || n.claimant.cur != nil && n.claimant.cur.id == lostID || n.Row().Released < lostID || n.Row().Phase != PhaseWaiting || !strings.Contains(n.Row().Result, "lease lost") {
		t.Errorf("after Finished: released %v, claim %v, row %+v", released, n.claimant.cur != nil, n.Row())
	}
}

// A host that memberlist calls alive but whose claims never reach a voter
// (UDP dropped between it and the others while TCP passes) must not hold
// up the hosts behind it in the order: after SkipAfter without progress
// they pass it over; it takes its turn once its datagrams get through.
// Without SkipAfter the group waits for it forever.
func TestStalledHostIsPassedOver(t *testing.T) {
	for _, skip := range []bool{true, false} {
		t.Run(fmt.Sprintf("skip=%v", skip), func(t *testing.T) {
			tm := testTiming
			if skip {
				tm.SkipAfter = tm.Lease
			}
			w := newNetTiming(t, 5, "r1", tm)
			d := desired(manifest.OneAtATime)
			// The host first in r2's order is the one whose datagrams are lost.
			first, best := "", ^uint64(0)
			for _, h := range w.names {
				if r := hash2("r2", h) >> 1; r < best {
					first, best = h, r
				}
			}
			w.mute[first] = true
			w.setDesired(d)
			done := func() int {
				c := 0
				for _, h := range w.names {
					if w.nodes[h].Row().Installed == "r2" {
						c++
					}
				}
				return c
			}
			for i := 0; i < 200 && done() < 4; i++ {
				w.advance(100 * time.Millisecond)
				for h := range w.running {
					w.finish(h, true)
				}
			}
			if !skip {
				if done() != 0 {
					t.Fatalf("without SkipAfter %d hosts got past the stalled first host; the test cannot tell the rule from its absence", done())
				}
				return
			}
			if done() != 4 || w.nodes[first].Row().Installed == "r2" {
				t.Fatalf("%d hosts installed r2 (the stalled %s: %q); want the 4 others", done(), first, w.nodes[first].Row().Installed)
			}
			if w.maxRun > 1 {
				t.Errorf("max concurrent %d, window 1", w.maxRun)
			}
			var skipped uint64
			for _, h := range w.names {
				skipped += w.nodes[h].Stats().Skipped
			}
			if skipped == 0 {
				t.Errorf("no host counted a skip")
			}
			w.mute[first] = false
			for i := 0; i < 200 && done() < 5; i++ {
				w.advance(100 * time.Millisecond)
				for h := range w.running {
					w.finish(h, true)
				}
			}
			if done() != 5 {
				t.Fatalf("after the heal %d of 5 hosts installed r2", done())
			}
		})
	}
}

// TestForceRemoveIsForgottenOnceDone: the operator removes a dead voter;
// once a roster without it is adopted the request is done, so when the host
// comes back and the group re-admits it, the host that was asked does not
// propose its removal again (it did, after every re-admission, for ever).
func TestForceRemoveIsForgottenOnceDone(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.down["h2"] = true
	for _, h := range w.names[:2] {
		w.nodes[h].PeerChanged(w.now, "h2", ReachDead)
	}
	w.nodes["h0"].ForceRemove(w.now, "h2")
	w.flush()
	w.advance(5 * time.Second)
	if r := w.nodes["h1"].Roster(); slices.Contains(r.Members, "h2") || len(r.Members) != 2 {
		t.Fatalf("after the removal: roster %+v, want h0 and h1", r)
	}
	// h2 restarts with its state and is alive again: a joiner.
	delete(w.down, "h2")
	w.nodes["h2"] = NewNode(Config{Host: "h2", App: "app", Group: "g", Timing: w.timing}, w.st["h2"], w.now)
	for _, h := range w.names[:2] {
		w.nodes[h].PeerChanged(w.now, "h2", ReachAlive)
		w.nodes["h2"].PeerChanged(w.now, h, ReachAlive)
	}
	w.pushPull("h2", "h0")
	w.pushPull("h2", "h1")
	w.flush()
	w.advance(10 * time.Second)
	back := w.nodes["h0"].Roster()
	if !slices.Contains(back.Members, "h2") {
		t.Fatalf("h2 not re-admitted: roster %+v", back)
	}
	w.advance(time.Minute)
	if r := w.nodes["h0"].Roster(); r.Epoch != back.Epoch || !slices.Contains(r.Members, "h2") {
		t.Fatalf("the roster moved on after the re-admission: %+v, then %+v (the removal proposed again)", back, r)
	}
}

// TestDeadPeersSlotIsFreedWhicheverCameFirst: a host told a peer is dead
// (or unknown to memberlist: the driver's route rule) before it holds the
// peer's row, then given a row showing the peer in a slot, counts the slot
// occupied for one lease after the death, and not for good (found by the
// simulator as fault seed 3894: two restarted hosts never freed slot 0).
func TestDeadPeersSlotIsFreedWhicheverCameFirst(t *testing.T) {
	for _, reachFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("reachFirst=%v", reachFirst), func(t *testing.T) {
			tm := TimingFor(LANParams, 3)
			st := Persisted{
				Roster: Roster{Epoch: 1, Members: []string{"a", "b", "c"}},
				Row:    Row{Installed: "r1", Revision: "r1", Phase: PhaseSucceeded},
			}
			now := time.Duration(0)
			n := NewNode(Config{Host: "a", App: "app", Group: "g", Timing: tm}, st, now)
			n.PeerChanged(now, "b", ReachDead)
			n.PeerChanged(now, "c", ReachDead)
			row := Message{Kind: KindRow, App: "app", From: "x", Row: Row{
				Host: "x", Seq: 1<<32 | 7, Revision: "r2", Phase: PhaseRunning, Slot: 0, Claim: 1<<32 | 5,
				Installed: "r1", Epoch: 1,
			}}
			now += time.Second
			dead := now
			if reachFirst {
				n.PeerChanged(now, "x", ReachDead)
				n.Receive(now, row)
			} else {
				n.Receive(now, row)
				n.PeerChanged(now, "x", ReachDead)
			}
			n.SetDesired(now, Desired{Revision: "r2", ManifestID: "m2", Deployment: manifest.Deployment{Strategy: manifest.OneAtATime}})
			// b and c are dead voters: a cannot win the slot, but it must
			// try once x's slot is no longer counted, one lease after the
			// death, and not before.
			var claimAt time.Duration
			for end := now + 3*tm.Lease; now < end && claimAt == 0; {
				for _, e := range n.TakeOutput().Send {
					if e.Msg.Kind == KindClaim {
						claimAt = now
					}
				}
				now = max(now+time.Millisecond, n.NextWake())
				n.Tick(now)
			}
			switch {
			case claimAt == 0:
				t.Errorf("no claim within three leases of x's death")
			case claimAt < dead+tm.Lease:
				t.Errorf("claimed at %s, before x's slot may be taken (%s)", claimAt, dead+tm.Lease)
			}
		})
	}
}

// TestLapsedLeaseRetriesThenFails: a host whose lease lapses mid-lifecycle
// (cut off from the voters) takes its turn again instead of failing the
// rollout; after maxAborts lapses in one attempt it counts as failed, and
// a one-at-a-time rollout halts.
func TestLapsedLeaseRetriesThenFails(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	lapses := map[string]int{}
	for round := 0; round < 3*(maxAborts+1); round++ {
		var h string
		for deadline := w.now + time.Minute; h == "" && w.now < deadline; w.advance(100 * time.Millisecond) {
			for name := range w.running {
				h = name
			}
		}
		if h == "" {
			t.Fatalf("round %d: nobody started; lapses %v", round, lapses)
		}
		// Cut it off until its lease lapses: the Node aborts, the net
		// reports the end, and it is waiting again, or failed.
		w.cut[h] = true
		for deadline := w.now + time.Minute; w.nodes[h].Row().Phase == PhaseRunning && w.now < deadline; {
			w.advance(100 * time.Millisecond)
		}
		delete(w.cut, h)
		lapses[h]++
		r := w.nodes[h].Row()
		if lapses[h] <= maxAborts {
			if r.Phase != PhaseWaiting || !strings.Contains(r.Result, "lease lost") {
				t.Fatalf("lapse %d of %s: row %+v, want waiting to go again", lapses[h], h, r)
			}
			if w.nodes[h].halted() {
				t.Fatalf("lapse %d of %s halted the rollout", lapses[h], h)
			}
			continue
		}
		if r.Phase != PhaseFailed {
			t.Fatalf("after %d lapses %s is %s, want failed", lapses[h], h, r.Phase)
		}
		return
	}
	t.Fatalf("no host failed after %d lapses: %v", maxAborts+1, lapses)
}

// TestLongResultStaysDecodable: a failure whose message is longer than a
// wire string may be (the output of a failed script, a long path) is cut
// to MaxString on a UTF-8 boundary, so that the host's row still decodes
// everywhere else and its failure shows on every host.
func TestLongResultStaysDecodable(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	var h string
	var d Decision
	for h, d = range w.running {
	}
	long := "ValidateService failed: " + strings.Repeat("é", 300)
	delete(w.running, h)
	w.nodes[h].Finished(w.now, d.Deployment, false, long)
	seen := false
	for _, m := range w.nodes[h].LocalState() {
		if m.Kind != KindRow || m.Row.Host != h {
			continue
		}
		seen = true
		got, err := Decode(Encode(&m))
		if err != nil {
			t.Fatalf("the failed host's row does not decode: %v", err)
		}
		if r := got.Row.Result; len(r) > MaxString || !utf8.ValidString(r) || !strings.HasPrefix(r, "ValidateService failed: é") || !strings.HasSuffix(r, "…") {
			t.Errorf("result on the wire: %d bytes %q", len(r), r)
		}
	}
	if !seen {
		t.Fatal("no row of the failed host in its state")
	}
}

// TestStatusNamesEveryRunsDeployment: every host's status names each
// running host's deployment with the ID that host's decision carries,
// forward and rollback, and says since when it runs its event.
func TestStatusNamesEveryRunsDeployment(t *testing.T) {
	w := newNet(t, 4, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	checked, rollbacks := 0, 0
	check := func() {
		t.Helper()
		for h, d := range w.running {
			if d.Rollback {
				rollbacks++
			}
			for _, o := range w.names {
				for _, hs := range w.nodes[o].Status() {
					if hs.Host != h {
						continue
					}
					checked++
					if hs.Deployment != d.Deployment {
						t.Errorf("%s's status of %s (rollback %v, row %+v): deployment %q, want %q", o, h, d.Rollback, hs.Row, hs.Deployment, d.Deployment)
					}
					if hs.Since > w.now {
						t.Errorf("%s's status of %s: since %v, after now %v", o, h, hs.Since, w.now)
					}
				}
			}
		}
	}
	w.advance(time.Second)
	check()
	for h, d := range w.running {
		at := w.now
		w.nodes[h].Progress(at, d.Deployment, "AfterInstall")
		w.flush()
		w.advance(500 * time.Millisecond)
		for _, o := range w.names {
			for _, hs := range w.nodes[o].Status() {
				if hs.Host == h && (hs.Event != "AfterInstall" || hs.Since != at) {
					t.Errorf("%s's status of %s: %s since %v, want AfterInstall since %v", o, h, hs.Event, hs.Since, at)
				}
			}
		}
		w.finish(h, true)
	}
	w.advance(time.Second)
	check()
	for h := range w.running {
		w.finish(h, false) // halts: both hosts on r2 roll back
	}
	for i := 0; i < 2; i++ {
		w.advance(time.Second)
		check()
		for h := range w.running {
			w.finish(h, true)
		}
	}
	if checked == 0 || rollbacks == 0 {
		t.Fatalf("checked %d rows, %d rollbacks: the scenario did not run", checked, rollbacks)
	}
}

// TestRollbackKeepsTheFailure: after the rollback, the row of the host
// whose run failed still says why (every host's status shows what halted
// the rollout), and the row of a host that rolled back because of it says
// so, not "succeeded".
func TestRollbackKeepsTheFailure(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(time.Second)
	var first string
	for h, d := range w.running {
		first = h
		delete(w.running, h)
		w.nodes[h].Finished(w.now, d.Deployment, true, "succeeded")
	}
	w.flush()
	w.advance(time.Second)
	var failed string
	for h, d := range w.running {
		failed = h
		delete(w.running, h)
		w.nodes[h].Finished(w.now, d.Deployment, false, "ValidateService failed: exit 1\nservice check failed")
	}
	w.flush()
	if failed == "" || first == "" {
		t.Fatal("the rollout did not start its first two hosts")
	}
	for i := 0; i < 4 && len(w.running) > 0 || i == 0; i++ {
		w.advance(time.Second)
		for h, d := range w.running {
			if !d.Rollback {
				t.Fatalf("%s runs %+v, want a rollback", h, d)
			}
			for _, hs := range w.nodes[w.names[0]].Status() {
				if hs.Host == h && hs.Phase == PhaseRollingBack && hs.OwnFailure() != (h == failed) {
					t.Errorf("%s rolling back: result %q, own failure %v", h, hs.Result, hs.OwnFailure())
				}
			}
			w.finish(h, true)
		}
	}
	for _, o := range w.names {
		for _, hs := range w.nodes[o].Status() {
			switch hs.Host {
			case failed:
				if !hs.OwnFailure() || !strings.HasPrefix(hs.Result, "ValidateService failed") {
					t.Errorf("%s's view of the failed host %s: phase %s result %q own failure %v", o, failed, hs.Phase, hs.Result, hs.OwnFailure())
				}
			case first:
				if hs.Phase != PhaseRolledBack || hs.OwnFailure() || hs.Result != ResultRolledBack {
					t.Errorf("%s's view of %s, rolled back for another's failure: phase %s result %q", o, first, hs.Phase, hs.Result)
				}
			}
		}
	}
}
