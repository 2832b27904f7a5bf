package rollout

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// rosterKeeper is a host's side of the roster (PROTOCOL.md §4): the
// roster in force, the Paxos acceptor and proposer state of the instance
// that chooses the next one (single-decree per epoch, §4.1), its
// activation once a majority of the roster drained, the roster this host
// would propose (§4.2), and the bootstrap of the first roster (§4.4). It
// sends nothing and does not touch the rest of the Node: it reads the
// group's rows and reachability through the peers passed in and returns
// the messages to send and the rosters to adopt (roster_node.go acts on
// them).
type rosterKeeper struct {
	host    string
	expect  int    // bootstrap_expect (Config.BootstrapExpect)
	nonce   string // Config.Nonce: the lineage of a roster this host forms
	t       Timing
	started time.Duration // when this Node started (the bootstrap delay)

	cur      Roster
	members  map[string]bool
	isMember bool   // members[host], asked on every claim
	need     int    // majority of the roster
	hash     uint64 // hashMembers(cur.Members)

	// Paxos acceptor state for epoch cur.Epoch+1, persisted (A2).
	promised, accepted Ballot
	accValue           []string
	accLineage         string // the lineage accepted with accValue

	prop          *proposal
	seenRound     uint64
	accCounts     map[accKey]int // drained members per accepted roster value
	activationDue bool

	wantSince   time.Duration
	houseRounds int
	forceRemove map[string]bool
	from        string // a peer whose row shows a roster this host lacks

	bootSeen  int           // hosts without a roster in the last bootstrap pass (bootPlan.seen)
	bootSince time.Duration // when bootSeen last changed
	bootReady time.Duration // when the bootstrap plan became ready (0: it is not)
	bootLast  string        // how the last proposal of the first roster ended, for RosterState
}

// accKey identifies an accepted roster value reported by a drained member.
type accKey struct {
	b Ballot
	h uint64
}

// proposal is this host's Paxos proposer state for roster epoch+1.
type proposal struct {
	ballot   Ballot
	epoch    uint64
	value    []string
	promises map[string]bool
	accepted map[string]bool // first roster only: acceptors that accepted the ballot
	best     Ballot
	bestVal  []string
	bestLin  string // lineage accepted with bestVal
	lineage  string // proposed with value
	phase    int
	deadline time.Duration
}

// newRosterKeeper restores the roster and the acceptor state of st.
func newRosterKeeper(cfg Config, st *Persisted, now time.Duration) rosterKeeper {
	k := rosterKeeper{
		host: cfg.Host, expect: cfg.BootstrapExpect, nonce: cfg.Nonce, t: cfg.Timing, started: now,
		promised: st.Promised, accepted: st.Accepted, accValue: st.AccValue, accLineage: st.AccLineage,
		accCounts: map[accKey]int{}, forceRemove: map[string]bool{},
		bootSeen: 1, bootSince: now,
	}
	k.set(st.Roster)
	return k
}

// persist writes the roster and the acceptor state into p (A2).
func (k *rosterKeeper) persist(p *Persisted) {
	p.Roster = k.cur
	p.Roster.Members = append([]string(nil), k.cur.Members...)
	p.Promised, p.Accepted, p.AccLineage = k.promised, k.accepted, k.accLineage
	p.AccValue = append([]string(nil), k.accValue...)
}

func (k *rosterKeeper) set(r Roster) {
	k.cur = r
	k.members = make(map[string]bool, len(r.Members))
	for _, m := range r.Members {
		k.members[m] = true
	}
	k.isMember = k.members[k.host]
	k.need = len(r.Members)/2 + 1
	if r.Epoch == 0 && k.expect > 0 {
		k.need = k.expect/2 + 1 // the first roster's quorum (§4.4)
	}
	k.hash = hashMembers(r.Members)
}

// frozen reports whether this host accepted a roster change: it grants no
// new lease, only renews (§4.1).
func (k *rosterKeeper) frozen() bool { return !k.accepted.IsZero() }

// adopt moves to a newer committed roster and clears the acceptor state of
// the old epoch.
func (k *rosterKeeper) adopt(r Roster) {
	r.Members = slices.Clone(r.Members)
	k.set(r)
	k.promised, k.accepted, k.accValue, k.accLineage = Ballot{}, Ballot{}, nil, ""
	for h := range k.forceRemove {
		if !k.members[h] {
			// Done: a roster without it. A later re-admission (the host
			// came back and joined) is the group's to decide, not a
			// reason to remove it again.
			delete(k.forceRemove, h)
		}
	}
	k.prop = nil
	k.wantSince = 0
}

// remove is the operator's removal of host (PROTOCOL.md §4.2): left out of
// the roster this host wants, now.
func (k *rosterKeeper) remove(host string) {
	k.forceRemove[host] = true
	k.wantSince = 0
}

// wants reports whether r shows a roster this host should fetch: a
// newer epoch, or (bootstrap by A4 only) another epoch-1 roster formed apart.
// With bootstrap_expect two epoch-1 rosters cannot both be chosen, so one
// that differs is never fetched; it is counted (Stats.RosterConflicts).
func (k *rosterKeeper) wants(r *Row) bool {
	return r.Epoch > k.cur.Epoch ||
		k.expect == 0 && r.Epoch == 1 && k.cur.Epoch == 1 && r.RosterHash != k.hash
}

// seenOutcome is what a row's roster state asks of this host.
type seenOutcome uint8

const (
	seenNothing  seenOutcome = iota
	seenFetch                // ask its host for its roster (RosterReq)
	seenConflict             // another roster of this epoch although bootstrap_expect is set
)

// seen looks at the roster state of host's row r.
func (k *rosterKeeper) seen(host string, r *Row) seenOutcome {
	if k.wants(r) {
		k.from = host // asked again every housekeeping round until adopted
		return seenFetch
	}
	if k.expect > 0 && r.Epoch == k.cur.Epoch && r.Epoch > 0 && r.RosterHash != k.hash {
		return seenConflict
	}
	return seenNothing
}

// refetch returns the host to ask again for a roster its row shows and this
// host has not adopted ("": none): the request or its answer may have been
// lost.
func (k *rosterKeeper) refetch(peers map[string]*peer) string {
	if k.from == "" {
		return ""
	}
	p := peers[k.from]
	if p == nil || !p.hasRow || !k.wants(&p.row) {
		k.from = ""
		return ""
	}
	return p.host
}

// request is the RosterReq this host sends.
func (k *rosterKeeper) request() Message { return Message{Kind: KindRosterReq, Epoch: k.cur.Epoch} }

// answer is this host's RosterResp.
func (k *rosterKeeper) answer() Message {
	return Message{Kind: KindRosterResp, Epoch: k.cur.Epoch, Members: k.cur.Members, Lineage: k.cur.Lineage}
}

// onAnswer decides on a peer's roster m (a RosterResp): adopt reports a
// roster to adopt; conflict another first roster although bootstrap_expect
// is set (A4' broken: see PROTOCOL.md §4.4).
func (k *rosterKeeper) onAnswer(m *Message) (r Roster, adopt, conflict bool) {
	mine := k.cur
	if len(m.Members) == 0 {
		return Roster{}, false, false
	}
	theirs := Roster{Epoch: m.Epoch, Members: m.Members, Lineage: m.Lineage}
	switch {
	case m.Epoch > mine.Epoch:
		return theirs, true, false
	case m.Epoch != 1 || mine.Epoch != 1 || hashMembers(m.Members) == k.hash:
	case k.expect == 0:
		if bootstrapWins(m.Members, mine.Members) {
			return theirs, true, false
		}
	default:
		return Roster{}, false, true
	}
	return Roster{}, false, false
}

// countDrained adds d to the drained members that report the accepted
// value acc (zero: none); a value a majority reports makes an activation
// due (takeActivationDue).
func (k *rosterKeeper) countDrained(acc accKey, d int) {
	if acc.h == 0 {
		return
	}
	k.accCounts[acc] += d
	if k.accCounts[acc] <= 0 {
		delete(k.accCounts, acc)
	} else if d > 0 && k.accCounts[acc] >= k.need {
		k.activationDue = true
	}
}

// resetDrained forgets the counts (every peer is counted again).
func (k *rosterKeeper) resetDrained() { k.accCounts = map[accKey]int{} }

// takeActivationDue reports, once, that a value reached a majority of
// drained members since the last call.
func (k *rosterKeeper) takeActivationDue() bool {
	due := k.activationDue
	k.activationDue = false
	return due
}

// activation returns roster epoch+1 when a majority of the current roster
// reports the same accepted value and is drained (PROTOCOL.md §4.1).
func (k *rosterKeeper) activation() (Roster, bool) {
	e := k.cur.Epoch
	if e == 0 && k.expect == 0 {
		return Roster{}, false
	}
	for key, c := range k.accCounts {
		if c < k.need {
			continue
		}
		var val []string
		var lin string
		switch {
		case hashMembers(k.accValue) == key.h:
			val, lin = k.accValue, k.accLineage
		case k.prop != nil && k.prop.phase == 2 && hashMembers(k.prop.value) == key.h:
			val, lin = k.prop.value, k.prop.lineage
		default:
			continue // we do not hold the value; we will fetch the roster once someone activated
		}
		if lin == "" {
			// Chosen by an older drover: keep ours. (Proposers propose
			// their roster's lineage, so a group's lineage never changes
			// once set, and every host activating the value adopts it.)
			lin = k.cur.Lineage
		}
		return Roster{Epoch: e + 1, Members: val, Lineage: lin}, true
	}
	return Roster{}, false
}

// desired is the roster this host would propose (PROTOCOL.md §4.2). hold:
// the rollout halted or is paused, so waiting hosts do not keep the group
// from being quiet.
func (k *rosterKeeper) desired(now time.Duration, peers map[string]*peer, hold bool) []string {
	var out []string
	for _, h := range k.cur.Members {
		if k.forceRemove[h] {
			continue
		}
		if p := peers[h]; p != nil && h != k.host {
			if p.reach == ReachLeft || p.reach == ReachDead && now-p.since >= k.t.RemoveAfter {
				continue
			}
		}
		out = append(out, h)
	}
	quiet := true
	for _, p := range peers {
		if !p.hasRow {
			continue
		}
		if p.row.Phase.Running() || p.row.Phase == PhaseWaiting && !hold && p.reach.Reachable() {
			quiet = false
			break
		}
	}
	if quiet {
		for _, p := range peers {
			if p.hasRow && !p.member && p.reach == ReachAlive && !k.forceRemove[p.host] {
				out = append(out, p.host)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return k.cur.Members
	}
	return out
}

// groupCounts is what housekeeping reads of the counters over the group.
type groupCounts struct {
	quiet       bool // no host runs, none waits (or the rollout halted or is paused)
	joiners     int  // alive, with a row, not voters
	membersGone int  // voters memberlist reports dead
	membersLeft int  // voters that left gracefully
}

// change is the roster change housekeeping (every Renew, a voter with a
// roster) would propose now: the desired roster, or the accepted value to
// finish while frozen, once this host's turn came (the first-ranked
// reachable voter after ProposeDelay, the one at place p after
// ProposeDelay·(1+p)). nil: nothing to propose now.
func (k *rosterKeeper) change(now time.Duration, peers map[string]*peer, c groupCounts, hold bool) []string {
	k.houseRounds++
	deadOnly := c.membersGone > 0 && k.houseRounds%8 != 0 // dead voters matter only after RemoveAfter
	if !k.frozen() && c.membersLeft == 0 && (c.membersGone == 0 || deadOnly) && len(k.forceRemove) == 0 && (c.joiners == 0 || !c.quiet) {
		k.wantSince = 0
		return nil // nothing to change: skip the pass over the roster
	}
	want := k.desired(now, peers, hold)
	if k.frozen() {
		want = k.accValue // finish what was accepted
	} else if slices.Equal(want, k.cur.Members) {
		k.wantSince = 0
		return nil
	}
	if k.wantSince == 0 {
		k.wantSince = now
	}
	if k.prop != nil {
		return nil
	}
	pos := 0
	epoch := strconv.FormatUint(k.cur.Epoch, 10)
	mine := hash2(epoch, k.host)
	for _, h := range k.cur.Members {
		if p := peers[h]; h != k.host && p != nil && p.reach.Reachable() && hash2(epoch, h) < mine {
			pos++
		}
	}
	if now >= k.wantSince+k.t.ProposeDelay*time.Duration(1+pos) {
		return want
	}
	return nil
}

// bootstrapWins decides between two epoch-1 rosters formed apart (A4): the
// larger wins, then the higher hash.
func bootstrapWins(a, b []string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return hashMembers(a) > hashMembers(b)
}

// bootPlan is where the first roster stands in this host's view
// (PROTOCOL.md §4.4).
type bootPlan struct {
	value []string // the roster to propose (bootstrap_expect) or create (A4) now; nil: not yet
	ready bool     // bootstrap_expect: value is known, the proposer's turn may not have come
	why   string   // when value is nil: why not, for drover status
	seen  int      // hosts without a roster seen alive with rows, this one included
}

// bootPlan computes the plan. It changes nothing, so that Status can call
// it too.
func (k *rosterKeeper) bootPlan(now time.Duration, peers map[string]*peer) bootPlan {
	var pl bootPlan
	if k.cur.Epoch > 0 {
		return pl
	}
	if p := peers[k.from]; k.from != "" && p != nil && p.hasRow && p.reach == ReachAlive {
		pl.why = fmt.Sprintf("no roster: fetching the roster of epoch %d from %s", p.row.Epoch, p.host)
		return pl
	}
	hosts := []string{k.host}
	var noRow []string
	for _, p := range peers {
		if p.host == k.host || p.reach != ReachAlive {
			continue
		}
		if !p.hasRow {
			noRow = append(noRow, p.host)
			continue
		}
		if p.row.Epoch > 0 {
			pl.why = fmt.Sprintf("no roster: fetching the roster of epoch %d from %s", p.row.Epoch, p.host)
			return pl
		}
		hosts = append(hosts, p.host)
	}
	slices.Sort(hosts)
	slices.Sort(noRow)
	pl.seen = len(hosts)
	N := k.expect
	if N == 0 {
		// A4: the first host by name creates the roster alone.
		switch {
		case now < k.started+k.t.BootstrapDelay:
			pl.why = "no roster: bootstrap delay (rows may still come)"
		case len(noRow) > 0:
			pl.why = "no roster: waiting for row of " + noRow[0] // it may know the roster
		case hosts[0] != k.host:
			pl.why = fmt.Sprintf("no roster: bootstrap waits for %s (first by name)", hosts[0])
		default:
			pl.value = hosts
		}
		return pl
	}
	q := N/2 + 1
	missing := ""
	if len(noRow) > 0 {
		missing = "; no row yet from " + noRow[0]
	}
	waiting := fmt.Sprintf("no roster: waiting for bootstrap_expect %d hosts, %d seen%s", N, len(hosts), missing)
	switch {
	case len(hosts) > N:
		pl.why = fmt.Sprintf("no roster: %d hosts without a roster, more than bootstrap_expect %d (set it to the number of hosts that form the group)", len(hosts), N)
		return pl
	case len(hosts) < q:
		pl.why = waiting
		return pl
	case len(hosts) < N && (len(noRow) > 0 || k.t.BootstrapPartial <= 0):
		pl.why = waiting
		return pl
	case len(hosts) < N && now < k.bootSince+k.t.BootstrapPartial:
		pl.why = fmt.Sprintf("%s (a majority forms it without the others in %s)", waiting, (k.bootSince + k.t.BootstrapPartial - now).Round(time.Millisecond))
		return pl
	case now < k.started+k.t.BootstrapDelay:
		pl.why = "no roster: bootstrap delay (rows may still come)"
		return pl
	}
	pl.ready = true
	pos := slices.Index(hosts, k.host)
	ready := k.bootReady
	if ready == 0 {
		ready = now
	}
	if pos > 0 && now < ready+k.t.ProposeDelay*time.Duration(pos) {
		pl.why = fmt.Sprintf("no roster: bootstrap waits for %s (first by name)", hosts[0])
		return pl
	}
	pl.value = hosts
	return pl
}

// bootAcceptor reports whether this host takes part, as an acceptor, in
// choosing the first roster proposed by m (bootstrap_expect, §4.4).
func (k *rosterKeeper) bootAcceptor(m *Message, peers map[string]*peer) bool {
	N := k.expect
	if N == 0 || int(m.Expect) != N || k.cur.Epoch != 0 {
		return false
	}
	seen := 1
	for _, p := range peers {
		if p.host == k.host || !p.hasRow {
			continue
		}
		if p.row.Epoch > 0 {
			return false // a roster exists: this host fetches it instead
		}
		if p.reach == ReachAlive {
			seen++
		}
	}
	return seen <= N // more hosts without a roster than expected: A4' broken, stay out
}

// bootstrap is the housekeeping of a host without a roster: the first
// roster to create alone (create, A4) or to propose (bootstrap_expect),
// nil when there is none yet or this host's proposal is in flight.
func (k *rosterKeeper) bootstrap(now time.Duration, peers map[string]*peer) (value []string, create bool) {
	pl := k.bootPlan(now, peers)
	if pl.seen != k.bootSeen {
		k.bootSeen, k.bootSince = pl.seen, now
		pl = k.bootPlan(now, peers)
	}
	if k.expect == 0 {
		return pl.value, true
	}
	if !pl.ready {
		k.bootReady = 0
		return nil, false
	}
	if k.bootReady == 0 {
		k.bootReady = now
		pl = k.bootPlan(now, peers)
	}
	if pl.value != nil && k.prop == nil {
		return pl.value, false
	}
	return nil, false
}

// RosterState is what a host knows of its group's roster, for drover
// status and metrics.
type RosterState struct {
	Epoch   uint64
	Members int
	Voter   bool
	// Why says why there is no roster yet ("" when there is one).
	Why string
}

// state is the roster's state and, without one, why.
func (k *rosterKeeper) state(now time.Duration, peers map[string]*peer) RosterState {
	rs := RosterState{Epoch: k.cur.Epoch, Members: len(k.cur.Members), Voter: k.isMember}
	if rs.Epoch > 0 {
		return rs
	}
	pl := k.bootPlan(now, peers)
	rs.Why = pl.why
	if p := k.prop; p != nil && p.epoch == 0 {
		if p.phase == 1 {
			rs.Why = fmt.Sprintf("no roster: proposing the first roster %v, %d of %d promises", p.value, len(p.promises), k.need)
		} else {
			rs.Why = fmt.Sprintf("no roster: proposing the first roster %v, %d of %d accepted", p.value, len(p.accepted), k.need)
		}
	} else if rs.Why == "" && k.frozen() {
		rs.Why = fmt.Sprintf("no roster: accepted the first roster %v, waiting for %d of bootstrap_expect %d to accept it", k.accValue, k.need, k.expect)
	} else if rs.Why == "" && k.bootLast != "" {
		rs.Why = k.bootLast
	} else if rs.Why == "" {
		rs.Why = "no roster: proposing the first roster"
	}
	return rs
}

// propose starts a proposal of value for epoch+1 and returns its Prepare.
func (k *rosterKeeper) propose(now time.Duration, value []string) Message {
	round := max(k.promised.Round, k.accepted.Round, k.seenRound) + 1
	p := &proposal{
		ballot: Ballot{Round: round, Node: k.host}, epoch: k.cur.Epoch,
		value: slices.Clone(value), promises: map[string]bool{}, accepted: map[string]bool{}, phase: 1,
		deadline: now + 4*k.t.ClaimTimeout + k.t.ProposeDelay, lineage: k.cur.Lineage,
	}
	if p.lineage == "" {
		p.lineage = k.nonce // a first roster, or an older drover's
	}
	k.prop = p
	return Message{Kind: KindPrepare, Epoch: p.epoch, Ballot: p.ballot, Expect: uint32(k.expect)}
}

// expire drops a proposal whose deadline passed (it is retried with a
// higher ballot), and for the first roster remembers how it ended.
func (k *rosterKeeper) expire(now time.Duration) {
	p := k.prop
	if p == nil || now < p.deadline {
		return
	}
	if p.epoch == 0 && k.cur.Epoch == 0 {
		k.bootLast = fmt.Sprintf("no roster: the last proposal of the first roster %v got %d of %d promises, %d of %d accepted; retrying",
			p.value, len(p.promises), k.need, len(p.accepted), k.need)
	}
	k.prop = nil
}

// acceptors are the hosts to send the messages of this host's proposal
// to: the roster's members, or for the first roster (bootstrap_expect)
// every host of the group this host knows, in name order. It may include
// this host.
func (k *rosterKeeper) acceptors(peers map[string]*peer) []string {
	if k.cur.Epoch > 0 {
		return k.cur.Members
	}
	hosts := make([]string, 0, len(peers))
	for h := range peers {
		if h != k.host {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// acceptor reports whether this host is an acceptor of the instance m is
// about: a member of roster m.Epoch choosing epoch+1, or, for the first
// roster, a host without one that expects the same group size.
func (k *rosterKeeper) acceptor(m *Message, peers map[string]*peer) bool {
	if m.Epoch != k.cur.Epoch {
		return false
	}
	if m.Epoch == 0 {
		return k.bootAcceptor(m, peers)
	}
	return k.isMember
}

// promise is the acceptor's phase 1; changed reports that the acceptor
// state changed (to persist).
func (k *rosterKeeper) promise(m *Message, peers map[string]*peer) (r Message, changed bool) {
	r = Message{Kind: KindPromise, Epoch: k.cur.Epoch, Round: m.Ballot.Round, Holder: m.Ballot.Node}
	if !k.acceptor(m, peers) || m.Ballot.Less(k.promised) {
		r.Ballot = k.promised // tells the proposer which round to beat
		return r, false
	}
	k.promised = m.Ballot
	r.OK, r.Ballot, r.Members, r.Lineage = true, k.accepted, k.accValue, k.accLineage
	return r, true
}

// onPromise counts promise m for this host's proposal. A refusal from a
// later epoch asks for the roster (fetch); a quorum of promises moves the
// proposal to phase 2 and returns its Accept (ok).
func (k *rosterKeeper) onPromise(m *Message) (accept Message, fetch, ok bool) {
	p := k.prop
	if p == nil || p.phase != 1 || m.Round != p.ballot.Round || m.Holder != p.ballot.Node {
		return Message{}, false, false
	}
	if !m.OK {
		k.seenRound = max(k.seenRound, m.Ballot.Round)
		return Message{}, m.Epoch > k.cur.Epoch, false
	}
	p.promises[m.From] = true
	if !m.Ballot.IsZero() && p.best.Less(m.Ballot) {
		p.best, p.bestVal, p.bestLin = m.Ballot, m.Members, m.Lineage
	}
	if len(p.promises) < k.need {
		return Message{}, false, false
	}
	p.phase = 2
	if !p.best.IsZero() {
		// Paxos: finish what a quorum may have chosen, lineage included.
		p.value, p.lineage = slices.Clone(p.bestVal), p.bestLin
	}
	return Message{Kind: KindAccept, Epoch: p.epoch, Ballot: p.ballot, Members: p.value, Expect: uint32(k.expect), Lineage: p.lineage}, false, true
}

// accept is the acceptor's phase 2; accepting freezes this voter.
func (k *rosterKeeper) accept(m *Message, peers map[string]*peer) bool {
	if !k.acceptor(m, peers) || m.Ballot.Less(k.promised) || len(m.Members) == 0 {
		return false
	}
	k.promised, k.accepted, k.accValue, k.accLineage = m.Ballot, m.Ballot, slices.Clone(m.Members), m.Lineage
	return true
}

// onAccepted counts acceptances of this host's proposal of the first roster:
// accepted by a quorum of ⌊N/2⌋+1, it is chosen, and no lease of an earlier
// epoch exists to drain, so the proposer adopts it at once (the others learn
// it from its row): it returns the roster to adopt.
//
// The other Accepted answers are ignored on purpose:
//   - of a roster change (epoch ≥ 1): that a quorum accepted is not enough
//     to activate it, leases of the current epoch must drain first, so it is
//     activated from the acceptors' rows (accepted ballot, value hash,
//     Drained; activation) and never from these answers. Acceptors send
//     them all the same (onAccept answers every Accept), as every drover
//     has, so the wire stays the same both ways;
//   - a refusal (OK false) carries no higher ballot to learn from (it echoes
//     the proposal's): the proposal runs to its deadline and is retried
//     with a higher ballot, learnt from the refusing promises;
//   - of another ballot or an abandoned proposal: late or duplicated.
func (k *rosterKeeper) onAccepted(m *Message) (Roster, bool) {
	p := k.prop
	if p == nil || p.phase != 2 || p.epoch != 0 || k.cur.Epoch != 0 || !m.OK || m.Epoch != 0 || m.Ballot != p.ballot {
		return Roster{}, false
	}
	p.accepted[m.From] = true
	if len(p.accepted) >= k.need {
		return Roster{Epoch: 1, Members: p.value, Lineage: p.lineage}, true
	}
	return Roster{}, false
}
