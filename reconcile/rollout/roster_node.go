package rollout

import "time"

// The Node's side of the roster (roster.go): it routes roster and Paxos
// messages to its rosterKeeper, sends what the keeper returns, and adopts
// the rosters it chooses (persisted, recounted, in the row).

// adoptRoster moves to a newer committed roster and clears the acceptor
// state of the old epoch.
func (n *Node) adoptRoster(now time.Duration, r Roster) {
	n.roster.adopt(r)
	n.rosterSet()
	n.dirty = true
	n.recount(now)
	n.writeRow(now)
}

// rosterSet follows a change of the roster: the policy is resolved against
// its size, and this host's own peer says whether it is a voter.
func (n *Node) rosterSet() {
	if n.strat.tgt.set {
		n.strat.pol = Resolve(n.st.Desired.Deployment, len(n.roster.cur.Members))
	}
	n.self.member = n.roster.isMember
}

func (n *Node) rosterSeen(now time.Duration, p *peer) {
	switch n.roster.seen(p.host, &p.row) {
	case seenFetch:
		n.send(p.host, n.roster.request())
	case seenConflict:
		n.stats.RosterConflicts++
	}
}

// rerequestRoster asks again for a roster a peer's row shows and this host
// has not adopted: the request or its answer may have been lost.
func (n *Node) rerequestRoster() {
	if h := n.roster.refetch(n.peers); h != "" {
		n.send(h, n.roster.request())
	}
}

func (n *Node) onRosterResp(now time.Duration, m *Message) {
	r, adopt, conflict := n.roster.onAnswer(m)
	switch {
	case adopt:
		n.adoptRoster(now, r)
	case conflict:
		n.stats.RosterConflicts++ // A4' broken: see PROTOCOL.md §4.4
	}
}

// checkActivation activates roster epoch+1 when a majority of the current
// roster reports the same accepted value and is drained (PROTOCOL.md §4.1).
func (n *Node) checkActivation(now time.Duration) {
	if r, ok := n.roster.activation(); ok {
		n.adoptRoster(now, r)
	}
}

// housekeeping runs every Renew: bootstrap, roster proposals, drain reports.
func (n *Node) housekeeping(now time.Duration) {
	if n.frozen() && n.self.row.Drained != (n.voter.active(now) == 0) {
		n.writeRow(now)
	}
	n.rerequestRoster()
	if n.roster.cur.Epoch == 0 {
		n.bootstrap(now)
		return
	}
	n.checkActivation(now)
	if !n.roster.isMember {
		return
	}
	hold := n.halted() || n.paused()
	c := groupCounts{quiet: n.strat.unhealthy == 0 && (n.strat.waitingAll == 0 || hold), joiners: n.strat.joiners, membersGone: n.strat.membersGone, membersLeft: n.strat.membersLeft}
	if want := n.roster.change(now, n.peers, c, hold); want != nil {
		n.propose(now, want)
	}
}

func (n *Node) bootstrap(now time.Duration) {
	value, create := n.roster.bootstrap(now, n.peers)
	switch {
	case value == nil:
	case create:
		n.adoptRoster(now, Roster{Epoch: 1, Members: value, Lineage: n.cfg.Nonce})
	default:
		n.propose(now, value)
	}
}

// RosterState returns the roster's state and, without one, why.
func (n *Node) RosterState(now time.Duration) RosterState { return n.roster.state(now, n.peers) }

func (n *Node) propose(now time.Duration, value []string) {
	m := n.roster.propose(now, value)
	self := n.promise(&m)
	self.From = n.cfg.Host
	n.sendAcceptors(m)
	n.onPromise(now, self)
}

// sendAcceptors sends m to the acceptors of the current instance: the
// roster's members, or for the first roster (bootstrap_expect) every host
// of the group this host knows, in name order.
func (n *Node) sendAcceptors(m Message) { n.sendTo(n.roster.acceptors(n.peers), m) }

// promise is the acceptor's phase 1.
func (n *Node) promise(m *Message) Message {
	r, changed := n.roster.promise(m, n.peers)
	if changed {
		n.dirty = true
	}
	return r
}

func (n *Node) onPrepare(m *Message) { n.send(m.From, n.promise(m)) }

func (n *Node) onPromise(now time.Duration, m Message) {
	a, fetch, ok := n.roster.onPromise(&m)
	if fetch {
		n.send(m.From, n.roster.request())
	}
	if !ok {
		return
	}
	if n.accept(now, &a) {
		n.onAccepted(now, Message{Kind: KindAccepted, From: n.cfg.Host, Epoch: a.Epoch, Ballot: a.Ballot, OK: true})
	}
	n.sendAcceptors(a)
}

// accept is the acceptor's phase 2; accepting freezes this voter.
func (n *Node) accept(now time.Duration, m *Message) bool {
	if !n.roster.accept(m, n.peers) {
		return false
	}
	n.dirty = true
	n.writeRow(now)
	n.checkActivation(now)
	return true
}

func (n *Node) onAccept(now time.Duration, m *Message) {
	ok := n.accept(now, m)
	n.send(m.From, Message{Kind: KindAccepted, Epoch: m.Epoch, Ballot: m.Ballot, OK: ok})
}

// onAccepted adopts the first roster once a quorum accepted this host's
// proposal of it (rosterKeeper.onAccepted says why the other answers are
// ignored).
func (n *Node) onAccepted(now time.Duration, m Message) {
	if r, ok := n.roster.onAccepted(&m); ok {
		n.adoptRoster(now, r)
	}
}
