package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Config identifies a Node.
type Config struct {
	Host   string
	App    string
	Group  string
	Timing Timing
	// BootstrapExpect is cluster.bootstrap_expect: the number of hosts that
	// form the group. 0: the first roster is created by the first host by
	// name, alone (assumption A4). N > 0: epoch 1 is chosen by Paxos among
	// the group's hosts with a quorum of ⌊N/2⌋+1, so two first rosters
	// cannot form apart (PROTOCOL.md §4.4).
	BootstrapExpect int
	// Nonce is random and durable for this host's state (the daemon passes
	// its state directory's ID): the lineage of a first roster this host
	// forms or proposes, and of a roster change it proposes for a group
	// whose roster has none yet (written by an older drover). Deployment
	// IDs fold the lineage in, so a group formed anew never reuses one.
	Nonce string
}

// peer is what a Node knows about one host of the group (itself included).
type peer struct {
	host   string
	hasRow bool // next to row.Seq: a stale row is refused touching one cache line
	row    Row
	reach  Reach
	since  time.Duration // when reach last changed
	member bool
	rank   uint64
	rbRank uint64
	c      contrib
	// skipped: passed over in the order for the current target; it had
	// its turn and did not start (SkipAfter). Cleared when its row moves.
	skipped bool
	// stage and changed: the row's (revision, attempt, phase, event) and
	// when this node saw it change, for status ("AfterInstall for 40s").
	stage   stageKey
	changed time.Duration
}

type stageKey struct {
	rev     string
	attempt uint32
	phase   Phase
	event   string
}

type runState struct {
	id       string
	rev      string
	attempt  uint32
	rollback bool
	slotless bool
	aborted  bool
	// failed: a rollback of a host whose own run of the target failed; its
	// row keeps that failure as its result, so that status shows on every
	// host what halted the rollout after the rollback too.
	failed bool
}

// Node is the rollout state machine of one host for one application.
type Node struct {
	// The Node routes its inputs to its seams — roster, strategy, voter
	// and claimant, gating — each owning its own state, and collects
	// what they produce in out.
	cfg Config
	t   Timing
	st  Persisted // what is persisted, but for the roster and the acceptor state: roster keeps those (TakeOutput joins them)

	peers  map[string]*peer
	rows   rowIndex // Seq and Released of peers[h].row for every peer h with a row, self excluded
	self   *peer
	roster rosterKeeper // the roster, its changes and its bootstrap (roster.go)

	strat   strategy // the target, its policy and the counters over the group (strategy.go)
	counter uint32   // row/claim counter within this incarnation

	voter    voter    // the grantor's side of the slots (slots.go)
	claimant claimant // the holder's side
	run      *runState

	nextHouse    time.Duration
	pendingPeers []pendingPeer
	lastNow      time.Duration // time of the last input

	gating gating // the health gates (gates.go)

	stats Stats

	dirty bool // persist at next TakeOutput
	out   Output
}

// Stats counts what a Node dropped or refused, for metrics.
type Stats struct {
	StaleClaims uint64 // claims their sender had already released (late or reordered)
	Skipped     uint64 // hosts passed over in the order after SkipAfter (skipStalled)
	// RosterConflicts counts rows and roster messages showing another
	// roster of this host's epoch although bootstrap_expect is set: hosts
	// formed two first rosters, so the assumption of §4.4 was broken.
	RosterConflicts uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.stats }

type pendingPeer struct {
	at   time.Duration
	host string
}

// NewNode creates the state machine from persisted state (zero for a new
// host). It increments the incarnation and, if the persisted row shows a
// deployment in flight, records it as failed: the host restarted and the
// deployment was interrupted (the daemon has killed what was left of it).
// The fleet-wide pause flag is restored as stored; a newer one from a peer
// (a resume this host missed while it was down) replaces it as any newer
// flag does.
func NewNode(cfg Config, st Persisted, now time.Duration) *Node {
	n := &Node{
		cfg:   cfg,
		t:     cfg.Timing,
		st:    st.Clone(),
		peers: map[string]*peer{},
		rows:  newRowIndex(),
		strat: newStrategy(),
		voter: newVoter(),
	}
	if n.st.Incarnation > 0 {
		// An earlier incarnation may have granted leases we no longer know.
		// A host that never ran granted none.
		n.voter.quarantine(now + n.t.Quarantine)
	}
	n.st.Incarnation++
	n.self = &peer{host: cfg.Host, reach: ReachAlive, hasRow: true}
	n.peers[cfg.Host] = n.self
	r := n.st.Row
	r.Host = cfg.Host
	r.Claim, r.Slot, r.Event = 0, 0, ""
	switch r.Phase {
	case PhaseRunning:
		r.Phase, r.Result = PhaseFailed, "interrupted: the agent restarted during the deployment"
	case PhaseRollingBack:
		r.Phase, r.Result = PhaseRollbackFailed, "interrupted: the agent restarted during the rollback"
	}
	n.self.row = r
	var gen uint64
	if !n.st.Flag.Paused {
		gen = n.st.Flag.Clock
	}
	n.gating.restore(r.Gates, gen) // resumed by syncGates from its own last state
	n.roster = newRosterKeeper(cfg, &n.st, now)
	n.st.Roster, n.st.Promised, n.st.Accepted, n.st.AccValue, n.st.AccLineage = Roster{}, Ballot{}, Ballot{}, nil, "" // kept by n.roster
	n.rosterSet()
	if n.st.HaveDesired {
		n.applyDesired(now, n.st.Desired)
	}
	n.writeRow(now)
	n.dirty = true
	n.nextHouse = now + n.t.Renew
	return n
}

// Host returns the node's host name.
func (n *Node) Host() string { return n.cfg.Host }

// Roster returns the current roster.
func (n *Node) Roster() Roster { return n.roster.cur }

// Paused reports the fleet-wide pause flag.
func (n *Node) Paused() bool { return n.st.Flag.Paused }

// Flag returns the fleet-wide pause flag as this host knows it (restored
// from Persisted by NewNode, then the newest set or received).
func (n *Node) Flag() Flag { return n.st.Flag }

// Running reports whether a deployment is running on this host.
func (n *Node) Running() bool { return n.run != nil }

// TakeOutput returns and clears what the node produced.
func (n *Node) TakeOutput() Output {
	n.flushRelease()
	o := n.out
	n.out = Output{}
	if n.dirty {
		p := n.st.Clone()
		p.Row = n.self.row
		n.roster.persist(&p)
		o.Persist = &p
		n.dirty = false
	}
	return o
}

func (n *Node) send(to string, m Message) {
	m.App, m.From = n.cfg.App, n.cfg.Host
	n.out.Send = append(n.out.Send, Envelope{To: to, Msg: m})
}

func (n *Node) decide(d Decision) { n.out.Decisions = append(n.out.Decisions, d) }

// writeRow bumps the own row's sequence number, recounts it and broadcasts it.
func (n *Node) writeRow(now time.Duration) {
	n.counter++
	r := &n.self.row
	r.Seq = n.st.Incarnation<<32 | uint64(n.counter)
	r.Epoch = n.roster.cur.Epoch
	r.RosterHash = n.roster.hash
	r.AccBallot = n.roster.accepted
	r.AccHash = 0
	if !n.roster.accepted.IsZero() {
		r.AccHash = hashMembers(n.roster.accValue) // rare: only during a roster change
	}
	r.Drained = n.frozen() && n.voter.active(now) == 0
	n.update(n.self, now)
	n.out.Broadcast = append(n.out.Broadcast, Message{Kind: KindRow, App: n.cfg.App, From: n.cfg.Host, Row: *r})
}

// ---- inputs ----

// SetDesired feeds the manifest's desired state.
func (n *Node) SetDesired(now time.Duration, d Desired) {
	n.st.Desired, n.st.HaveDesired = d, true
	n.dirty = true
	n.applyDesired(now, d)
	n.writeRow(now)
	n.evaluate(now)
}

func (n *Node) applyDesired(now time.Duration, d Desired) {
	attempt := attemptOf(d.ManifestID)
	t := target{rev: d.Revision, attempt: attempt, set: true}
	changed := n.strat.retarget(t)
	if changed {
		for _, p := range n.peers {
			p.skipped = false
		}
		if n.gating.hold != nil { // host gates of an earlier target: moot
			n.gating.hold = nil
			n.releaseClaim(now, "")
		}
		r := &n.self.row
		if r.Revision != t.rev || r.Attempt != t.attempt {
			n.gating.reset()
			r.Gates = nil
			r.Revision, r.Attempt, r.Result, r.Halted = t.rev, t.attempt, "", false
			if h, ok := n.st.Halted[t.rev]; ok && h.Attempt == t.attempt {
				r.Halted = true
			}
			if r.Installed == t.rev {
				r.Phase = PhaseSucceeded
			} else {
				r.Phase = PhaseWaiting
			}
		}
	}
	n.strat.pol = Resolve(d.Deployment, len(n.roster.cur.Members))
	n.recount(now)
	if changed {
		// Until the other hosts' waiting rows arrive every host believes it
		// is first; only the host first in the order claims at once, the
		// others give the rows a moment (a quarter claim timeout per place,
		// at most two claim timeouts), which avoids a duel at every start.
		pos := 0
		for _, m := range n.roster.cur.Members {
			if p := n.peers[m]; p != nil && p != n.self && p.rank < n.self.rank {
				pos++
			}
		}
		n.claimant.notBefore = max(n.claimant.notBefore, now+n.t.ClaimTimeout*time.Duration(min(pos, 8))/4)
	}
}

// SetPaused sets the fleet-wide pause flag (API call: drover pause/resume).
// The flag is persisted with the output that broadcasts it (A2).
func (n *Node) SetPaused(now time.Duration, paused bool) {
	n.st.Flag = Flag{Paused: paused, Clock: n.st.Flag.Clock + 1, Node: n.cfg.Host}
	n.dirty = true
	n.out.Broadcast = append(n.out.Broadcast, Message{Kind: KindFlag, App: n.cfg.App, From: n.cfg.Host, Flag: n.st.Flag})
	n.evaluate(now)
}

// PeerChanged feeds a membership change of host.
func (n *Node) PeerChanged(now time.Duration, host string, r Reach) {
	if host == n.cfg.Host {
		return
	}
	p := n.peer(host)
	if p.reach == r {
		return
	}
	p.reach, p.since = r, now
	p.skipped = false
	n.update(p, now) // schedules the recount one lease on if it may be running
	n.evaluate(now)
}

// recountAt has host's contribution counted again at at (once).
func (n *Node) recountAt(at time.Duration, host string) {
	for _, pp := range n.pendingPeers {
		if pp.host == host && pp.at == at {
			return
		}
	}
	n.pendingPeers = append(n.pendingPeers, pendingPeer{at: at, host: host})
}

// ForceRemove is the operator's removal of a host from the roster (for a
// group that lost its voters' majority for good, PROTOCOL.md §4.2).
func (n *Node) ForceRemove(now time.Duration, host string) {
	n.roster.remove(host)
	n.housekeeping(now)
}

// Progress records the lifecycle event now running.
func (n *Node) Progress(now time.Duration, deployment, event string) {
	if n.run == nil || n.run.id != deployment || n.self.row.Event == event {
		return
	}
	n.self.row.Event = event
	n.writeRow(now)
}

// Finished records the end of a lifecycle.
func (n *Node) Finished(now time.Duration, deployment string, ok bool, result string) {
	if n.run == nil || n.run.id != deployment {
		return
	}
	run := n.run
	n.run = nil
	r := &n.self.row
	prior := r.Result
	r.Event, r.Result = "", ClipString(result, MaxString)
	switch {
	case run.slotless:
		if ok {
			r.Previous, r.Installed = r.Installed, run.rev
			n.strat.freshFails = 0
		} else {
			// Try again, but not in a loop: a bundle that fails on this
			// host would otherwise be redeployed back to back.
			n.strat.freshFails++
			n.strat.freshNotBefore = now + freshBackoff(n.t, n.strat.freshFails)
		}
		if r.Installed == r.Revision {
			r.Phase = PhaseSucceeded
		} else {
			r.Phase = PhaseWaiting
		}
	case run.rollback:
		if ok {
			r.Previous, r.Installed = r.Revision, run.rev
			r.Phase = PhaseRolledBack
			r.Result = ResultRolledBack
			if run.failed {
				r.Result = prior
			}
		} else {
			r.Phase = PhaseRollbackFailed
			r.Result = ClipString("rollback failed: "+result, MaxString)
		}
	default:
		// A lapsed lease (the host was cut off from the voters, or its
		// agent stopped) is what an unreachable waiting host is (DESIGN
		// §8): not the revision's failure. The host takes its turn again,
		// up to maxAborts times per attempt; then it counts as failed, so
		// that a host that can never keep a lease does not loop for ever.
		lapsed := run.aborted || n.claimant.cur != nil && now >= n.claimant.cur.holdUntil()
		switch {
		case ok && !lapsed && n.hasGates(manifest.WhenHost) && !n.halted() && n.strat.haltSeen == 0:
			// Installed; the host gates decide, and the slot is held
			// until they do (gates.go): the next host waits.
			r.Previous, r.Installed = r.Installed, run.rev
			r.Event, r.Result = "host gates", ""
			n.gating.hold = &holdState{rev: run.rev}
			n.dirty = true
			n.writeRow(now)
			n.evaluate(now)
			return
		case ok && !lapsed:
			r.Previous, r.Installed = r.Installed, run.rev
			r.Phase = PhaseSucceeded
		case lapsed && n.strat.aborts < maxAborts:
			n.strat.aborts++
			r.Phase = PhaseWaiting
			r.Result = fmt.Sprintf("aborted: slot lease lost; will take its turn again (%d of %d)", n.strat.aborts, maxAborts)
			if result != "" {
				r.Result += ": " + result
			}
			n.claimant.notBefore = max(n.claimant.notBefore, now+n.t.Lease) // let the cut or the pause settle
		default:
			r.Phase = PhaseFailed
			if lapsed && result == "" {
				r.Result = "aborted: slot lease lost"
			}
		}
	}
	res := "succeeded"
	if !ok {
		res = "failed"
	}
	n.releaseClaim(now, res)
	n.dirty = true
	n.writeRow(now)
	n.evaluate(now)
}

// maxAborts is how many times a host whose lease lapsed mid-lifecycle takes
// its turn again for one attempt before it counts as failed.
const maxAborts = 3

// Receive feeds a message from a peer.
func (n *Node) Receive(now time.Duration, m Message) { n.ReceiveRef(now, &m) }

// ReceiveBatch feeds messages that arrived together (a push-pull state, a
// burst queued while the agent was busy or stopped). Transports deliver
// bursts in any order — memberlist hands queued user messages over last in,
// first out — so what frees a slot (releases, then rows) goes first and
// claims go last: a claim that raced the previous holder's release is then
// granted, and a claim its sender already released is recognised as stale
// (onClaim). msgs itself is not reordered.
func (n *Node) ReceiveBatch(now time.Duration, msgs []*Message) {
	if len(msgs) == 1 {
		n.ReceiveRef(now, msgs[0])
		return
	}
	order := slices.Clone(msgs)
	slices.SortStableFunc(order, func(a, b *Message) int { return kindOrder(a.Kind) - kindOrder(b.Kind) })
	for _, m := range order {
		n.ReceiveRef(now, m)
	}
}

// kindOrder ranks message kinds within a batch: what frees a slot first,
// claims last.
func kindOrder(k Kind) int {
	switch k {
	case KindRelease:
		return 0
	case KindRow:
		return 1
	case KindClaim:
		return 3
	}
	return 2
}

// ReceiveRef is Receive without copying the message, for a caller that hands
// one message to many nodes (the simulator). The node neither modifies nor
// keeps *m.
func (n *Node) ReceiveRef(now time.Duration, m *Message) {
	// A flag travels with its writer as From, relayed or in push-pull: one
	// this host wrote in an earlier life comes back that way, and the newer
	// rule alone decides (its own current flag is never newer than itself).
	if m.App != n.cfg.App || m.From == n.cfg.Host && m.Kind != KindFlag {
		return
	}
	if n.claimant.cur != nil {
		n.tickClaim(now) // a lease that lapsed is noticed before anything else
	}
	switch m.Kind {
	case KindRow:
		n.onRow(now, m)
	case KindFlag:
		if m.Flag.newer(n.st.Flag) {
			n.st.Flag = m.Flag
			n.dirty = true // stored before it is relayed or acted on (A2)
			n.out.Broadcast = append(n.out.Broadcast, *m)
		}
	case KindClaim:
		n.onClaim(now, m)
	case KindGrant:
		n.onGrant(now, *m)
	case KindRelease:
		n.onRelease(now, m)
	case KindPrepare:
		n.onPrepare(m)
	case KindPromise:
		n.onPromise(now, *m)
	case KindAccept:
		n.onAccept(now, m)
	case KindAccepted:
		n.onAccepted(now, *m)
	case KindRosterReq:
		n.send(m.From, n.roster.answer())
	case KindRosterResp:
		n.onRosterResp(now, m)
	}
	n.evaluate(now)
}

func (n *Node) onRow(now time.Duration, m *Message) {
	r := &m.Row
	if r.Host != m.From || r.Host == n.cfg.Host {
		return
	}
	// Most rows gossip brings are already known: refuse them with one
	// probe of the row index.
	var p *peer
	if x := n.rows.get(r.Host); x != nil {
		if r.Seq <= x.seq {
			return
		}
		p = x.peer
	} else {
		p = n.peer(r.Host)
	}
	old, had := p.row, p.hasRow
	p.row, p.hasRow = *r, true
	if p.skipped && (old.Phase != r.Phase || old.Revision != r.Revision || old.Attempt != r.Attempt) {
		p.skipped = false
	}
	n.rows.set(p)
	n.update(p, now)
	n.out.Broadcast = append(n.out.Broadcast, *m) // relay news (epidemic)
	// A holder's row that says it released a claim frees our lock.
	if r.Released > old.Released {
		n.voter.releasedUpTo(r.Host, r.Released)
	}
	if !had || old.Epoch != r.Epoch || old.AccBallot != r.AccBallot || old.Drained != r.Drained || old.RosterHash != r.RosterHash {
		n.rosterSeen(now, p)
	}
}

func (n *Node) peer(host string) *peer {
	p := n.peers[host]
	if p == nil {
		p = &peer{host: host, reach: ReachAlive, member: n.roster.members[host]}
		p.rank, p.rbRank = n.strat.ranks(host, p.member)
		n.peers[host] = p
	}
	return p
}

// ---- counters ----

// update recounts one peer's contribution.
func (n *Node) update(p *peer, now time.Duration) {
	if k := (stageKey{p.row.Revision, p.row.Attempt, p.row.Phase, p.row.Event}); k != p.stage {
		p.stage, p.changed = k, now
	}
	c := n.strat.contribOf(p, now, n.self, n.roster.cur.Epoch, n.cfg.BootstrapExpect > 0, n.t.Lease)
	n.strat.apply(p, n.self, p.c, -1)
	n.roster.countDrained(p.c.acc, -1)
	n.strat.apply(p, n.self, c, +1)
	n.roster.countDrained(c.acc, +1)
	n.gating.invalidate()
	n.strat.moved(now, p.c, c)
	p.c = c
	if (c.occupies || c.unhealthy) && p != n.self && !p.reach.Reachable() && p.reach != ReachSuspect {
		// It counts as running only for the lease bound after it became
		// unreachable: count it again then, whether the row or the verdict
		// came first (a row of a host already dead was counted for good).
		n.recountAt(p.since+n.t.Lease, p.host)
	}
	if p.hasRow && p.row.Revision == n.strat.tgt.rev && p.row.Attempt == n.strat.tgt.attempt &&
		p.row.Phase == PhaseFailed {
		n.strat.failed[p.host] = true
	}
}

// recount rebuilds every counter (target or roster changed).
func (n *Node) recount(now time.Duration) {
	n.strat.resetCounts(now)
	n.roster.resetDrained()
	for _, p := range n.peers {
		p.member = n.roster.members[p.host]
		p.rank, p.rbRank = n.strat.ranks(p.host, p.member)
		p.c = contrib{}
	}
	for _, p := range n.peers {
		n.update(p, now)
	}
}

// ---- strategy ----

func (n *Node) halted() bool { return n.strat.halted(n.st.Halted) }

// halt halts the target attempt (the path of PROTOCOL.md §5).
func (n *Node) halt(now time.Duration) {
	if n.halted() {
		return
	}
	if n.st.Halted == nil {
		n.st.Halted = map[string]Halt{}
	}
	n.st.Halted[n.strat.tgt.rev] = Halt{ManifestID: n.st.Desired.ManifestID, Attempt: n.strat.tgt.attempt}
	n.dirty = true
	n.self.row.Halted = true
	n.writeRow(now)
}

func (n *Node) paused() bool { return n.st.Flag.Paused || n.st.Desired.Deployment.Paused }

// evaluate decides whether to start something now, then which gates this
// host evaluates. It is called after every input.
func (n *Node) evaluate(now time.Duration) {
	if n.gating.hold != nil && (n.halted() || n.strat.haltSeen > 0) {
		n.endHold(now, true, "") // the rollout halted: rollbacks are never gated
	}
	n.evaluateStarts(now)
	if n.gated() || len(n.gating.runs) > 0 {
		n.syncGates(now)
	}
}

// evaluateStarts decides whether to start something now; all it reads are
// counters (and, for manifests with gates, the gate view).
func (n *Node) evaluateStarts(now time.Duration) {
	n.lastNow = now
	if n.roster.takeActivationDue() {
		n.checkActivation(now)
	}
	if n.claimant.cur != nil {
		n.tickClaim(now) // deadlines that passed while other inputs arrived
	}
	if !n.strat.tgt.set || n.run != nil || n.claimant.cur != nil {
		return
	}
	me := &n.self.row
	if me.Installed == "" {
		if now < n.strat.freshNotBefore {
			return // backing off after a failed install
		}
		if rev := n.strat.lastGood(n.peers, n.self, n.halted()); rev != "" {
			n.startRun(now, &runState{rev: rev, attempt: n.strat.tgt.attempt, slotless: true}, Decision{Slotless: true})
		}
		return
	}
	if n.roster.cur.Epoch == 0 {
		return // no voters known yet
	}
	if n.strat.halts(n.halted()) {
		n.halt(now)
	}
	if n.halted() {
		if n.strat.pol.Rollback && me.Revision == n.strat.tgt.rev && me.Attempt == n.strat.tgt.attempt &&
			(me.Phase == PhaseSucceeded || me.Phase == PhaseFailed) && !n.paused() {
			to := me.Installed
			if me.Phase == PhaseSucceeded || me.Installed == n.strat.tgt.rev { // a host gate failed after it installed
				to = me.Previous
			}
			if to == "" || to == n.strat.tgt.rev {
				me.Phase = PhaseRolledBack
				n.writeRow(now)
				return
			}
			if free := n.strat.freeSlots(n.strat.pol.Window); n.strat.rbEligBefore >= free && n.skipStalled(now, true, free) {
				n.evaluate(now) // recounted
				return
			}
			n.tryClaim(now, true, to, n.strat.rbEligBefore, n.strat.pol.Window)
		}
		return
	}
	if me.Phase != PhaseWaiting || me.Installed == n.strat.tgt.rev || n.paused() {
		return
	}
	if n.gated() && !n.gatesAllow() {
		return // a step before this host's has not passed its gates
	}
	if n.strat.pol.Window == 0 { // all-at-once: the window is the group
		n.startRun(now, &runState{rev: n.strat.tgt.rev, attempt: n.strat.tgt.attempt}, Decision{})
		return
	}
	window, budget, ok := n.strat.forward(now, n.st.Desired.Deployment.Bake)
	if !ok {
		return // the canary step bakes
	}
	if free := n.strat.freeSlots(window); n.strat.eligBefore >= budget || n.strat.eligBefore >= free {
		if n.skipStalled(now, false, min(budget, free)) {
			n.evaluate(now) // recounted
		}
		return
	}
	n.tryClaim(now, false, n.strat.tgt.rev, n.strat.eligBefore, window)
}

// skipStalled passes over the hosts ahead of this one in the order when
// nothing that decides who goes next has changed for SkipAfter while a slot
// was free: they had their turn and did not take it. Memberlist calls a host
// alive that may still be unable to collect grants — its datagrams to the
// voters are dropped while TCP (and so memberlist's fallback probe) passes,
// or it reaches some hosts and not others — and without this the hosts
// behind it would wait for it forever. Liveness only: safety rests on the
// slots (§3), so a host that was passed over wrongly costs at most a duel.
// budget is how many hosts may start now; the first budget hosts ahead are
// the ones passed over. It reports whether it changed anything.
func (n *Node) skipStalled(now time.Duration, rollback bool, budget int) bool {
	if n.t.SkipAfter <= 0 || now < n.strat.progressAt+n.t.SkipAfter || now < n.claimant.notBefore || budget <= 0 {
		return false
	}
	ahead := passOver(n.peers, n.self, rollback, budget)
	for _, p := range ahead {
		p.skipped = true
		n.update(p, now)
	}
	n.stats.Skipped += uint64(len(ahead))
	return len(ahead) > 0
}

// tryClaim claims the free slot of index pos if there is one.
func (n *Node) tryClaim(now time.Duration, rollback bool, rev string, pos, window int) {
	if now < n.claimant.notBefore {
		return
	}
	if s, ok := n.strat.freeSlot(pos, window); ok {
		n.startClaim(now, s, rollback, rev)
	}
}

func (n *Node) startRun(now time.Duration, run *runState, d Decision) {
	lineage := n.roster.cur.Lineage
	if lineage == "" && run.slotless {
		// A fresh host's install before any roster: its own deployment,
		// not a rollout's (no other host shares it).
		lineage = n.cfg.Nonce
	}
	run.id = DeploymentID(lineage, n.cfg.App, n.cfg.Group, run.rev, run.attempt)
	n.run = run
	r := &n.self.row
	switch {
	case run.slotless:
	case run.rollback:
		run.failed = r.Phase == PhaseFailed
		r.Phase = PhaseRollingBack
	default:
		r.Phase = PhaseRunning
	}
	switch {
	case run.rollback && run.failed: // keeps its failure
	case run.rollback:
		r.Result = ResultRollingBack
	default:
		r.Result = ""
	}
	if c := n.claimant.cur; c != nil {
		r.Slot, r.Claim = c.slot, c.id
	}
	d.Kind, d.Deployment, d.Revision, d.Attempt, d.Rollback = DecideStart, run.id, run.rev, run.attempt, run.rollback
	n.decide(d)
	n.dirty = true
	n.writeRow(now)
}

// Settled reports whether this host has nothing left to do for its target:
// no deployment, claim or gate evaluation in flight, and either the target
// is installed, or the rollout halted (and this host rolled back if it had
// to), or this host failed it. Used by the simulator to decide completion.
func (n *Node) Settled() bool {
	if n.gating.hold != nil || len(n.gating.runs) > 0 { // gates it evaluates decide yet
		return false
	}
	if n.run != nil || n.claimant.cur != nil || !n.strat.tgt.set {
		return n.run == nil && n.claimant.cur == nil
	}
	r := n.self.row
	if r.Installed == n.strat.tgt.rev && !n.halted() {
		return true
	}
	switch r.Phase {
	case PhaseRolledBack, PhaseRollbackFailed:
		return true
	case PhaseFailed:
		return !n.halted() || !n.strat.pol.Rollback
	case PhaseSucceeded:
		return n.halted() && !n.strat.pol.Rollback
	case PhaseWaiting:
		return n.halted()
	}
	return false
}

// Row returns this host's own row.
func (n *Node) Row() Row { return n.self.row }

// HostStatus is one host's row as seen from here.
type HostStatus struct {
	Row
	Reach  Reach
	Member bool
	// Deployment is the ID of the deployment the row is about (the same on
	// every host of a rollout; see RowDeployment), "" for an idle row.
	Deployment string
	// Since is when this node saw the row's revision, phase or event
	// change (on its clock: an agent restarted since counts from then).
	Since time.Duration
}

// Status returns every known row, sorted by host.
func (n *Node) Status() []HostStatus {
	out := make([]HostStatus, 0, len(n.peers))
	for _, p := range n.peers {
		if p.hasRow {
			out = append(out, HostStatus{Row: p.row, Reach: p.reach, Member: p.member, Deployment: n.RowDeployment(p.row), Since: p.changed})
		}
	}
	slices.SortFunc(out, func(a, b HostStatus) int {
		if a.Host < b.Host {
			return -1
		}
		if a.Host > b.Host {
			return 1
		}
		return 0
	})
	return out
}

// RowDeployment is the ID of the deployment a row is about, as startRun
// names it on that host: the target's for a forward run, the revision
// rolled back to for a rollback (the target's previous revision when the
// target was installed, else the one installed), "" for an idle row or a
// fresh host's own install. It assumes the row's host holds this node's
// roster lineage, which every host of a rollout does.
func (n *Node) RowDeployment(r Row) string {
	if r.Revision == "" || r.Phase == PhaseIdle {
		return ""
	}
	rev := r.Revision
	switch r.Phase {
	case PhaseRollingBack, PhaseRollbackFailed:
		rev = r.Installed
		if r.Installed == r.Revision {
			rev = r.Previous
		}
	case PhaseRolledBack:
		rev = r.Installed
	}
	if rev == "" {
		return ""
	}
	return DeploymentID(n.roster.cur.Lineage, n.cfg.App, n.cfg.Group, rev, r.Attempt)
}

// LocalState is the node's full state for memberlist's push-pull: every row
// it knows and the flag.
func (n *Node) LocalState() []Message {
	out := make([]Message, 0, len(n.peers)+1)
	for _, p := range n.peers {
		if p.hasRow {
			out = append(out, Message{Kind: KindRow, App: n.cfg.App, From: p.host, Row: p.row})
		}
	}
	if f := n.st.Flag; f.Clock > 0 {
		out = append(out, Message{Kind: KindFlag, App: n.cfg.App, From: f.Node, Flag: f})
	}
	if n.roster.cur.Epoch > 0 {
		// The roster rides along: push-pull is a stream, so a host that
		// datagrams cannot reach still learns the voters (PROTOCOL.md §4.4).
		a := n.roster.answer()
		a.App, a.From = n.cfg.App, n.cfg.Host
		out = append(out, a)
	}
	return out
}

// ---- time ----

// NextWake returns the local time at which Tick must be called next.
func (n *Node) NextWake() time.Duration {
	w := n.nextHouse
	lower := func(t time.Duration) {
		if t > n.lastNow && t < w {
			w = t
		}
	}
	if c := n.claimant.cur; c != nil {
		c.due(lower)
	}
	if n.claimant.cur == nil && n.run == nil {
		lower(n.claimant.notBefore)
		lower(n.strat.freshNotBefore)
		if n.t.SkipAfter > 0 && (n.strat.eligBefore > 0 || n.strat.rbEligBefore > 0) {
			lower(n.strat.progressAt + n.t.SkipAfter)
		}
		if n.strat.bakeFrom > 0 {
			lower(n.strat.bakeFrom + n.st.Desired.Deployment.Bake)
		}
	}
	for _, pp := range n.pendingPeers {
		lower(pp.at)
	}
	if p := n.roster.prop; p != nil {
		lower(p.deadline)
	}
	return w
}

// Tick runs whatever is due at now.
func (n *Node) Tick(now time.Duration) {
	if len(n.pendingPeers) > 0 {
		rest := n.pendingPeers[:0]
		for _, pp := range n.pendingPeers {
			if now >= pp.at {
				if p := n.peers[pp.host]; p != nil {
					n.update(p, now)
				}
			} else {
				rest = append(rest, pp)
			}
		}
		n.pendingPeers = rest
	}
	n.tickClaim(now)
	n.roster.expire(now)
	if now >= n.nextHouse {
		n.nextHouse = now + n.t.Renew
		n.housekeeping(now)
	}
	n.evaluate(now)
}

// Debug describes the node's counters (for tests and the simulator).
func (n *Node) Debug() string {
	g := ""
	if n.gated() {
		g = fmt.Sprintf(" gateStep=%d gatesAllow=%v evaluating=%d", n.view().selfStep, n.gatesAllow(), len(n.gating.runs))
	}
	return g + fmt.Sprintf("tgt=%v pol=%+v eligBefore=%d rbBefore=%d runningR=%d installedR=%d unhealthy=%d unreachWaiting=%d occupied=%v failed=%v halted=%v notBefore=%s lastNow=%s claim=%v run=%v",
		n.strat.tgt, n.strat.pol, n.strat.eligBefore, n.strat.rbEligBefore, n.strat.runningR, n.strat.installedR, n.strat.unhealthy, n.strat.unreachWaiting, n.strat.occupied, n.strat.failed, n.halted(), n.claimant.notBefore, n.lastNow, n.claimant.cur != nil, n.run != nil)
}
