package rollout

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/drover-dev/drover/internal/deployid"
	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
)

// Phase is where a host stands in the rollout its row is about.
type Phase uint8

// Phases. A row only moves forward for one (revision, attempt):
// idle → waiting → running → succeeded|failed → rolling-back → rolled-back|rollback-failed.
const (
	PhaseIdle Phase = iota
	PhaseWaiting
	PhaseRunning
	PhaseSucceeded
	PhaseFailed
	PhaseRollingBack
	PhaseRolledBack
	PhaseRollbackFailed
	phaseCount
)

var phaseNames = [...]string{"idle", "waiting", "running", "succeeded", "failed", "rolling-back", "rolled-back", "rollback-failed"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Running reports whether a host in phase p runs lifecycle events.
func (p Phase) Running() bool { return p == PhaseRunning || p == PhaseRollingBack }

// The results a row shows while and after a host rolls back because the
// rollout halted (a host whose own run failed keeps its failure instead).
const (
	ResultRollingBack = "rolling back: the rollout halted"
	ResultRolledBack  = "rolled back: the rollout halted"
)

// OwnFailure reports whether a row says that its host's own run failed (a
// forward run, or a rollback), as opposed to a host that rolled back
// because another failed.
func (r Row) OwnFailure() bool {
	switch r.Phase {
	case PhaseFailed, PhaseRollbackFailed:
		return true
	case PhaseRollingBack, PhaseRolledBack:
		return r.Result != "" && r.Result != "succeeded" && r.Result != ResultRollingBack && r.Result != ResultRolledBack
	}
	return false
}

// Row is one host's status for one application. Only that host writes it;
// receivers keep the row with the highest Seq.
type Row struct {
	Host      string
	Seq       uint64 // incarnation<<32 | counter: increases across restarts
	Revision  string // the revision this row is about (the host's target)
	Attempt   uint32
	Phase     Phase
	Event     string // current lifecycle event while running
	Result    string // last result, human readable
	Installed string // revision installed now ("" = nothing)
	Previous  string // revision installed before Installed
	Slot      uint32 // slot held while running, when Claim != 0
	Claim     uint64 // claim id while running in a slot; 0 = none (or slotless)
	Released  uint64 // highest claim id this host has stopped using
	Halted    bool   // this host saw the rollout of Revision/Attempt halt

	// Roster state (PROTOCOL.md §4).
	Epoch      uint64
	RosterHash uint64
	AccBallot  Ballot
	AccHash    uint64
	Drained    bool

	// Gates is the state of the health gates this host evaluates for
	// Revision/Attempt (PROTOCOL.md §10): only those of its current
	// evaluation and the verdicts it reached for it, at most MaxRowGates.
	// Never modified in place: a new slice replaces it.
	Gates []GateState
}

// GateState is one gate's state as its evaluator publishes it.
type GateState struct {
	Name    string
	Step    uint32 // the step of the rollout the gate judges (0 for continuous gates)
	Gen     uint64 // the pause flag's clock at the last resume: a resume starts a fresh run
	Verdict gate.Verdict
	Taken   uint32 // samples taken so far (resumed runs included)
	// FailStreak and InconcStreak are the consecutive failed and
	// inconclusive samples at the end of Taken.
	FailStreak, InconcStreak uint32
	Value                    float64 // the last sample's value (the largest of a vector; NaN: no data)
	Reason                   string  // with a final verdict other than pass: gate, value, query, why
}

// Ballot orders Paxos proposals: by Round, then Node.
type Ballot struct {
	Round uint64
	Node  string
}

// Less reports whether b orders before c.
func (b Ballot) Less(c Ballot) bool {
	if b.Round != c.Round {
		return b.Round < c.Round
	}
	return b.Node < c.Node
}

// IsZero reports whether b is the zero ballot.
func (b Ballot) IsZero() bool { return b.Round == 0 && b.Node == "" }

// Flag is a fleet-wide per-application flag, last writer wins on (Clock, Node).
type Flag struct {
	Paused bool
	Clock  uint64
	Node   string
	// Reason says why a flag was set by the rollout itself rather than an
	// operator: "gate NAME inconclusive: …" (at most MaxFlagReason bytes).
	Reason string
}

func (f Flag) newer(g Flag) bool {
	if f.Clock != g.Clock {
		return f.Clock > g.Clock
	}
	// Concurrent changes (the same clock: set at hosts that had not heard
	// of each other): a pause wins over a resume, the safe way, whatever
	// the hosts' names; then the greater name.
	if f.Paused != g.Paused {
		return f.Paused
	}
	return f.Node > g.Node
}

// Roster is the voter set of a group at an epoch. Members is sorted.
type Roster struct {
	Epoch   uint64
	Members []string
	// Lineage is fixed when the group's first roster forms (the former's
	// or proposer's Config.Nonce) and kept by every later roster: the same
	// on every host of the group, new when a group is formed anew. ""
	// for a roster formed by an older drover until its next change.
	Lineage string
}

// Reach is what memberlist says about a peer.
type Reach uint8

// Reachability states.
const (
	ReachAlive Reach = iota
	ReachSuspect
	ReachDead
	ReachLeft
)

func (r Reach) String() string {
	switch r {
	case ReachAlive:
		return "alive"
	case ReachSuspect:
		return "suspect"
	case ReachDead:
		return "dead"
	case ReachLeft:
		return "left"
	}
	return "reach(" + strconv.Itoa(int(r)) + ")"
}

// Reachable reports whether the host counts as reachable for ordering.
func (r Reach) Reachable() bool { return r == ReachAlive }

// Desired is what the manifest asks for.
type Desired struct {
	Revision   string
	ManifestID string // changes whenever the manifest changes; a halted revision is retried only under a new id
	Deployment manifest.Deployment
}

// Halt records a halted rollout.
type Halt struct {
	ManifestID string
	Attempt    uint32
}

// Persisted is what the daemon must store durably, atomically, before it
// sends the messages of the same Output (PROTOCOL.md A2).
type Persisted struct {
	Incarnation uint64 // incremented by NewNode
	Roster      Roster
	Promised    Ballot   // Paxos acceptor state for epoch Roster.Epoch+1
	Accepted    Ballot   //
	AccValue    []string //
	AccLineage  string   // the lineage accepted with AccValue
	Row         Row      // own row: installed, previous, phase of the last target
	Halted      map[string]Halt
	Desired     Desired // last desired state seen
	HaveDesired bool
	// Flag is the fleet-wide pause flag as this host last knew it (set here
	// or received), stored before it is sent or acted on, so that a
	// restarted host, or a whole fleet restarted together, stays paused.
	// The daemon's state files before it have none: the zero Flag, not
	// paused, older than any flag set since.
	Flag Flag
}

// Clone returns a deep copy.
func (p Persisted) Clone() Persisted {
	q := p
	q.Roster.Members = append([]string(nil), p.Roster.Members...)
	q.AccValue = append([]string(nil), p.AccValue...)
	q.Halted = make(map[string]Halt, len(p.Halted))
	for k, v := range p.Halted {
		q.Halted[k] = v
	}
	return q
}

// DecisionKind says what the daemon must do.
type DecisionKind uint8

// Decisions.
const (
	// DecideStart: start the lifecycle of Revision now.
	DecideStart DecisionKind = iota + 1
	// DecideAbort: stop the running lifecycle now (lease lost, or fence passed);
	// then report Finished with ok=false.
	DecideAbort
	// DecideFence: the running lifecycle must be stopped by Fence (local
	// monotonic time) even if the agent dies (PROTOCOL.md A3).
	DecideFence
)

// Decision is an instruction to the daemon.
type Decision struct {
	Kind       DecisionKind
	Deployment string // DeploymentID
	Revision   string
	Attempt    uint32
	Rollback   bool          // a rollback to the host's previous revision
	Slotless   bool          // a fresh host's initial install, outside the window
	Fence      time.Duration // local deadline (0: none)
	Reason     string
}

// DeploymentID is the deployment ID of DESIGN.md §2: "d-" + 12 hex of
// sha256(app, group, revision, attempt[, lineage]): the same on every host
// of one rollout, different for another revision, another attempt, or a
// group formed anew (its roster's lineage). An empty lineage (a roster of
// an older drover) gives the IDs that drover gave.
func DeploymentID(lineage, app, group, revision string, attempt uint32) string {
	parts := []string{app, group, revision, strconv.FormatUint(uint64(attempt), 10)}
	if lineage != "" {
		parts = append(parts, lineage)
	}
	return deployid.Of(parts...)
}

// Envelope is a message to send. To == "" means broadcast (gossip).
type Envelope struct {
	To  string
	Msg Message
}

// Output is what a Node produced since the last TakeOutput.
type Output struct {
	Persist   *Persisted // write first, when non-nil
	Send      []Envelope // direct messages
	Broadcast []Message  // gossip (rows, flags)
	Decisions []Decision
}

// Empty reports whether o holds nothing.
func (o *Output) Empty() bool {
	return o.Persist == nil && len(o.Send) == 0 && len(o.Broadcast) == 0 && len(o.Decisions) == 0
}

// gateStateJSON is GateState in the daemon's state file: JSON has no NaN
// (the value of a sample without data), so a value that is not finite is
// stored as null and read back as NaN. Without it the state of an
// inconclusive gate could not be stored, and A2 held every message of the
// host (found end to end: the gate's pause reached the others only by
// push-pull).
type gateStateJSON struct {
	Name                     string
	Step                     uint32
	Gen                      uint64
	Verdict                  gate.Verdict
	Taken                    uint32
	FailStreak, InconcStreak uint32
	Value                    *float64
	Reason                   string `json:",omitempty"`
}

// MarshalJSON stores a value that is not finite as null.
func (g GateState) MarshalJSON() ([]byte, error) {
	j := gateStateJSON{Name: g.Name, Step: g.Step, Gen: g.Gen, Verdict: g.Verdict, Taken: g.Taken,
		FailStreak: g.FailStreak, InconcStreak: g.InconcStreak, Reason: g.Reason}
	if !math.IsNaN(g.Value) && !math.IsInf(g.Value, 0) {
		v := g.Value
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null as NaN.
func (g *GateState) UnmarshalJSON(b []byte) error {
	var j gateStateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*g = GateState{Name: j.Name, Step: j.Step, Gen: j.Gen, Verdict: j.Verdict, Taken: j.Taken,
		FailStreak: j.FailStreak, InconcStreak: j.InconcStreak, Value: math.NaN(), Reason: j.Reason}
	if j.Value != nil {
		g.Value = *j.Value
	}
	return nil
}
