package reconcile

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// recorder is the Loop's Transport and Deployer in these tests: it records
// what the Loop hands it. The Loop is deterministic and does no I/O, so
// recording its effects is the test (as rollout's tests read a Node's
// Output); the real transports are tested in gossip (memberlist on
// loopback) and by the simulator, which runs this Loop.
type recorder struct {
	sent, broadcast, fanned []rollout.Message
	decided                 []rollout.Decision
	reach                   map[string]rollout.Reach // absent: unknown to the transport
	dropped                 map[string]int
}

func (r *recorder) Send(env *rollout.Envelope)   { r.sent = append(r.sent, env.Msg) }
func (r *recorder) Broadcast(m *rollout.Message) { r.broadcast = append(r.broadcast, *m) }
func (r *recorder) FanOut(m *rollout.Message)    { r.fanned = append(r.fanned, *m) }
func (r *recorder) Decide(d rollout.Decision)    { r.decided = append(r.decided, d) }
func (r *recorder) Reach(host string) (rollout.Reach, bool) {
	x, ok := r.reach[host]
	if !ok {
		return rollout.ReachDead, false
	}
	return x, true
}

func (r *recorder) reset() { r.sent, r.broadcast, r.fanned, r.decided = nil, nil, nil, nil }

var loopTiming = rollout.TimingFor(rollout.LANParams, 3)

func newTestLoop(t *testing.T, persist func(rollout.Persisted) error) (*Loop, *recorder) {
	t.Helper()
	rec := &recorder{reach: map[string]rollout.Reach{}, dropped: map[string]int{}}
	l := NewLoop(LoopConfig{
		Node:      rollout.Config{Host: "a", App: "x", Group: "g", Timing: loopTiming},
		Transport: rec, Deployer: rec, Persist: persist, Eager: true,
		Dropped: func(reason string) { rec.dropped[reason]++ },
	}, rollout.Persisted{}, time.Hour)
	return l, rec
}

func desiredCall(rev string) Call {
	return Call{Kind: CallDesired, Desired: rollout.Desired{Revision: rev, ManifestID: "m-" + rev}}
}

// TestLoopPersistsBeforeItSends: a step whose state cannot be stored sends
// nothing (counted unsent) and holds its decisions; the store is retried
// with backoff (50 ms, then doubled), not before; once it is stored the
// held decisions go to the deployer, in order, and messages flow again
// (PROTOCOL.md A2).
func TestLoopPersistsBeforeItSends(t *testing.T) {
	attempts, failUntil := 0, 2
	l, rec := newTestLoop(t, func(rollout.Persisted) error {
		attempts++
		if attempts <= failUntil {
			return errors.New("disk full")
		}
		return nil
	})
	t0 := time.Hour
	wake := l.Step(t0, &Input{Calls: []Call{desiredCall("r2")}}) // a fresh host installs without a slot
	if attempts != 1 || len(rec.decided) != 0 || len(rec.broadcast)+len(rec.fanned)+len(rec.sent) != 0 {
		t.Fatalf("after a failed store: %d attempts, %d decisions, %d broadcasts, %d fan-outs, %d sends; want 1 attempt and nothing handed over",
			attempts, len(rec.decided), len(rec.broadcast), len(rec.fanned), len(rec.sent))
	}
	if rec.dropped[DropUnsent] == 0 {
		t.Error("the step's messages were not counted as unsent")
	}
	if wake != t0+persistRetryFirst {
		t.Errorf("next wake %s after t0, want the first retry %s", wake-t0, persistRetryFirst)
	}
	l.Step(t0+persistRetryFirst/2, nil)
	if attempts != 1 {
		t.Errorf("the store was retried before its backoff: %d attempts", attempts)
	}
	wake = l.Step(t0+persistRetryFirst, nil)
	if attempts != 2 || len(rec.decided) != 0 {
		t.Fatalf("second attempt: %d attempts, %d decisions", attempts, len(rec.decided))
	}
	if wake != t0+persistRetryFirst+2*persistRetryFirst {
		t.Errorf("second retry %s after the first, want %s", wake-t0-persistRetryFirst, 2*persistRetryFirst)
	}
	l.Step(wake, nil)
	if attempts != 3 || len(rec.decided) != 1 || rec.decided[0].Kind != rollout.DecideStart || !rec.decided[0].Slotless {
		t.Fatalf("once stored: %d attempts, decisions %+v; want the held slotless start", attempts, rec.decided)
	}
	rec.reset()
	l.Step(wake+time.Millisecond, &Input{Calls: []Call{{Kind: CallProgress, Deployment: l.Node().Row().Revision, Event: "x"}}})
	l.Step(wake+2*time.Millisecond, &Input{Calls: []Call{{Kind: CallPaused, Paused: true}}})
	if len(rec.broadcast) == 0 {
		t.Error("nothing broadcast after the state was stored again")
	}
}

// TestLoopFansOutWhatPeersActOn: an own row goes to every peer at once
// when it changed in a way they act on (here: the phase), not for a
// progress report (the event); a flag goes out at once when set here, not
// when relayed; everything is gossiped too.
func TestLoopFansOutWhatPeersActOn(t *testing.T) {
	l, rec := newTestLoop(t, nil)
	now := time.Hour
	l.Step(now, &Input{Calls: []Call{desiredCall("r2")}})
	if len(rec.decided) != 1 {
		t.Fatalf("decisions %+v, want a slotless start", rec.decided)
	}
	dep := rec.decided[0].Deployment
	own := func(ms []rollout.Message) (n int) {
		for _, m := range ms {
			if m.Kind == rollout.KindRow && m.Row.Host == "a" {
				n++
			}
		}
		return n
	}
	if own(rec.fanned) == 0 {
		t.Error("the first own row was not fanned out")
	}
	steps := []struct {
		name        string
		call        Call
		fanned, bcs int // own rows fanned out, own rows broadcast
	}{
		{"progress report", Call{Kind: CallProgress, Deployment: dep, Event: "BeforeInstall"}, 0, 1},
		{"another event", Call{Kind: CallProgress, Deployment: dep, Event: "AfterInstall"}, 0, 1},
		{"finished: phase changes", Call{Kind: CallFinished, Deployment: dep, OK: true, Result: "succeeded"}, 1, 1},
	}
	for _, st := range steps {
		rec.reset()
		now += time.Millisecond
		l.Step(now, &Input{Calls: []Call{st.call}})
		if got := own(rec.fanned); got != st.fanned {
			t.Errorf("%s: %d own rows fanned out, want %d", st.name, got, st.fanned)
		}
		if got := own(rec.broadcast); got != st.bcs {
			t.Errorf("%s: %d own rows broadcast, want %d", st.name, got, st.bcs)
		}
	}
	rec.reset()
	now += time.Millisecond
	l.Step(now, &Input{Calls: []Call{{Kind: CallPaused, Paused: true}}})
	if !slices.ContainsFunc(rec.fanned, func(m rollout.Message) bool { return m.Kind == rollout.KindFlag }) {
		t.Error("a pause set here was not fanned out")
	}
	rec.reset()
	now += time.Millisecond
	relayed := rollout.Message{Kind: rollout.KindFlag, App: "x", From: "b", Flag: rollout.Flag{Paused: false, Clock: 9, Node: "b"}}
	l.Step(now, &Input{Msgs: []*rollout.Message{&relayed}})
	if !slices.ContainsFunc(rec.broadcast, func(m rollout.Message) bool { return m.Kind == rollout.KindFlag }) {
		t.Error("a newer flag from a peer was not relayed by gossip")
	}
	if slices.ContainsFunc(rec.fanned, func(m rollout.Message) bool { return m.Kind == rollout.KindFlag }) {
		t.Error("a relayed flag was fanned out")
	}
}

// TestLoopAsksMembership: a membership change of a host the Node was never
// told of and the transport does not know in the group is ignored; a peer's
// is told; a row whose author the Node was never told of gets the
// transport's verdict first (a host memberlist does not know is dead).
func TestLoopAsksMembership(t *testing.T) {
	l, rec := newTestLoop(t, nil)
	now := time.Hour
	reachOf := func(host string) (rollout.Reach, bool) {
		for _, s := range l.Node().Status() {
			if s.Host == host {
				return s.Reach, true
			}
		}
		return 0, false
	}
	l.Step(now, &Input{Members: []string{"stranger"}})
	if _, told := l.told["stranger"]; told {
		t.Error("a host unknown to the transport was told to the Node")
	}
	rec.reach["b"] = rollout.ReachAlive
	l.Step(now+1, &Input{Members: []string{"b"}})
	if r, told := l.told["b"]; !told || r != rollout.ReachAlive {
		t.Errorf("peer b: told %v %v, want alive", told, r)
	}
	rec.reach["b"] = rollout.ReachDead
	l.Step(now+2, &Input{Members: []string{"b"}})
	if r := l.told["b"]; r != rollout.ReachDead {
		t.Errorf("peer b after its death: told %v", r)
	}
	// c left long ago: memberlist forgot it, but its row comes by gossip.
	row := rollout.Message{Kind: rollout.KindRow, App: "x", From: "c", Row: rollout.Row{Host: "c", Seq: 1<<32 | 1, Revision: "r1", Installed: "r1", Phase: rollout.PhaseRunning}}
	l.Step(now+3, &Input{Msgs: []*rollout.Message{&row}})
	if r, ok := reachOf("c"); !ok || r != rollout.ReachDead {
		t.Errorf("a row of a host the transport does not know: shown %v (%v), want dead", r, ok)
	}
}
