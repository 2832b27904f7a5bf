// Package reconcile is the reconcile loop of drover: one per application
// on each host, from the source's desired revision to the lifecycle run
// and the row that tells the fleet.
//
// Loop is the loop without goroutines, I/O or a clock. Each Step takes
// what arrived since the last one and runs, in order: the local calls (the
// poller's desired revision, the operator's pause, the deployer's progress
// and results, gate samples), membership changes, the peers' messages (one
// batch), the timers due; then it stores the rollout state, and only once
// it is stored sends the messages and hands the decisions to the deployer
// (PROTOCOL.md A2). The protocol itself is package rollout's Node; the
// transport is whatever implements Transport (gossip.Endpoint over
// memberlist; the simulator's simulated network).
//
// App runs a Loop on a goroutine of its own with the real clock, owns the
// source's Poller (its own goroutine: polling is I/O) and Deploy, which
// runs each decided lifecycle (hooks.Engine) on a goroutine and reports its
// progress and end back as calls. App also keeps the snapshot that status
// reads and the state push-pull serves.
package reconcile
