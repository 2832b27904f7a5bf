package gossip

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// inbox is a Receiver that keeps what it is handed.
type inbox struct {
	mu      sync.Mutex
	msgs    []rollout.Message
	changed []string
}

func (r *inbox) Deliver(ms []rollout.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, ms...)
	return len(ms)
}

func (r *inbox) MemberChanged(host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = append(r.changed, host)
}

func (r *inbox) has(kind rollout.Kind, from string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.msgs, func(m rollout.Message) bool { return m.Kind == kind && m.From == from })
}

// TestEndpointIsATransport: two real memberlist members on loopback, each
// with an Endpoint. What one sends, broadcasts or fans out reaches the
// other's Receiver; push-pull carries the state set with SetState; Reach
// is memberlist's verdict for the group; membership changes are told; a
// message for an application a host does not run is dropped and counted,
// as is every message after its Endpoint closed.
func TestEndpointIsATransport(t *testing.T) {
	checkGoroutines(t)
	var mu sync.Mutex
	drops := map[string]int{}
	start := func(name string, join []string, groups ...string) *Cluster {
		c, err := New(Config{NodeName: name, Bind: "127.0.0.1:0", Join: join, Groups: groups, Params: testParams, Logger: testLogger(t),
			Stats: Stats{Dropped: func(r string) { mu.Lock(); drops[r]++; mu.Unlock() }}})
		if err != nil {
			t.Fatal(err)
		}
		c.mlc.PushPullInterval = 200 * time.Millisecond
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := start("a", nil, "g")
	var ra, rb inbox
	ea, err := a.Endpoint(EndpointConfig{App: "x", Group: "g", Receiver: &ra})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Endpoint(EndpointConfig{App: "x", Group: "g", Receiver: &ra}); err == nil {
		t.Error("a second Endpoint of one application was registered")
	}
	b := start("b", []string{a.LocalAddr()}, "g", "h")
	eb, err := b.Endpoint(EndpointConfig{App: "x", Group: "g", Receiver: &rb})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b alive in the group", 10*time.Second, func() bool {
		r, peer := ea.Reach("b")
		return r == rollout.ReachAlive && peer
	})
	if r, peer := ea.Reach("nobody"); r != rollout.ReachDead || peer {
		t.Errorf("Reach of an unknown host: %v %v, want dead, not a peer", r, peer)
	}
	ra.mu.Lock()
	told := slices.Contains(ra.changed, "b")
	ra.mu.Unlock()
	if !told {
		t.Error("b's join was not told to a's Receiver")
	}

	ea.Send(&rollout.Envelope{To: "b", Msg: rollout.Message{Kind: rollout.KindClaim, App: "x", From: "a", Slot: 0, Claim: 1}})
	ea.Send(&rollout.Envelope{To: "b", Msg: rollout.Message{Kind: rollout.KindRosterReq, App: "x", From: "a"}}) // also over a stream
	row := rollout.Message{Kind: rollout.KindRow, App: "x", From: "a", Row: rollout.Row{Host: "a", Seq: 1, Revision: "r1"}}
	ea.FanOut(&row)
	flag := rollout.Message{Kind: rollout.KindFlag, App: "x", From: "a", Flag: rollout.Flag{Paused: true, Clock: 1, Node: "a"}}
	ea.Broadcast(&flag)
	waitFor(t, "b to receive the claim, the roster request, the fanned-out row and the gossiped flag", 10*time.Second, func() bool {
		return rb.has(rollout.KindClaim, "a") && rb.has(rollout.KindRosterReq, "a") && rb.has(rollout.KindRow, "a") && rb.has(rollout.KindFlag, "a")
	})

	// push-pull: b's state reaches a without any send
	eb.SetState([]rollout.Message{{Kind: rollout.KindRow, App: "x", From: "b", Row: rollout.Row{Host: "b", Seq: 7, Revision: "r9"}}})
	waitFor(t, "a to receive b's state by push-pull", 10*time.Second, func() bool { return ra.has(rollout.KindRow, "b") })

	// an application b does not run, and one it stopped running
	ea.Send(&rollout.Envelope{To: "b", Msg: rollout.Message{Kind: rollout.KindClaim, App: "other", From: "a"}})
	waitFor(t, "the message of an unknown application to be dropped", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return drops[DropUnknownApp] > 0
	})
	eb.Close()
	mu.Lock()
	before := drops[DropUnknownApp]
	mu.Unlock()
	ea.Send(&rollout.Envelope{To: "b", Msg: rollout.Message{Kind: rollout.KindClaim, App: "x", From: "a", Claim: 2}})
	waitFor(t, "a message after b's Endpoint closed to be dropped", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return drops[DropUnknownApp] > before
	})
}
