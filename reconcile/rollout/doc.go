// Package rollout is drover's rollout coordination core: one deterministic
// state machine per (host, application) that implements the strategies of
// DESIGN.md §8 and the slot-claim protocol written down in gossip/PROTOCOL.md.
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
// The agent binds a Node to memberlist (package gossip); the simulator
// (package sim) binds the very same code to a simulated network.
package rollout
