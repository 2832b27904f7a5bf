package rollout

import (
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// The Node's side of the health gates (gates.go): it hands its gating the
// target and the group, publishes the gate states in its own row, and acts
// on verdicts (halt, pause, the end of a hold).

func (n *Node) gated() bool { return n.strat.tgt.set && len(n.st.Desired.Deployment.Gates) > 0 }

func (n *Node) hasGates(w manifest.When) bool {
	c := gateCtx{gates: n.st.Desired.Deployment.Gates}
	return c.hasGates(w)
}

// gateCtx is the gates' view of this node. When the gate view is to be
// rebuilt every voter gets a peer first: its place in the order, row or not.
func (n *Node) gateCtx() *gateCtx {
	if n.gating.v == nil {
		for _, m := range n.roster.cur.Members {
			n.peer(m)
		}
	}
	return &gateCtx{host: n.cfg.Host, rev: n.strat.tgt.rev, attempt: n.strat.tgt.attempt, gates: n.st.Desired.Deployment.Gates, pol: n.strat.pol, peers: n.peers, self: n.self}
}

// view returns the gate view, rebuilt if something changed.
func (n *Node) view() *gateView { return n.gating.view(n.gateCtx()) }

// gatesAllow reports whether this host's step may start: every step before
// it passed its gates.
func (n *Node) gatesAllow() bool { return n.gating.allow(n.gateCtx()) }

// syncGates starts and stops this host's gate runs to match the view, and
// publishes their state in its row. Called at the end of evaluate.
func (n *Node) syncGates(now time.Duration) {
	n.gating.newGen(n.st.Flag)
	active := n.gated() && !n.halted() && !n.paused() && n.roster.cur.Epoch > 0
	if n.gating.sync(now, n.gateCtx(), active) {
		n.publishGates(now)
	}
}

// publishGates writes the own gate states into the own row.
func (n *Node) publishGates(now time.Duration) {
	n.self.row.Gates = n.gating.states()
	n.dirty = true // stored before it is sent (A2): a restarted evaluator keeps its verdicts
	n.writeRow(now)
}

// GateStep is this host's step in the rollout order of its view (-1: none,
// or no gates), for the simulator's checks and status.
func (n *Node) GateStep() int {
	if !n.gated() {
		return -1
	}
	return n.view().selfStep
}

// Evaluating returns the gates this host samples now, in a stable order.
func (n *Node) Evaluating() []GateJob { return n.gating.jobs(n.strat.tgt.rev) }

// GateSample feeds one sample of gate name for step, taken by this host
// for a job of Evaluating. A sample of a gate this host does not evaluate
// (any more) is ignored. The sample is taken to have ended at now.
func (n *Node) GateSample(now time.Duration, name string, step int, s gate.Sample) {
	v, when, why, hostDone, ok := n.gating.sample(now, name, step, s)
	if !ok {
		return
	}
	n.publishGates(now)
	switch v {
	case gate.VerdictFail:
		if when == manifest.WhenHost {
			n.endHold(now, false, why)
		} else {
			n.halt(now)
		}
	case gate.VerdictInconclusive:
		if !n.st.Flag.Paused {
			n.st.Flag = Flag{Paused: true, Clock: n.st.Flag.Clock + 1, Node: n.cfg.Host, Reason: ClipString(why, MaxFlagReason)}
			n.dirty = true
			n.out.Broadcast = append(n.out.Broadcast, Message{Kind: KindFlag, App: n.cfg.App, From: n.cfg.Host, Flag: n.st.Flag})
		}
	case gate.VerdictPass:
		if hostDone {
			n.endHold(now, true, "")
		}
	}
	n.evaluate(now)
}

// endHold ends a host's wait for its host gates: passed, its run succeeded
// and it gives its slot back; failed, its run failed (it counts as a
// failure for halting) with the gate's reason as its result.
func (n *Node) endHold(now time.Duration, ok bool, result string) {
	if n.gating.hold == nil {
		return
	}
	n.gating.hold = nil
	r := &n.self.row
	r.Event = ""
	res := "succeeded"
	if ok {
		r.Phase, r.Result = PhaseSucceeded, "succeeded"
	} else {
		r.Phase, r.Result = PhaseFailed, ClipString(result, MaxString)
		res = "failed"
	}
	n.releaseClaim(now, res)
	n.dirty = true
	n.writeRow(now)
}

// Gates returns every gate's merged state for the current target, one entry
// per declared gate: the latest step with a state (or pending at step 0).
func (n *Node) Gates() []GateStatus {
	if !n.gated() {
		return nil
	}
	return n.gating.status(n.gateCtx())
}
