package reconcile

import (
	"context"
	"sync"
	"testing"

	"github.com/drover-dev/drover/gossip"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// TestAppTellsStoredPauseAtOnce: an application built with a stored pause
// says paused before its loop's first snapshot (here: it is not started,
// so there is none), as `drover status` right after an agent's restart
// must.
func TestAppTellsStoredPauseAtOnce(t *testing.T) {
	a := NewApp(AppConfig{Name: "x", Group: "g", Host: "a", State: rollout.Persisted{Flag: rollout.Flag{Paused: true, Clock: 3, Node: "b"}}})
	if !a.Paused() {
		t.Error("an app built with a stored pause says not paused until the first snapshot")
	}
	if f := a.Flag(); f.Node != "b" || f.Clock != 3 {
		t.Errorf("flag %+v, want the stored one", f)
	}
}

// TestAppCloseStepsWhatWasQueued: what was queued to an App before Close
// (an operator's pause here; in the agent, the end of the deployment Close
// waited for) is stepped, stored and sent before the loop stops, even when
// Close comes while the loop is busy — then both the queued input and the
// stop are ready at its next select, and a loop that returned on the stop
// would lose the input about every other time. Real gossip on loopback;
// the loop is held busy in a Persist that blocks.
func TestAppCloseStepsWhatWasQueued(t *testing.T) {
	c, err := gossip.New(gossip.Config{NodeName: "a", Bind: "127.0.0.1:0", Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st rollout.Persisted
	for round := range 16 {
		var mu sync.Mutex
		var stored rollout.Persisted
		entered, release := make(chan struct{}), make(chan struct{})
		block := false
		a := NewApp(AppConfig{Name: "x", Group: "g", Host: "a", State: st,
			Persist: func(p rollout.Persisted) error {
				mu.Lock()
				b := block
				block = false
				mu.Unlock()
				if b {
					close(entered)
					<-release
				}
				mu.Lock()
				defer mu.Unlock()
				stored = p.Clone()
				return nil
			}})
		ep, err := c.Endpoint(gossip.EndpointConfig{App: "x", Group: "g", Receiver: a})
		if err != nil {
			t.Fatal(err)
		}
		a.Start(context.Background(), context.Background(), ep)
		mu.Lock()
		block = true
		mu.Unlock()
		a.SetPaused(true) // the step that stores it blocks in Persist
		<-entered
		want := round%2 == 0
		a.SetPaused(want) // queued while the loop is busy
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		<-a.stop // Close has stopped the loop (it waits for it now)
		close(release)
		<-closed
		ep.Close()
		mu.Lock()
		st = stored
		mu.Unlock()
		if st.Flag.Paused != want {
			t.Fatalf("round %d: SetPaused(%v) queued before Close; stored flag %+v", round, want, st.Flag)
		}
	}
}

// noSource is never asked: the poller below is not run.
type noSource struct{}

func (noSource) Desired(context.Context) (source.Revision, error) {
	return source.Revision{}, source.ErrNoManifest
}
func (noSource) Fetch(context.Context, source.Revision, string) error { return nil }
func (noSource) String() string                                       { return "none" }

// TestPeerAheadPokesAFewTimesPerRevision: a peer that targets a revision
// this host's source has not shown makes it poll out of turn, but only
// maxPokes times for that revision (a dead host's last target stays in its
// row for good); a revision the source showed, or this host's own row,
// never does.
func TestPeerAheadPokesAFewTimesPerRevision(t *testing.T) {
	d := &Deploy{}
	a := NewApp(AppConfig{Name: "x", Group: "g", Host: "a", Deploy: d, Poller: source.NewPoller(noSource{}, source.PollerConfig{})})
	d.Desire(source.Revision{ID: "r1"})
	row := func(host, rev string) rollout.HostStatus {
		return rollout.HostStatus{Row: rollout.Row{Host: host, Revision: rev}}
	}
	if got := a.peerAhead([]rollout.HostStatus{row("a", "r9"), row("b", "r1")}); got != "" {
		t.Errorf("own row and a known revision: peer ahead %q", got)
	}
	rows := []rollout.HostStatus{row("b", "r1"), row("c", "r2")}
	for i := range maxPokes {
		got := a.peerAhead(rows)
		if got != "r2" {
			t.Fatalf("poke %d: peer ahead %q, want r2", i+1, got)
		}
		a.pokeFor(got)
	}
	if got := a.peerAhead(rows); got != "" {
		t.Errorf("after %d pokes for r2: peer ahead %q, want none", maxPokes, got)
	}
	d.Desire(source.Revision{ID: "r3"})
	if got := a.peerAhead(append(rows, row("d", "r4"))); got != "r4" {
		t.Errorf("a new unknown revision: peer ahead %q, want r4", got)
	}
}
