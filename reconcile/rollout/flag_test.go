package rollout

import (
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// restart recreates host h's Node from what it last persisted, as an agent
// restart does.
func (w *net) restart(h string) {
	w.down[h] = false
	delete(w.running, h)
	w.nodes[h] = NewNode(Config{Host: h, App: "app", Group: "g", Timing: w.timing}, w.st[h], w.now)
}

// TestPauseIsPersistedBeforeItIsSent: the output that broadcasts a flag, set
// here or relayed, carries a Persist holding it (PROTOCOL.md A2).
func TestPauseIsPersistedBeforeItIsSent(t *testing.T) {
	w := newNet(t, 2, "r1")
	w.nodes["h0"].SetPaused(w.now, true)
	o := w.nodes["h0"].TakeOutput()
	want := Flag{Paused: true, Clock: 1, Node: "h0"}
	if o.Persist == nil || o.Persist.Flag != want {
		t.Fatalf("SetPaused: persist %+v, want the flag %+v", o.Persist, want)
	}
	var sent *Message
	for i := range o.Broadcast {
		if o.Broadcast[i].Kind == KindFlag {
			sent = &o.Broadcast[i]
		}
	}
	if sent == nil || sent.Flag != want {
		t.Fatalf("SetPaused broadcast %+v, want the flag %+v", o.Broadcast, want)
	}
	w.nodes["h1"].Receive(w.now, *sent)
	o = w.nodes["h1"].TakeOutput()
	if o.Persist == nil || o.Persist.Flag != want {
		t.Errorf("received flag: persist %+v, want the flag %+v", o.Persist, want)
	}
	if len(o.Broadcast) == 0 || o.Broadcast[0].Kind != KindFlag {
		t.Errorf("received flag not relayed: %+v", o.Broadcast)
	}
	// An old flag changes nothing, and nothing needs storing.
	w.nodes["h1"].Receive(w.now, Message{Kind: KindFlag, App: "app", From: "h0", Flag: Flag{Clock: 0, Node: "h0"}})
	if o := w.nodes["h1"].TakeOutput(); o.Persist != nil || len(o.Broadcast) != 0 || !w.nodes["h1"].Paused() {
		t.Errorf("an older flag was taken: persist %+v broadcast %+v paused %v", o.Persist, o.Broadcast, w.nodes["h1"].Paused())
	}
}

// TestPauseSurvivesFleetRestart: the whole fleet restarts while paused (a
// package upgrade everywhere, a power cut): every host comes back paused, a
// new revision starts nowhere, and a resume after the restart rolls it out.
func TestPauseSurvivesFleetRestart(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.nodes["h1"].SetPaused(w.now, true)
	w.flush()
	for _, h := range w.names {
		w.down[h] = true
	}
	w.advance(time.Second)
	for _, h := range w.names {
		w.restart(h)
		if f := w.nodes[h].Flag(); !f.Paused || f.Node != "h1" || f.Clock != 1 {
			t.Errorf("%s after restart: flag %+v, want paused by h1 at clock 1", h, f)
		}
	}
	w.flush()
	w.setDesired(desired(manifest.OneAtATime))
	w.advance(3 * w.timing.Lease) // past every voter's quarantine
	if len(w.starts) != 0 {
		t.Fatalf("started while paused, after a restart: %v", w.starts)
	}
	w.nodes["h2"].SetPaused(w.now, false)
	w.flush()
	w.advance(time.Second)
	if len(w.running) != 1 {
		t.Errorf("after the resume: %d running, want 1", len(w.running))
	}
	if f := w.nodes["h0"].Flag(); f.Paused || f.Clock != 2 || f.Node != "h2" {
		t.Errorf("h0's flag %+v, want resumed by h2 at clock 2", f)
	}
}

// TestRestartedHostTakesTheResumeItMissed: h2 stored the pause and was down
// when h1 resumed the fleet. It comes back paused (its stored flag), and the
// first push-pull brings the newer resume: the peers' flag wins, so h2 does
// not hold the rollout up, nor pause the others again.
func TestRestartedHostTakesTheResumeItMissed(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.nodes["h0"].SetPaused(w.now, true)
	w.flush()
	w.down["h2"] = true
	w.nodes["h1"].SetPaused(w.now, false)
	w.flush()
	w.restart("h2")
	if !w.nodes["h2"].Paused() {
		t.Fatalf("h2 after restart: flag %+v, want its stored pause", w.nodes["h2"].Flag())
	}
	w.flush()
	w.pushPull("h2", "h0")
	for _, h := range w.names {
		if f := w.nodes[h].Flag(); f.Paused || f.Clock != 2 || f.Node != "h1" {
			t.Errorf("%s: flag %+v, want resumed by h1 at clock 2", h, f)
		}
	}
	w.flush()
	if f := w.st["h2"].Flag; f.Paused || f.Clock != 2 {
		t.Errorf("h2 stored %+v, want the resume it took", f)
	}
	w.setDesired(desired(manifest.AllAtOnce))
	w.advance(3 * w.timing.Lease)
	if len(w.running) != 3 {
		t.Errorf("all at once after the resume: %d running, want 3", len(w.running))
	}
}

// TestRestartedLowerClockLoses: a host restarted with a pause of a lower
// clock than the peers' resume takes theirs; peers never take its older one.
func TestRestartedLowerClockLoses(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.st["h0"] = Persisted{Roster: w.nodes["h0"].Roster(), Row: Row{Installed: "r1"}, Flag: Flag{Paused: true, Clock: 3, Node: "h9"}}
	for _, h := range []string{"h1", "h2"} {
		st := w.st[h]
		st.Flag = Flag{Paused: false, Clock: 5, Node: "h1"}
		w.st[h] = st
	}
	for _, h := range w.names {
		w.restart(h)
	}
	w.flush()
	w.pushPull("h0", "h1")
	w.pushPull("h2", "h0")
	for _, h := range w.names {
		if f := w.nodes[h].Flag(); f != (Flag{Paused: false, Clock: 5, Node: "h1"}) {
			t.Errorf("%s: flag %+v, want the resume of clock 5", h, f)
		}
	}
	// A tie on the clock between two resumes goes to the greater node
	// name, on every host (a pause wins a tie with a resume:
	// TestConcurrentPauseWinsOverResume).
	w.nodes["h2"].Receive(w.now, Message{Kind: KindFlag, App: "app", From: "h0", Flag: Flag{Paused: false, Clock: 5, Node: "h0"}})
	if f := w.nodes["h2"].Flag(); f.Node != "h1" {
		t.Errorf("h2 took a resume of the same clock from a lesser node name: %+v", f)
	}
}

// TestOwnFlagComesBackFromPeers: a host that lost its state (an older
// drover's state file has no flag; a wiped state directory) gets back the
// pause it set itself: a flag travels with its writer as sender, and a Node
// used to drop every message "from itself".
func TestOwnFlagComesBackFromPeers(t *testing.T) {
	w := newNet(t, 3, "r1")
	w.nodes["h0"].SetPaused(w.now, true)
	w.flush()
	st := w.st["h0"]
	st.Flag = Flag{}
	w.st["h0"] = st
	w.restart("h0")
	w.flush()
	if w.nodes["h0"].Paused() {
		t.Fatal("a state without a flag restored a pause")
	}
	w.pushPull("h0", "h1")
	if f := w.nodes["h0"].Flag(); !f.Paused || f.Node != "h0" || f.Clock != 1 {
		t.Errorf("h0's flag %+v, want its own pause back from h1", f)
	}
	// Its next change continues the clock, so that the others take it.
	w.nodes["h0"].SetPaused(w.now, false)
	w.flush()
	if f := w.nodes["h2"].Flag(); f.Paused || f.Clock != 2 {
		t.Errorf("h2's flag %+v after h0's resume, want resumed at clock 2", f)
	}
}

// TestPauseDuringClaimStartsNothing: the pause arrives while this host's
// claim is in flight; the grants that come after it start nothing, and the
// slot is released at once. After the resume the host claims again.
func TestPauseDuringClaimStartsNothing(t *testing.T) {
	roster := Roster{Epoch: 1, Members: []string{"h0", "h1", "h2"}}
	now := time.Hour
	n := NewNode(Config{Host: "h0", App: "app", Group: "g", Timing: testTiming}, Persisted{Roster: roster, Row: Row{Installed: "r1"}}, now)
	n.SetDesired(now, desired(manifest.OneAtATime))
	claims := func(o Output) []Message {
		var out []Message
		for _, e := range o.Send {
			if e.Msg.Kind == KindClaim {
				out = append(out, e.Msg)
			}
		}
		return out
	}
	var claim Message
	for i := 0; i < 100 && claim.Kind == 0; i++ {
		if cs := claims(n.TakeOutput()); len(cs) > 0 {
			claim = cs[0]
		}
		now += 10 * time.Millisecond
		n.Tick(now)
	}
	if claim.Kind == 0 {
		t.Fatal("h0 never claimed")
	}
	grant := func(from string, c Message) {
		n.Receive(now, Message{Kind: KindGrant, App: "app", From: from, Epoch: c.Epoch, Slot: c.Slot, Claim: c.Claim, Round: c.Round, OK: true})
	}
	n.Receive(now, Message{Kind: KindFlag, App: "app", From: "h2", Flag: Flag{Paused: true, Clock: 1, Node: "h2"}})
	grant("h1", claim)
	grant("h2", claim)
	o := n.TakeOutput()
	for _, d := range o.Decisions {
		if d.Kind == DecideStart {
			t.Fatalf("started %s under a pause that came before the grants", d.Deployment)
		}
	}
	released := 0
	for _, e := range o.Send {
		if e.Msg.Kind == KindRelease && e.Msg.Claim == claim.Claim {
			released++
		}
	}
	if r := n.Row(); released == 0 || r.Claim != 0 || r.Released < claim.Claim {
		t.Errorf("the claim was not given back: %d releases, row claim %d released %d", released, r.Claim, r.Released)
	}
	n.SetPaused(now, false)
	started := false
	for i := 0; i < 500 && !started; i++ {
		for _, e := range n.TakeOutput().Send {
			if e.Msg.Kind == KindClaim {
				grant(e.To, e.Msg)
			}
		}
		for _, d := range n.TakeOutput().Decisions {
			started = started || d.Kind == DecideStart
		}
		now += 10 * time.Millisecond
		n.Tick(now)
	}
	if !started {
		t.Error("no start after the resume")
	}
}

// TestConcurrentPauseWinsOverResume: a resume at h0 and a pause at h1 made
// before either heard of the other (the same clock) end with every host
// paused, whichever host's name is greater: the safe way.
func TestConcurrentPauseWinsOverResume(t *testing.T) {
	for _, order := range [][2]string{{"h0", "h1"}, {"h1", "h0"}} {
		resumer, pauser := order[0], order[1]
		w := newNet(t, 3, "r1")
		w.nodes["h2"].SetPaused(w.now, true)
		w.flush()
		w.cut[pauser] = true // it misses the resume
		w.nodes[resumer].SetPaused(w.now, false)
		w.flush()
		w.nodes[pauser].SetPaused(w.now, true)
		w.cut[pauser] = false
		w.flush()
		for _, h := range w.names {
			w.pushPull(h, pauser)
		}
		w.flush()
		for _, h := range w.names {
			if !w.nodes[h].Paused() {
				t.Errorf("resume at %s, concurrent pause at %s: %s is not paused (flag %+v)", resumer, pauser, h, w.nodes[h].Flag())
			}
		}
	}
}
