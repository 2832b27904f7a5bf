// Package rollout is drover's rollout coordination core: one deterministic
// state machine per (host, application) that implements the strategies of
// DESIGN.md §8 and the slot-claim protocol written down in PROTOCOL.md
// (next to this file).
//
// A Node has no goroutines, no I/O and no clock of its own. Its inputs are
// method calls carrying the host's local monotonic time (a time.Duration since
// an arbitrary origin): messages from peers (Receive), membership changes
// (PeerChanged), the desired revision (SetDesired), lifecycle progress and
// results (Progress, Finished), the pause flag (SetPaused) and timer firings
// (Tick, due at NextWake). Its outputs are collected in an Output (TakeOutput):
// state to persist (first), messages to send directly or to broadcast, and
// Decisions for the daemon: start a deployment, abort it, or move its fence.
//
// A Node composes four parts, each with its own state and tests, split
// along raft's seams; the Node routes its inputs to them and turns what
// they return into messages and decisions:
//
//   - slots.go: the slot leases (the quorum). voter is a voter's side: its
//     locks per slot, the quarantine after a restart, the grant rule;
//     claimState and claimant are the holder's side: claim rounds, the
//     validity of grants, renewals, the fence, backoff. Glue: claim.go.
//   - roster.go: rosterKeeper, the roster of voters: the roster in force,
//     the Paxos acceptor and proposer of a change, the drain before it
//     takes effect, the bootstrap of the first roster. Glue: roster_node.go.
//   - strategy.go: strategy, who goes when: the target, the policy, the
//     counters over the group, the order, the window and free slots, halt,
//     rollback, the canary's bake, passing over stalled hosts.
//   - gates.go: gating, the health gates: who evaluates, the verdicts, the
//     hold of a host's slot while its host gates decide. Glue: gates_node.go.
//
// reconcile.Loop drives a Node (persist, then send, then decide); the
// agent runs that loop over memberlist (gossip.Endpoint) and the simulator
// (package sim) runs the very same loop over a simulated network.
package rollout
