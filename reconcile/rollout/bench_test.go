package rollout

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// BenchmarkRolloutTinyNet rolls a revision out over 40 hosts on the tiny
// perfect network (rolling, 10 % batches): every input kind of a Node
// (rows, claims, grants, releases, ticks) at a realistic mix.
func BenchmarkRolloutTinyNet(b *testing.B) {
	d := Desired{Revision: "r2", ManifestID: "m2", Deployment: manifest.Deployment{
		Strategy: manifest.Rolling, Batch: manifest.Quantity{Set: true, Percent: true, Value: 10}, Rollback: manifest.RollbackOnFailure}}
	for b.Loop() {
		w := newNet(b, 40, "r1")
		w.setDesired(d)
		for step := 0; ; step++ {
			if step > 400 {
				b.Fatalf("not done after %d steps", step)
			}
			w.advance(50 * time.Millisecond)
			for h := range w.running {
				w.finish(h, true)
			}
			done := true
			for _, h := range w.names {
				if n := w.nodes[h]; n.Row().Installed != "r2" || !n.Settled() {
					done = false
				}
			}
			if done {
				break
			}
		}
	}
}

// BenchmarkReceiveRows feeds one node of a 500-host group a stream of new
// rows (the bulk of what gossip delivers), every tenth a stale duplicate.
func BenchmarkReceiveRows(b *testing.B) {
	const hosts = 500
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("h%d", i)
	}
	n := NewNode(Config{Host: "h0", App: "app", Group: "g", Timing: testTiming},
		Persisted{Roster: Roster{Epoch: 1, Members: names}, Row: Row{Installed: "r1"}}, 0)
	n.SetDesired(0, Desired{Revision: "r2", ManifestID: "m2", Deployment: manifest.Deployment{Strategy: manifest.OneAtATime}})
	n.TakeOutput()
	phases := []Phase{PhaseWaiting, PhaseRunning, PhaseSucceeded}
	seq := uint64(0)
	now := time.Duration(0)
	i := 0
	for b.Loop() {
		i++
		h := 1 + i%(hosts-1)
		if i%10 != 0 {
			seq++
		}
		now += time.Microsecond
		m := Message{Kind: KindRow, App: "app", From: names[h], Row: Row{Host: names[h], Seq: seq, Revision: "r2", Attempt: attemptOf("m2"),
			Phase: phases[(i/hosts)%3], Installed: "r1", Epoch: 1, RosterHash: hashMembers(names)}}
		if m.Row.Phase == PhaseRunning {
			m.Row.Claim, m.Row.Slot = seq, 0
		}
		n.ReceiveRef(now, &m)
		if i%64 == 0 {
			n.TakeOutput()
		}
	}
}
