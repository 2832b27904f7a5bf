package rollout

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hash2 is FNV-1a of a, a separator and b, finished with a 64-bit mixer so
// that hosts with similar names spread over the order.
func hash2(a, b string) uint64 {
	h := fnvString(fnvOffset, a)
	h ^= 0xff
	h *= fnvPrime
	h = fnvString(h, b)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashMembers identifies a member list; never 0 for a non-empty list.
func hashMembers(ms []string) uint64 {
	if len(ms) == 0 {
		return 0
	}
	h := uint64(fnvOffset)
	for _, m := range ms {
		h = fnvString(h, m)
		h ^= 0xff
		h *= fnvPrime
	}
	return h | 1
}

// attemptOf derives the attempt number from the manifest id, so that every
// host computes the same attempt without messages.
func attemptOf(manifestID string) uint32 {
	if manifestID == "" {
		return 0
	}
	return uint32(hash2("attempt", manifestID))
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

func (n *Node) setRoster(r Roster) {
	n.st.Roster = r
	n.members = make(map[string]bool, len(r.Members))
	for _, m := range r.Members {
		n.members[m] = true
	}
	n.isMember = n.members[n.cfg.Host]
	n.need = len(r.Members)/2 + 1
	if r.Epoch == 0 && n.cfg.BootstrapExpect > 0 {
		n.need = n.cfg.BootstrapExpect/2 + 1 // the first roster's quorum (§4.4)
	}
	n.rosterHash = hashMembers(r.Members)
	if n.tgt.set {
		n.pol = Resolve(n.st.Desired.Deployment, len(r.Members))
	}
	if n.self != nil {
		n.self.member = n.isMember
	}
}

// adoptRoster moves to a newer committed roster and clears the acceptor
// state of the old epoch.
func (n *Node) adoptRoster(now time.Duration, r Roster) {
	r.Members = slices.Clone(r.Members)
	n.setRoster(r)
	n.st.Promised, n.st.Accepted, n.st.AccValue, n.st.AccLineage = Ballot{}, Ballot{}, nil, ""
	for h := range n.forceRemove {
		if !n.members[h] {
			// Done: a roster without it. A later re-admission (the host
			// came back and joined) is the group's to decide, not a
			// reason to remove it again.
			delete(n.forceRemove, h)
		}
	}
	n.prop = nil
	n.wantSince = 0
	n.dirty = true
	n.recount(now)
	n.writeRow(now)
}

// wantsRosterOf reports whether r shows a roster this host should fetch: a
// newer epoch, or (bootstrap by A4 only) another epoch-1 roster formed apart.
// With bootstrap_expect two epoch-1 rosters cannot both be chosen, so one
// that differs is never fetched; it is counted (Stats.RosterConflicts).
func (n *Node) wantsRosterOf(r *Row) bool {
	return r.Epoch > n.st.Roster.Epoch ||
		n.cfg.BootstrapExpect == 0 && r.Epoch == 1 && n.st.Roster.Epoch == 1 && r.RosterHash != n.rosterHash
}

func (n *Node) rosterSeen(now time.Duration, p *peer) {
	if n.wantsRosterOf(&p.row) {
		n.send(p.host, Message{Kind: KindRosterReq, Epoch: n.st.Roster.Epoch})
		n.rosterFrom = p.host // asked again every housekeeping round until adopted
		return
	}
	if n.cfg.BootstrapExpect > 0 && p.row.Epoch == n.st.Roster.Epoch && p.row.Epoch > 0 && p.row.RosterHash != n.rosterHash {
		n.stats.RosterConflicts++
	}
}

// rerequestRoster asks again for a roster a peer's row shows and this host
// has not adopted: the request or its answer may have been lost.
func (n *Node) rerequestRoster() {
	if n.rosterFrom == "" {
		return
	}
	p := n.peers[n.rosterFrom]
	if p == nil || !p.hasRow || !n.wantsRosterOf(&p.row) {
		n.rosterFrom = ""
		return
	}
	n.send(p.host, Message{Kind: KindRosterReq, Epoch: n.st.Roster.Epoch})
}

func (n *Node) onRosterResp(now time.Duration, m Message) {
	mine := n.st.Roster
	if len(m.Members) == 0 {
		return
	}
	switch {
	case m.Epoch > mine.Epoch:
		n.adoptRoster(now, Roster{Epoch: m.Epoch, Members: m.Members, Lineage: m.Lineage})
	case m.Epoch != 1 || mine.Epoch != 1 || hashMembers(m.Members) == n.rosterHash:
	case n.cfg.BootstrapExpect == 0:
		if bootstrapWins(m.Members, mine.Members) {
			n.adoptRoster(now, Roster{Epoch: m.Epoch, Members: m.Members, Lineage: m.Lineage})
		}
	default:
		n.stats.RosterConflicts++ // A4' broken: see PROTOCOL.md §4.4
	}
}

// checkActivation activates roster epoch+1 when a majority of the current
// roster reports the same accepted value and is drained (PROTOCOL.md §4.1).
func (n *Node) checkActivation(now time.Duration) {
	e := n.st.Roster.Epoch
	if e == 0 && n.cfg.BootstrapExpect == 0 {
		return
	}
	for k, c := range n.accCounts {
		if c < n.need {
			continue
		}
		var val []string
		var lin string
		switch {
		case hashMembers(n.st.AccValue) == k.h:
			val, lin = n.st.AccValue, n.st.AccLineage
		case n.prop != nil && n.prop.phase == 2 && hashMembers(n.prop.value) == k.h:
			val, lin = n.prop.value, n.prop.lineage
		default:
			continue // we do not hold the value; we will fetch the roster once someone activated
		}
		if lin == "" {
			// Chosen by an older drover: keep ours. (Proposers propose
			// their roster's lineage, so a group's lineage never changes
			// once set, and every host activating the value adopts it.)
			lin = n.st.Roster.Lineage
		}
		n.adoptRoster(now, Roster{Epoch: e + 1, Members: val, Lineage: lin})
		return
	}
}

// desiredRoster is the roster this host would propose (PROTOCOL.md §4.2).
func (n *Node) desiredRoster(now time.Duration) []string {
	var out []string
	for _, h := range n.st.Roster.Members {
		if n.forceRemove[h] {
			continue
		}
		if p := n.peers[h]; p != nil && h != n.cfg.Host {
			if p.reach == ReachLeft || p.reach == ReachDead && now-p.since >= n.t.RemoveAfter {
				continue
			}
		}
		out = append(out, h)
	}
	quiet := true
	for _, p := range n.peers {
		if !p.hasRow {
			continue
		}
		if p.row.Phase.Running() || p.row.Phase == PhaseWaiting && !n.halted() && !n.paused() && p.reach.Reachable() {
			quiet = false
			break
		}
	}
	if quiet {
		for _, p := range n.peers {
			if p.hasRow && !p.member && p.reach == ReachAlive && !n.forceRemove[p.host] {
				out = append(out, p.host)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return n.st.Roster.Members
	}
	return out
}

// housekeeping runs every Renew: bootstrap, roster proposals, drain reports.
func (n *Node) housekeeping(now time.Duration) {
	if n.frozen() && n.self.row.Drained != (n.voter.active(now) == 0) {
		n.writeRow(now)
	}
	n.rerequestRoster()
	if n.st.Roster.Epoch == 0 {
		n.bootstrap(now)
		return
	}
	n.checkActivation(now)
	if !n.isMember {
		return
	}
	quiet := n.unhealthy == 0 && (n.waitingAll == 0 || n.halted() || n.paused())
	n.houseRounds++
	deadOnly := n.membersGone > 0 && n.houseRounds%8 != 0 // dead voters matter only after RemoveAfter
	if !n.frozen() && n.membersLeft == 0 && (n.membersGone == 0 || deadOnly) && len(n.forceRemove) == 0 && (n.joiners == 0 || !quiet) {
		n.wantSince = 0
		return // nothing to change: skip the pass over the roster
	}
	want := n.desiredRoster(now)
	if n.frozen() {
		want = n.st.AccValue // finish what was accepted
	} else if slices.Equal(want, n.st.Roster.Members) {
		n.wantSince = 0
		return
	}
	if n.wantSince == 0 {
		n.wantSince = now
	}
	if n.prop != nil {
		return
	}
	pos := 0
	mine := hash2(strconv.FormatUint(n.st.Roster.Epoch, 10), n.cfg.Host)
	for _, h := range n.st.Roster.Members {
		if p := n.peers[h]; h != n.cfg.Host && p != nil && p.reach.Reachable() && hash2(strconv.FormatUint(n.st.Roster.Epoch, 10), h) < mine {
			pos++
		}
	}
	if now >= n.wantSince+n.t.ProposeDelay*time.Duration(1+pos) {
		n.propose(now, want)
	}
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

// bootPlan computes the plan. It reads the node and changes nothing, so
// that Status can call it too.
func (n *Node) bootPlan(now time.Duration) bootPlan {
	var pl bootPlan
	if n.st.Roster.Epoch > 0 {
		return pl
	}
	if p := n.peers[n.rosterFrom]; n.rosterFrom != "" && p != nil && p.hasRow && p.reach == ReachAlive {
		pl.why = fmt.Sprintf("no roster: fetching the roster of epoch %d from %s", p.row.Epoch, p.host)
		return pl
	}
	hosts := []string{n.cfg.Host}
	var noRow []string
	for _, p := range n.peers {
		if p == n.self || p.reach != ReachAlive {
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
	N := n.cfg.BootstrapExpect
	if N == 0 {
		// A4: the first host by name creates the roster alone.
		switch {
		case now < n.started+n.t.BootstrapDelay:
			pl.why = "no roster: bootstrap delay (rows may still come)"
		case len(noRow) > 0:
			pl.why = "no roster: waiting for row of " + noRow[0] // it may know the roster
		case hosts[0] != n.cfg.Host:
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
	case len(hosts) < N && (len(noRow) > 0 || n.t.BootstrapPartial <= 0):
		pl.why = waiting
		return pl
	case len(hosts) < N && now < n.bootSince+n.t.BootstrapPartial:
		pl.why = fmt.Sprintf("%s (a majority forms it without the others in %s)", waiting, (n.bootSince + n.t.BootstrapPartial - now).Round(time.Millisecond))
		return pl
	case now < n.started+n.t.BootstrapDelay:
		pl.why = "no roster: bootstrap delay (rows may still come)"
		return pl
	}
	pl.ready = true
	pos := slices.Index(hosts, n.cfg.Host)
	ready := n.bootReady
	if ready == 0 {
		ready = now
	}
	if pos > 0 && now < ready+n.t.ProposeDelay*time.Duration(pos) {
		pl.why = fmt.Sprintf("no roster: bootstrap waits for %s (first by name)", hosts[0])
		return pl
	}
	pl.value = hosts
	return pl
}

// bootAcceptor reports whether this host takes part, as an acceptor, in
// choosing the first roster proposed by m (bootstrap_expect, §4.4).
func (n *Node) bootAcceptor(m *Message) bool {
	N := n.cfg.BootstrapExpect
	if N == 0 || int(m.Expect) != N || n.st.Roster.Epoch != 0 {
		return false
	}
	seen := 1
	for _, p := range n.peers {
		if p == n.self || !p.hasRow {
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

func (n *Node) bootstrap(now time.Duration) {
	pl := n.bootPlan(now)
	if pl.seen != n.bootSeen {
		n.bootSeen, n.bootSince = pl.seen, now
		pl = n.bootPlan(now)
	}
	if n.cfg.BootstrapExpect == 0 {
		if pl.value != nil {
			n.adoptRoster(now, Roster{Epoch: 1, Members: pl.value, Lineage: n.cfg.Nonce})
		}
		return
	}
	if !pl.ready {
		n.bootReady = 0
		return
	}
	if n.bootReady == 0 {
		n.bootReady = now
		pl = n.bootPlan(now)
	}
	if pl.value != nil && n.prop == nil {
		n.propose(now, pl.value)
	}
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

// RosterState returns the roster's state and, without one, why.
func (n *Node) RosterState(now time.Duration) RosterState {
	rs := RosterState{Epoch: n.st.Roster.Epoch, Members: len(n.st.Roster.Members), Voter: n.isMember}
	if rs.Epoch > 0 {
		return rs
	}
	pl := n.bootPlan(now)
	rs.Why = pl.why
	if p := n.prop; p != nil && p.epoch == 0 {
		if p.phase == 1 {
			rs.Why = fmt.Sprintf("no roster: proposing the first roster %v, %d of %d promises", p.value, len(p.promises), n.need)
		} else {
			rs.Why = fmt.Sprintf("no roster: proposing the first roster %v, %d of %d accepted", p.value, len(p.accepted), n.need)
		}
	} else if rs.Why == "" && n.frozen() {
		rs.Why = fmt.Sprintf("no roster: accepted the first roster %v, waiting for %d of bootstrap_expect %d to accept it", n.st.AccValue, n.need, n.cfg.BootstrapExpect)
	} else if rs.Why == "" && n.bootLast != "" {
		rs.Why = n.bootLast
	} else if rs.Why == "" {
		rs.Why = "no roster: proposing the first roster"
	}
	return rs
}

func (n *Node) propose(now time.Duration, value []string) {
	round := max(n.st.Promised.Round, n.st.Accepted.Round, n.seenRound) + 1
	p := &proposal{
		ballot: Ballot{Round: round, Node: n.cfg.Host}, epoch: n.st.Roster.Epoch,
		value: slices.Clone(value), promises: map[string]bool{}, accepted: map[string]bool{}, phase: 1,
		deadline: now + 4*n.t.ClaimTimeout + n.t.ProposeDelay, lineage: n.st.Roster.Lineage,
	}
	if p.lineage == "" {
		p.lineage = n.cfg.Nonce // a first roster, or an older drover's
	}
	n.prop = p
	m := Message{Kind: KindPrepare, Epoch: p.epoch, Ballot: p.ballot, Expect: uint32(n.cfg.BootstrapExpect)}
	self := n.promise(now, &m)
	self.From = n.cfg.Host
	n.sendAcceptors(m)
	n.onPromise(now, self)
}

// sendAcceptors sends m to the acceptors of the current instance: the
// roster's members, or for the first roster (bootstrap_expect) every host
// of the group this host knows, in name order.
func (n *Node) sendAcceptors(m Message) {
	if n.st.Roster.Epoch > 0 {
		n.sendMembers(m)
		return
	}
	hosts := make([]string, 0, len(n.peers))
	for h := range n.peers {
		if h != n.cfg.Host {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		n.send(h, m)
	}
}

// acceptor reports whether this host is an acceptor of the instance m is
// about: a member of roster m.Epoch choosing epoch+1, or, for the first
// roster, a host without one that expects the same group size.
func (n *Node) acceptor(m *Message) bool {
	if m.Epoch != n.st.Roster.Epoch {
		return false
	}
	if m.Epoch == 0 {
		return n.bootAcceptor(m)
	}
	return n.isMember
}

// promise is the acceptor's phase 1.
func (n *Node) promise(now time.Duration, m *Message) Message {
	r := Message{Kind: KindPromise, Epoch: n.st.Roster.Epoch, Round: m.Ballot.Round, Holder: m.Ballot.Node}
	if !n.acceptor(m) || m.Ballot.Less(n.st.Promised) {
		r.Ballot = n.st.Promised // tells the proposer which round to beat
		return r
	}
	n.st.Promised = m.Ballot
	n.dirty = true
	r.OK, r.Ballot, r.Members, r.Lineage = true, n.st.Accepted, n.st.AccValue, n.st.AccLineage
	return r
}

func (n *Node) onPrepare(now time.Duration, m *Message) { n.send(m.From, n.promise(now, m)) }

func (n *Node) onPromise(now time.Duration, m Message) {
	p := n.prop
	if p == nil || p.phase != 1 || m.Round != p.ballot.Round || m.Holder != p.ballot.Node {
		return
	}
	if !m.OK {
		n.seenRound = max(n.seenRound, m.Ballot.Round)
		if m.Epoch > n.st.Roster.Epoch {
			n.send(m.From, Message{Kind: KindRosterReq, Epoch: n.st.Roster.Epoch})
		}
		return
	}
	p.promises[m.From] = true
	if !m.Ballot.IsZero() && p.best.Less(m.Ballot) {
		p.best, p.bestVal, p.bestLin = m.Ballot, m.Members, m.Lineage
	}
	if len(p.promises) < n.need {
		return
	}
	p.phase = 2
	if !p.best.IsZero() {
		// Paxos: finish what a quorum may have chosen, lineage included.
		p.value, p.lineage = slices.Clone(p.bestVal), p.bestLin
	}
	a := Message{Kind: KindAccept, Epoch: p.epoch, Ballot: p.ballot, Members: p.value, Expect: uint32(n.cfg.BootstrapExpect), Lineage: p.lineage}
	if n.accept(now, &a) {
		n.onAccepted(now, Message{Kind: KindAccepted, From: n.cfg.Host, Epoch: a.Epoch, Ballot: a.Ballot, OK: true})
	}
	n.sendAcceptors(a)
}

// accept is the acceptor's phase 2; accepting freezes this voter.
func (n *Node) accept(now time.Duration, m *Message) bool {
	if !n.acceptor(m) || m.Ballot.Less(n.st.Promised) || len(m.Members) == 0 {
		return false
	}
	n.st.Promised, n.st.Accepted, n.st.AccValue, n.st.AccLineage = m.Ballot, m.Ballot, slices.Clone(m.Members), m.Lineage
	n.dirty = true
	n.writeRow(now)
	n.checkActivation(now)
	return true
}

func (n *Node) onAccept(now time.Duration, m *Message) {
	ok := n.accept(now, m)
	n.send(m.From, Message{Kind: KindAccepted, Epoch: m.Epoch, Ballot: m.Ballot, OK: ok})
}

// onAccepted counts acceptances of this host's proposal of the first roster:
// accepted by a quorum of ⌊N/2⌋+1, it is chosen, and no lease of an earlier
// epoch exists to drain, so the proposer adopts it at once (the others learn
// it from its row).
//
// The other Accepted answers are ignored on purpose:
//   - of a roster change (epoch ≥ 1): that a quorum accepted is not enough
//     to activate it, leases of the current epoch must drain first, so it is
//     activated from the acceptors' rows (accepted ballot, value hash,
//     Drained; checkActivation) and never from these answers. Acceptors send
//     them all the same (onAccept answers every Accept), as every drover
//     has, so the wire stays the same both ways;
//   - a refusal (OK false) carries no higher ballot to learn from (it echoes
//     the proposal's): the proposal runs to its deadline and is retried
//     with a higher ballot, learnt from the refusing promises;
//   - of another ballot or an abandoned proposal: late or duplicated.
func (n *Node) onAccepted(now time.Duration, m Message) {
	p := n.prop
	if p == nil || p.phase != 2 || p.epoch != 0 || n.st.Roster.Epoch != 0 || !m.OK || m.Epoch != 0 || m.Ballot != p.ballot {
		return
	}
	p.accepted[m.From] = true
	if len(p.accepted) >= n.need {
		n.adoptRoster(now, Roster{Epoch: 1, Members: p.value, Lineage: p.lineage})
	}
}
