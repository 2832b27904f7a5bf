package rollout

import (
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
	best     Ballot
	bestVal  []string
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
	n.st.Promised, n.st.Accepted, n.st.AccValue = Ballot{}, Ballot{}, nil
	n.prop = nil
	n.wantSince = 0
	n.dirty = true
	n.recount(now)
	n.writeRow(now)
}

func (n *Node) rosterSeen(now time.Duration, p *peer) {
	r := p.row
	if r.Epoch > n.st.Roster.Epoch || r.Epoch == 1 && n.st.Roster.Epoch == 1 && r.RosterHash != n.rosterHash {
		n.send(p.host, Message{Kind: KindRosterReq, Epoch: n.st.Roster.Epoch})
		n.rosterFrom = p.host // asked again every housekeeping round until adopted
		return
	}
}

// rerequestRoster asks again for a roster a peer's row shows and this host
// has not adopted: the request or its answer may have been lost.
func (n *Node) rerequestRoster() {
	if n.rosterFrom == "" {
		return
	}
	p := n.peers[n.rosterFrom]
	if p == nil || !p.hasRow || !(p.row.Epoch > n.st.Roster.Epoch || p.row.Epoch == 1 && n.st.Roster.Epoch == 1 && p.row.RosterHash != n.rosterHash) {
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
	if m.Epoch > mine.Epoch || m.Epoch == 1 && mine.Epoch == 1 && bootstrapWins(m.Members, mine.Members) {
		n.adoptRoster(now, Roster{Epoch: m.Epoch, Members: m.Members})
	}
}

// checkActivation activates roster epoch+1 when a majority of the current
// roster reports the same accepted value and is drained (PROTOCOL.md §4.1).
func (n *Node) checkActivation(now time.Duration) {
	e := n.st.Roster.Epoch
	if e == 0 {
		return
	}
	for k, c := range n.accCounts {
		if c < n.need {
			continue
		}
		var val []string
		switch {
		case hashMembers(n.st.AccValue) == k.h:
			val = n.st.AccValue
		case n.prop != nil && n.prop.phase == 2 && hashMembers(n.prop.value) == k.h:
			val = n.prop.value
		default:
			continue // we do not hold the value; we will fetch the roster once someone activated
		}
		n.adoptRoster(now, Roster{Epoch: e + 1, Members: val})
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
	if n.frozen() && n.self.row.Drained != (n.activeLocks(now) == 0) {
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

func (n *Node) bootstrap(now time.Duration) {
	if now < n.started+n.t.BootstrapDelay {
		return
	}
	hosts := []string{n.cfg.Host}
	for _, p := range n.peers {
		if p != n.self && !p.hasRow && p.reach == ReachAlive {
			return // a peer we have not heard from may know the roster: wait for its row
		}
		if p != n.self && p.hasRow && p.reach == ReachAlive {
			if p.row.Epoch > 0 {
				return // a roster exists: we fetch it
			}
			// A peer with something installed but no roster is no sign of
			// one: fresh hosts install the group's revision at once,
			// slotless, often before the first roster forms.
			if p.host < n.cfg.Host {
				return // the first host by name bootstraps
			}
			hosts = append(hosts, p.host)
		}
	}
	slices.Sort(hosts)
	n.adoptRoster(now, Roster{Epoch: 1, Members: hosts})
}

func (n *Node) propose(now time.Duration, value []string) {
	round := max(n.st.Promised.Round, n.st.Accepted.Round, n.seenRound) + 1
	p := &proposal{
		ballot: Ballot{Round: round, Node: n.cfg.Host}, epoch: n.st.Roster.Epoch,
		value: slices.Clone(value), promises: map[string]bool{}, phase: 1,
		deadline: now + 4*n.t.ClaimTimeout + n.t.ProposeDelay,
	}
	n.prop = p
	m := Message{Kind: KindPrepare, Epoch: p.epoch, Ballot: p.ballot}
	self := n.promise(now, m)
	self.From = n.cfg.Host
	n.sendMembers(m)
	n.onPromise(now, self)
}

// promise is the acceptor's phase 1.
func (n *Node) promise(now time.Duration, m Message) Message {
	r := Message{Kind: KindPromise, Epoch: n.st.Roster.Epoch, Round: m.Ballot.Round, Holder: m.Ballot.Node}
	if m.Epoch != n.st.Roster.Epoch || !n.isMember || m.Ballot.Less(n.st.Promised) {
		r.Ballot = n.st.Promised // tells the proposer which round to beat
		return r
	}
	n.st.Promised = m.Ballot
	n.dirty = true
	r.OK, r.Ballot, r.Members = true, n.st.Accepted, n.st.AccValue
	return r
}

func (n *Node) onPrepare(now time.Duration, m Message) { n.send(m.From, n.promise(now, m)) }

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
		p.best, p.bestVal = m.Ballot, m.Members
	}
	if len(p.promises) < n.need {
		return
	}
	p.phase = 2
	if !p.best.IsZero() {
		p.value = slices.Clone(p.bestVal)
	}
	a := Message{Kind: KindAccept, Epoch: p.epoch, Ballot: p.ballot, Members: p.value}
	n.accept(now, a)
	n.sendMembers(a)
}

// accept is the acceptor's phase 2; accepting freezes this voter.
func (n *Node) accept(now time.Duration, m Message) bool {
	if m.Epoch != n.st.Roster.Epoch || !n.isMember || m.Ballot.Less(n.st.Promised) || len(m.Members) == 0 {
		return false
	}
	n.st.Promised, n.st.Accepted, n.st.AccValue = m.Ballot, m.Ballot, slices.Clone(m.Members)
	n.dirty = true
	n.writeRow(now)
	n.checkActivation(now)
	return true
}

func (n *Node) onAccept(now time.Duration, m Message) {
	ok := n.accept(now, m)
	n.send(m.From, Message{Kind: KindAccepted, Epoch: m.Epoch, Ballot: m.Ballot, OK: ok})
}
