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

// start brings up new hosts (zero persisted state) at the current time.
// Each joins through the first host up that it can reach: memberlist's
// join is a push-pull with the seed.
func (w *net) start(hs ...string) {
	for _, h := range hs {
		w.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: w.timing, BootstrapExpect: w.expect, Nonce: w.nonce + h}, Persisted{}, w.now)
		for _, seed := range w.names {
			if seed != h && w.nodes[seed] != nil && w.reachable(h, seed) {
				w.pushPull(h, seed)
				break
			}
		}
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
// The same with bootstrap_expect 5.
func TestGrayCutFreshGroupGetsOneRoster(t *testing.T) {
	for _, expect := range []int{0, 5} {
		t.Run(fmt.Sprintf("expect=%d", expect), func(t *testing.T) { testGrayCutFreshGroup(t, expect) })
	}
}

func testGrayCutFreshGroup(t *testing.T, expect int) {
	w := newFreshNet(t, 5, expect, bootTiming)
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

// TestBootstrapExpectWaitsForN: five hosts with bootstrap_expect 5 start at
// different times. No roster forms before all five are seen (without the
// quorum rule the first host would form one alone after BootstrapDelay);
// then one roster of all five forms, on every host, at epoch 1.
func TestBootstrapExpectWaitsForN(t *testing.T) {
	w := newFreshNet(t, 5, 5, bootTiming)
	for _, h := range []string{"h3", "h1", "h4", "h0"} {
		w.start(h)
		w.run(t, 1500*time.Millisecond)
		for _, o := range w.names {
			if n := w.nodes[o]; n != nil && n.Roster().Epoch != 0 {
				t.Fatalf("%s formed a roster with 4 of bootstrap_expect 5 hosts up, before the partial wait: %v", o, w.rosters())
			}
		}
	}
	if why := w.nodes["h0"].RosterState(w.now).Why; !strings.Contains(why, "waiting for bootstrap_expect 5 hosts, 4 seen") {
		t.Errorf("h0 says %q", why)
	}
	w.start("h2")
	w.run(t, 3*time.Second)
	r, ok := w.oneRoster(w.names...)
	if !ok || r.Epoch != 1 || len(r.Members) != 5 {
		t.Fatalf("rosters %v, want one roster of all five at epoch 1", w.rosters())
	}
	for _, h := range w.names {
		if rs := w.nodes[h].RosterState(w.now); rs.Why != "" || !rs.Voter || rs.Members != 5 {
			t.Errorf("%s: %+v", h, rs)
		}
	}
}

// TestBootstrapExpectMajorityWithoutTheRest: one of five hosts never comes
// up. After BootstrapPartial the four form the first roster; the fifth,
// started later, adopts it and is added by an ordinary roster change.
func TestBootstrapExpectMajorityWithoutTheRest(t *testing.T) {
	w := newFreshNet(t, 5, 5, bootTiming)
	w.start("h0", "h1", "h2", "h3")
	w.run(t, bootTiming.BootstrapPartial/2)
	if r := w.nodes["h0"].Roster(); r.Epoch != 0 {
		t.Fatalf("roster %+v formed before the partial wait", r)
	}
	w.run(t, bootTiming.BootstrapPartial)
	r, ok := w.oneRoster("h0", "h1", "h2", "h3")
	if !ok || r.Epoch != 1 || len(r.Members) != 4 {
		t.Fatalf("rosters %v, want one roster of the four at epoch 1", w.rosters())
	}
	w.start("h4")
	w.run(t, 10*time.Second)
	r, ok = w.oneRoster(w.names...)
	if !ok || len(r.Members) != 5 || r.Epoch != 2 {
		t.Fatalf("rosters %v, want epoch 2 with all five", w.rosters())
	}
}

// TestBootstrapExpectCutFromTheStart: bootstrap_expect 5 and the group is
// partitioned {h0,h1} | {h2,h3,h4} from the start. Only the side holding a
// majority of 5 forms a roster; the minority never does, however long it
// waits (without the quorum rule h0 forms {h0,h1}: two epoch-1 rosters).
// After the heal there is one roster, with all five.
func TestBootstrapExpectCutFromTheStart(t *testing.T) {
	for _, mode := range []splitMode{splitAll, splitDatagrams} {
		t.Run(fmt.Sprintf("split=%d", mode), func(t *testing.T) {
			w := newFreshNet(t, 5, 5, bootTiming)
			w.pullEvery = 500 * time.Millisecond
			minority, majority := w.names[:2], w.names[2:]
			w.splitOff(mode, minority...)
			w.start("h2")
			w.run(t, 700*time.Millisecond)
			w.start("h0", "h4")
			w.run(t, 1300*time.Millisecond)
			w.start("h1", "h3")
			w.run(t, 3*bootTiming.BootstrapPartial)
			r, ok := w.oneRoster(majority...)
			switch {
			case mode == splitDatagrams:
				// Streams pass: every host sees all five, Paxos goes over
				// TCP, one roster of all five forms on both sides.
				if r, ok := w.oneRoster(w.names...); !ok || len(r.Members) != 5 {
					t.Fatalf("datagram cut: rosters %v, want one of all five", w.rosters())
				}
			case !ok || len(r.Members) != 3:
				t.Fatalf("majority side: rosters %v, want one roster of h2,h3,h4", w.rosters())
			default:
				for _, h := range minority {
					if e := w.nodes[h].Roster().Epoch; e != 0 {
						t.Fatalf("minority host %s formed a roster: %v", h, w.rosters())
					}
					if why := w.nodes[h].RosterState(w.now).Why; !strings.Contains(why, "waiting for bootstrap_expect 5 hosts, 2 seen") {
						t.Errorf("%s says %q", h, why)
					}
				}
			}
			w.splitOff(splitNone)
			w.run(t, 20*time.Second)
			if r, ok := w.oneRoster(w.names...); !ok || len(r.Members) != 5 {
				t.Fatalf("after the heal: rosters %v, want one roster of all five", w.rosters())
			}
			var conflicts uint64
			for _, h := range w.names {
				conflicts += w.nodes[h].Stats().RosterConflicts
			}
			if conflicts != 0 {
				t.Errorf("%d roster conflicts counted", conflicts)
			}
		})
	}
}

// TestBootstrapExpectNoMajorityNoRoster: a 2/2/1 split of five hosts with
// bootstrap_expect 5: no side holds a majority, none forms a roster; healed,
// they form one.
func TestBootstrapExpectNoMajorityNoRoster(t *testing.T) {
	w := newFreshNet(t, 5, 5, bootTiming)
	w.start(w.names...)
	w.cut["h4"] = true
	w.splitOff(splitAll, "h0", "h1")
	w.run(t, 3*bootTiming.BootstrapPartial)
	for _, h := range w.names {
		if e := w.nodes[h].Roster().Epoch; e != 0 {
			t.Fatalf("%s formed a roster without a majority of 5: %v", h, w.rosters())
		}
	}
	w.cut["h4"] = false
	w.splitOff(splitNone)
	w.run(t, 5*time.Second)
	if r, ok := w.oneRoster(w.names...); !ok || len(r.Members) != 5 || r.Epoch != 1 {
		t.Fatalf("after the heal: rosters %v, want one roster of all five at epoch 1", w.rosters())
	}
}

// TestBootstrapExpectQuorumAgainstStaleViews: h0, h1, h2 start together and
// see each other; then {h0,h1} are cut off while memberlist still calls h2
// alive on their side (a gray failure), and h3, h4 start on h2's side. The
// minority sees three hosts without a roster, a majority of 5, and after
// the partial wait proposes {h0,h1,h2}; only the quorum of 3 acceptors stops
// it. The majority side forms its roster. Without the quorum rule the
// minority forms a second epoch-1 roster.
func TestBootstrapExpectQuorumAgainstStaleViews(t *testing.T) {
	w := newFreshNet(t, 5, 5, bootTiming)
	w.start("h0", "h1", "h2")
	w.run(t, 500*time.Millisecond)
	w.splitOff(splitAll, "h0", "h1")
	w.start("h3", "h4")
	w.run(t, 3*bootTiming.BootstrapPartial)
	if r, ok := w.oneRoster("h2", "h3", "h4"); !ok || r.Epoch != 1 {
		for _, h := range w.names {
			t.Logf("%s: %+v", h, w.nodes[h].RosterState(w.now))
		}
		t.Fatalf("majority side: rosters %v", w.rosters())
	}
	for _, h := range []string{"h0", "h1"} {
		if e := w.nodes[h].Roster().Epoch; e != 0 {
			t.Fatalf("minority host %s formed a roster: %v", h, w.rosters())
		}
		if why := w.nodes[h].RosterState(w.now).Why; !strings.Contains(why, "of 3 promises") {
			t.Errorf("%s says %q", h, why)
		}
	}
	w.splitOff(splitNone)
	w.run(t, 20*time.Second)
	if r, ok := w.oneRoster(w.names...); !ok || len(r.Members) != 5 {
		t.Fatalf("after the heal: rosters %v", w.rosters())
	}
}

// paxosBench is five fresh nodes with bootstrap_expect 5 wired by hand, to
// stage duplicated, late and reordered Paxos messages of the first roster.
type paxosBench struct {
	t     *testing.T
	now   time.Duration
	nodes map[string]*Node
	st    map[string]Persisted
	box   map[string][]Envelope // sent, not yet delivered, per sender
}

func newPaxosBench(t *testing.T) *paxosBench {
	b := &paxosBench{t: t, nodes: map[string]*Node{}, st: map[string]Persisted{}, box: map[string][]Envelope{}}
	names := []string{"h0", "h1", "h2", "h3", "h4"}
	for _, h := range names {
		b.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: bootTiming, BootstrapExpect: 5}, Persisted{}, 0)
	}
	for _, h := range names { // everyone sees everyone's row
		for _, o := range names {
			if o != h {
				b.nodes[o].Receive(0, Message{Kind: KindRow, App: "app", From: h, Row: b.nodes[h].Row()})
			}
		}
	}
	for _, h := range names {
		b.collect(h)
		b.box[h] = nil
	}
	b.now = bootTiming.BootstrapDelay + bootTiming.Renew
	return b
}

func (b *paxosBench) collect(h string) {
	o := b.nodes[h].TakeOutput()
	if o.Persist != nil {
		b.st[h] = *o.Persist
	}
	b.box[h] = append(b.box[h], o.Send...)
}

// deliver hands the messages of kind k that from sent to the hosts in to
// (every copy, keeping them for a later duplicate when keep) and collects
// the receivers' output.
func (b *paxosBench) deliver(from string, k Kind, keep bool, to ...string) int {
	n := 0
	rest := b.box[from][:0:0]
	for _, e := range b.box[from] {
		if e.Msg.Kind == k && slices.Contains(to, e.To) {
			b.nodes[e.To].Receive(b.now, e.Msg)
			b.collect(e.To)
			n++
			if !keep {
				continue
			}
		}
		rest = append(rest, e)
	}
	b.box[from] = rest
	return n
}

func (b *paxosBench) sent(from string, k Kind) []Message {
	var out []Message
	for _, e := range b.box[from] {
		if e.Msg.Kind == k {
			out = append(out, e.Msg)
		}
	}
	return out
}

// TestBootstrapPaxosDuplicatesAndLateMessages: a duplicated promise or
// acceptance counts once; an acceptance of another ballot does not count;
// a value accepted by a quorum survives an acceptor's restart and a rival
// proposer with another value; a late prepare or accept reaching a host
// that adopted the roster is refused, and its proposer fetches the roster.
func TestBootstrapPaxosDuplicatesAndLateMessages(t *testing.T) {
	b := newPaxosBench(t)
	h0 := b.nodes["h0"]
	h0.Tick(b.now) // first by name: proposes all five
	b.collect("h0")
	if n := len(b.sent("h0", KindPrepare)); n != 4 {
		t.Fatalf("h0 sent %d prepares, want 4", n)
	}
	b.deliver("h0", KindPrepare, true, "h1")
	b.deliver("h0", KindPrepare, true, "h1") // duplicate
	if n := b.deliver("h1", KindPromise, false, "h0"); n != 2 {
		t.Fatalf("h1 answered %d promises, want 2 (one per copy)", n)
	}
	if len(b.sent("h0", KindAccept)) != 0 {
		t.Fatal("h0 went to phase 2 with h0 and h1 (twice): a duplicate promise counted")
	}
	b.deliver("h0", KindPrepare, false, "h2")
	b.deliver("h2", KindPromise, false, "h0")
	accepts := b.sent("h0", KindAccept)
	if len(accepts) != 4 {
		t.Fatalf("h0 sent %d accepts after three promises, want 4", len(accepts))
	}
	chosen := accepts[0].Members
	b.deliver("h0", KindAccept, false, "h1")
	for range 3 {
		for _, e := range b.box["h1"] {
			if e.Msg.Kind == KindAccepted {
				h0.Receive(b.now, e.Msg) // delivered three times
			}
		}
	}
	old := Message{Kind: KindAccepted, App: "app", From: "h3", Epoch: 0, OK: true, Ballot: Ballot{Round: accepts[0].Ballot.Round + 7, Node: "h3"}}
	h0.Receive(b.now, old) // an acceptance of another ballot
	b.collect("h0")
	if e := h0.Roster().Epoch; e != 0 {
		t.Fatalf("h0 adopted epoch %d with acceptances of h0 and h1 only", e)
	}
	// h1 restarts from what it persisted: it keeps its acceptance (A2).
	b.nodes["h1"] = NewNode(Config{Host: "h1", App: "app", Group: "g", Timing: bootTiming, BootstrapExpect: 5}, b.st["h1"], b.now)
	for _, h := range []string{"h0", "h2", "h3", "h4"} {
		b.nodes["h1"].Receive(b.now, Message{Kind: KindRow, App: "app", From: h, Row: b.nodes[h].Row()})
	}
	b.collect("h1")
	b.box["h1"] = nil
	b.deliver("h0", KindAccept, false, "h2") // the third acceptance: chosen
	b.deliver("h2", KindAccepted, false, "h0")
	b.collect("h0")
	if r := h0.Roster(); r.Epoch != 1 || !slices.Equal(r.Members, chosen) {
		t.Fatalf("h0 roster %+v, want epoch 1 %v", r, chosen)
	}
	// A rival proposer that has not heard of it proposes another value; the
	// promise of h1 (restarted) carries the chosen value, which it must
	// propose instead.
	h4 := b.nodes["h4"]
	h4.propose(b.now, []string{"h2", "h3", "h4"})
	b.collect("h4")
	b.deliver("h4", KindPrepare, false, "h1", "h3")
	b.deliver("h1", KindPromise, false, "h4")
	b.deliver("h3", KindPromise, false, "h4")
	acc := b.sent("h4", KindAccept)
	if len(acc) == 0 || !slices.Equal(acc[0].Members, chosen) {
		t.Fatalf("rival proposer's accepts %+v, want the chosen value %v", acc, chosen)
	}
	// Its late prepare and accept reach h0, which has the roster: refused,
	// and the rival fetches the roster from the refusal.
	b.deliver("h4", KindAccept, false, "h0")
	if r := h0.Roster(); r.Epoch != 1 || !slices.Equal(r.Members, chosen) || !h0.roster.accepted.IsZero() {
		t.Fatalf("h0 after a late accept: roster %+v, accepted %+v", r, h0.roster.accepted)
	}
	late := Message{Kind: KindPrepare, App: "app", From: "h4", Epoch: 0, Expect: 5, Ballot: Ballot{Round: 99, Node: "h4"}}
	h4.roster.prop = &proposal{ballot: late.Ballot, promises: map[string]bool{}, accepted: map[string]bool{}, phase: 1, deadline: b.now + time.Second}
	h0.Receive(b.now, late)
	b.collect("h0")
	b.deliver("h0", KindPromise, false, "h4")
	if p := b.sent("h4", KindRosterReq); len(p) != 1 {
		t.Fatalf("h4 sent %d roster requests after a refusal from epoch 1, want 1", len(p))
	}
	b.deliver("h4", KindRosterReq, false, "h0")
	b.deliver("h0", KindRosterResp, false, "h4")
	if r := h4.Roster(); r.Epoch != 1 || !slices.Equal(r.Members, chosen) {
		t.Fatalf("h4 roster %+v, want epoch 1 %v", r, chosen)
	}
}

// TestRosterStateSaysWhy: a host without a roster says why, in each case.
func TestRosterStateSaysWhy(t *testing.T) {
	why := func(w *net, h string) string { return w.nodes[h].RosterState(w.now).Why }
	expectIn := func(t *testing.T, got, want string) {
		t.Helper()
		if !strings.Contains(got, want) {
			t.Errorf("says %q, want %q", got, want)
		}
	}
	t.Run("A4", func(t *testing.T) {
		w := newFreshNet(t, 3, 0, bootTiming)
		w.start(w.names...)
		expectIn(t, why(w, "h1"), "no roster: bootstrap delay")
		w.nodes["h0"].PeerChanged(w.now, "h9", ReachAlive) // memberlist shows it; its row has not come
		w.advance(bootTiming.BootstrapDelay)
		expectIn(t, why(w, "h0"), "no roster: waiting for row of h9")
		expectIn(t, why(w, "h2"), "no roster: bootstrap waits for h0 (first by name)")
		w.nodes["h0"].PeerChanged(w.now, "h9", ReachDead)
		w.mute["h0"] = true // its answers to roster requests are lost
		w.advance(2 * bootTiming.Renew)
		if e := w.nodes["h0"].Roster().Epoch; e != 1 {
			t.Fatalf("h0 did not form the roster: epoch %d", e)
		}
		expectIn(t, why(w, "h1"), "no roster: fetching the roster of epoch 1 from h0")
		if rs := w.nodes["h0"].RosterState(w.now); rs.Why != "" || !rs.Voter || rs.Members != 3 {
			t.Errorf("h0 with a roster: %+v", rs)
		}
	})
	t.Run("expect", func(t *testing.T) {
		w := newFreshNet(t, 5, 5, bootTiming)
		w.start("h0", "h1")
		w.advance(bootTiming.BootstrapDelay)
		expectIn(t, why(w, "h0"), "no roster: waiting for bootstrap_expect 5 hosts, 2 seen")
		w.start("h2")
		w.advance(bootTiming.Renew)
		expectIn(t, why(w, "h0"), "no roster: waiting for bootstrap_expect 5 hosts, 3 seen (a majority forms it without the others in ")
		w.nodes["h0"].PeerChanged(w.now, "h4", ReachAlive)
		w.advance(bootTiming.Renew)
		expectIn(t, why(w, "h0"), "no roster: waiting for bootstrap_expect 5 hosts, 3 seen; no row yet from h4")
	})
	t.Run("more than expected", func(t *testing.T) {
		w := newFreshNet(t, 6, 5, bootTiming)
		w.start(w.names...)
		w.run(t, 3*bootTiming.BootstrapPartial)
		for _, h := range w.names {
			if e := w.nodes[h].Roster().Epoch; e != 0 {
				t.Fatalf("%s formed a roster with 6 hosts and bootstrap_expect 5: %v", h, w.rosters())
			}
		}
		expectIn(t, why(w, "h3"), "no roster: 6 hosts without a roster, more than bootstrap_expect 5")
	})
}

// TestBootstrapExpectNeverUsesBootstrapWins: told of another, larger
// epoch-1 roster, a host with bootstrap_expect keeps its own (two first
// rosters cannot both have been chosen; adopting one would hide the
// breach) and counts the conflict; a host without it adopts the larger one
// (A4's merge rule).
func TestBootstrapExpectNeverUsesBootstrapWins(t *testing.T) {
	for _, expect := range []int{0, 3} {
		t.Run(fmt.Sprintf("expect=%d", expect), func(t *testing.T) {
			mine := Roster{Epoch: 1, Members: []string{"a", "b", "c"}}
			n := NewNode(Config{Host: "a", App: "app", Group: "g", Timing: bootTiming, BootstrapExpect: expect}, Persisted{Roster: mine}, 0)
			other := []string{"a", "b", "c", "d"}
			n.Receive(time.Second, Message{Kind: KindRosterResp, App: "app", From: "d", Epoch: 1, Members: other})
			got := n.Roster()
			if expect == 0 {
				if !slices.Equal(got.Members, other) {
					t.Errorf("without bootstrap_expect: roster %v, want the larger %v", got.Members, other)
				}
				return
			}
			if !slices.Equal(got.Members, mine.Members) || n.Stats().RosterConflicts != 1 {
				t.Errorf("roster %v, conflicts %d; want %v kept and 1 conflict", got.Members, n.Stats().RosterConflicts, mine.Members)
			}
		})
	}
}

// TestBootstrapAcceptorRefuses: an acceptor of the first roster refuses a
// prepare with another bootstrap_expect, and any prepare once it sees more
// hosts without a roster than bootstrap_expect (A4' broken: a quorum of
// ⌊N/2⌋+1 no longer meets every other).
func TestBootstrapAcceptorRefuses(t *testing.T) {
	b := newPaxosBench(t)
	h1 := b.nodes["h1"]
	prep := func(expect uint32, round uint64) bool {
		h1.Receive(b.now, Message{Kind: KindPrepare, App: "app", From: "h0", Epoch: 0, Expect: expect, Ballot: Ballot{Round: round, Node: "h0"}})
		o := h1.TakeOutput()
		for _, e := range o.Send {
			if e.Msg.Kind == KindPromise {
				return e.Msg.OK
			}
		}
		t.Fatal("no promise answered")
		return false
	}
	if !prep(5, 1) {
		t.Fatal("a good prepare was refused")
	}
	if prep(3, 2) {
		t.Error("a prepare with bootstrap_expect 3 was promised by a host with 5")
	}
	h1.Receive(b.now, Message{Kind: KindRow, App: "app", From: "h5", Row: Row{Host: "h5", Seq: 1 << 32}})
	if prep(5, 3) {
		t.Error("promised while seeing 6 hosts without a roster, bootstrap_expect 5")
	}
}

// TestDeploymentIDsFollowTheGroupsLineage (issue 11): the hosts of one
// rollout share its deployment ID, and the same group formed anew (every
// state wiped, new nonces) gives the same revision another one, with and
// without bootstrap_expect. The lineage the first roster got survives a
// roster change (a host joins) and reaches a host that fetches the roster.
func TestDeploymentIDsFollowTheGroupsLineage(t *testing.T) {
	for _, expect := range []int{0, 3} {
		t.Run(fmt.Sprintf("expect=%d", expect), func(t *testing.T) {
			form := func(nonce string) (*net, map[string]string) {
				w := newFreshNet(t, 3, expect, bootTiming)
				w.nonce = nonce
				w.start(w.names...)
				w.run(t, 10*time.Second)
				if _, ok := w.oneRoster(w.names...); !ok {
					t.Fatalf("rosters %v, want one", w.rosters())
				}
				w.desire(rev("r1", manifest.AllAtOnce), w.names...) // fresh hosts: slotless
				for h := range w.running {
					w.finish(h, true)
				}
				w.desire(rev("r2", manifest.OneAtATime), w.names...)
				if !w.rollOut(time.Minute, func() bool { return w.installed("r2", w.names...) == 3 }) {
					t.Fatalf("%d of 3 installed r2", w.installed("r2", w.names...))
				}
				return w, w.ids
			}
			w, first := form("a-")
			lin := w.nodes["h0"].Roster().Lineage
			if lin == "" {
				t.Fatal("the first roster has no lineage")
			}
			var id string
			for h, d := range first {
				if id != "" && d != id {
					t.Fatalf("hosts of one rollout got different IDs: %v", first)
				}
				id = d
				if got := w.nodes[h].Roster().Lineage; got != lin {
					t.Errorf("%s has lineage %q, h0 %q", h, got, lin)
				}
			}
			if len(first) != 3 {
				t.Fatalf("slotted IDs %v, want 3 hosts", first)
			}
			_, second := form("b-")
			if second["h0"] == id {
				t.Errorf("the group formed anew reused deployment ID %s", id)
			}

			// A fourth host joins: the roster changes and keeps its lineage;
			// the joiner fetched it.
			w.names = append(w.names, "h3")
			w.start("h3")
			w.run(t, 30*time.Second)
			r, ok := w.oneRoster(w.names...)
			if !ok || len(r.Members) != 4 || r.Lineage != lin {
				t.Fatalf("after a join: rosters %v, lineage %q; want one of four with lineage %q", w.rosters(), r.Lineage, lin)
			}
		})
	}
}
