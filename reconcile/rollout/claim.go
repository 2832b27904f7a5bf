package rollout

import (
	"slices"
	"strconv"
	"time"
)

// maxLease bounds the lease a claimant may ask for.
const maxLease = 10 * time.Minute

// lock is a voter's grant of one slot (gossip/PROTOCOL.md §3).
type lock struct {
	holder string
	claim  uint64
	expiry time.Duration // local
}

// claimState is the holder's side of one claim.
type claimState struct {
	slot     uint32
	id       uint64
	epoch    uint64
	lease    time.Duration
	need     int
	members  int
	round    uint64
	sent     map[uint64]time.Duration // round → local send time
	valid    map[string]uint64        // voter → latest round it granted
	perRound map[uint64]int           // round → voters whose latest grant is of that round
	validity time.Duration            // a round's grants are certainly valid this long after its send
	refused  map[string]bool          // refusals in the current round
	// A refusal that names a holder whose row here shows it released the
	// slot is most likely stale: the holder's Release and row are still on
	// their way to that voter. Such a voter is asked again once, a moment
	// later, in the same round, instead of counting against the claim
	// (which would abandon it and back off for a claim timeout or more).
	rechecked map[string]bool // voters already asked again this round
	recheckTo []string        // voters to ask again at recheckAt
	recheckAt time.Duration   // 0: none pending
	acquired  bool
	lost      bool          // the lease lapsed; the lifecycle is being stopped
	deadline  time.Duration // end of the current round while not acquired
	nextRenew time.Duration
	fence     time.Duration // last fence reported
	rollback  bool
	rev       string
	voters    []string // the voters asked (a majority plus a margin)
	pos       int
}

// holdUntil is the instant the holder stops having a majority of valid
// grants. All grants of one round share a validity, so counting per round is
// enough.
func (c *claimState) holdUntil() time.Duration {
	if len(c.valid) < c.need {
		return 0
	}
	acc := 0
	for r := c.round; r > 0 && r+8 > c.round; r-- {
		acc += c.perRound[r]
		if acc >= c.need {
			return c.sent[r] + c.validity
		}
	}
	return 0
}

func (n *Node) dropLock(s uint32) {
	if l := n.locks[s]; l != nil {
		if n.lockOf[l.holder] == s {
			delete(n.lockOf, l.holder)
		}
		delete(n.locks, s)
	}
}

func (n *Node) frozen() bool { return !n.st.Accepted.IsZero() }

func (n *Node) activeLocks(now time.Duration) int {
	c := 0
	for _, l := range n.locks {
		if now < l.expiry {
			c++
		}
	}
	return c
}

func (n *Node) nextClaimID() uint64 {
	n.counter++
	return n.st.Incarnation<<32 | uint64(n.counter)
}

func (n *Node) startClaim(now time.Duration, slot uint32, rollback bool, rev string) {
	c := &claimState{
		slot: slot, id: n.nextClaimID(), epoch: n.st.Roster.Epoch, lease: n.t.Lease,
		need: n.need, members: len(n.st.Roster.Members),
		sent: map[uint64]time.Duration{}, valid: map[string]uint64{}, perRound: map[uint64]int{}, refused: map[string]bool{},
		rechecked: map[string]bool{},
		validity:  n.t.holderValidity(n.t.Lease),
		rollback:  rollback, rev: rev,
	}
	c.voters = n.claimVoters(c.id)
	n.claim = c
	n.claimRound(now)
}

// claimVoters picks the voters a claim asks: a majority plus a margin for
// loss (all of them in small groups), starting at a point that depends on the
// claim so that load spreads over the roster.
func (n *Node) claimVoters(id uint64) []string {
	ms := n.st.Roster.Members
	k := min(len(ms), n.need+max(2, len(ms)/8))
	if k == len(ms) {
		return ms
	}
	out := make([]string, 0, k)
	start := int(hash2(n.cfg.Host, strconv.FormatUint(id, 10)) % uint64(len(ms)))
	for i := 0; len(out) < k; i++ {
		out = append(out, ms[(start+i)%len(ms)])
	}
	return out
}

func (n *Node) claimRound(now time.Duration) {
	c := n.claim
	c.round++
	c.sent[c.round] = now
	if c.round > 8 {
		delete(c.sent, c.round-8)
		if k := c.perRound[c.round-8]; k > 0 {
			delete(c.perRound, c.round-8)
			for v, r := range c.valid {
				if r <= c.round-8 {
					delete(c.valid, v)
				}
			}
		}
	}
	clear(c.refused)
	clear(c.rechecked)
	c.recheckTo, c.recheckAt = c.recheckTo[:0], 0
	if !c.acquired {
		c.deadline = now + n.t.ClaimTimeout
	}
	m := n.claimMessage(c)
	if n.isMember && slices.Contains(c.voters, n.cfg.Host) {
		g := n.grant(now, n.cfg.Host, &m)
		g.From = n.cfg.Host
		n.onGrant(now, g)
		if n.claim != c {
			return
		}
	}
	n.sendTo(c.voters, m)
}

// claimMessage is the Claim of c's current round.
func (n *Node) claimMessage(c *claimState) Message {
	return Message{Kind: KindClaim, Epoch: c.epoch, Slot: c.slot, Claim: c.id, Round: c.round, Revision: n.tgt.rev, Attempt: n.tgt.attempt, Lease: c.lease}
}

// recheckDelay is how long a claimant waits before asking again a voter
// whose refusal looked stale: long enough for a release in flight on a LAN
// to land, short against the claim timeout.
func (t Timing) recheckDelay() time.Duration { return t.ClaimTimeout / 50 }

// staleRefusal reports whether refusal m names a holder whose row, as held
// here, no longer holds c's slot.
func (n *Node) staleRefusal(m *Message, c *claimState) bool {
	if m.Holder == "" || m.Holder == n.cfg.Host {
		return false
	}
	p := n.peers[m.Holder]
	return p != nil && p.hasRow && (p.row.Claim == 0 || p.row.Slot != c.slot)
}

func (n *Node) sendTo(hosts []string, m Message) {
	n.out.Send = slices.Grow(n.out.Send, len(hosts))
	for _, h := range hosts {
		if h != n.cfg.Host {
			n.send(h, m)
		}
	}
}

// grant applies the voter rule to a claim and returns the reply.
func (n *Node) grant(now time.Duration, from string, m *Message) Message {
	reply := Message{Kind: KindGrant, Epoch: n.st.Roster.Epoch, Slot: m.Slot, Claim: m.Claim, Round: m.Round, Revision: m.Revision, Attempt: m.Attempt}
	if m.Revision == n.tgt.rev && m.Attempt == n.tgt.attempt && len(n.failed) > 0 {
		for h := range n.failed {
			if len(reply.Failed) >= 32 {
				break
			}
			reply.Failed = append(reply.Failed, h)
		}
	}
	if now < n.quarUntil || m.Epoch != n.st.Roster.Epoch || !n.isMember {
		return reply
	}
	if rel, ok := n.releasedBy(from); ok && rel >= m.Claim {
		return reply // a late claim its holder already released (reordering)
	}
	lease := m.Lease
	if lease <= 0 || lease > maxLease {
		lease = min(max(lease, n.t.Lease), maxLease)
	}
	l := n.locks[m.Slot]
	active := l != nil && now < l.expiry
	if active && l.holder == from && l.claim == m.Claim {
		l.expiry = max(l.expiry, now+lease) // renewal of a valid lease, allowed while frozen
		reply.OK = true
		return reply
	}
	if n.frozen() {
		return reply
	}
	if active && (l.holder != from || m.Claim < l.claim) {
		reply.Holder = l.holder
		return reply
	}
	// A host never holds two claims: a newer claim replaces its older lock.
	if s, ok := n.lockOf[from]; ok {
		if o := n.locks[s]; o != nil && o.holder == from && o.claim < m.Claim {
			n.dropLock(s)
		}
	}
	if l != nil {
		n.dropLock(m.Slot)
	}
	n.locks[m.Slot] = &lock{holder: from, claim: m.Claim, expiry: now + lease}
	n.lockOf[from] = m.Slot
	reply.OK = true
	return reply
}

// releasedBy is the highest claim id host's row, as held here, says it
// released; ok is false when no row of host is held.
func (n *Node) releasedBy(host string) (released uint64, ok bool) {
	if host == n.cfg.Host {
		return n.self.row.Released, true
	}
	if x := n.rows.get(host); x != nil {
		return x.released, true
	}
	return 0, false
}

func (n *Node) onClaim(now time.Duration, m *Message) {
	// Claim ids of a host only grow; a claim (or renewal) its sender has
	// already released arrived late or out of order. Granting it would
	// leave a lock nobody releases until it expires, blocking the slot for
	// a lease; its sender has moved on and ignores any answer.
	if rel, ok := n.releasedBy(m.From); ok && rel >= m.Claim {
		n.stats.StaleClaims++
		return
	}
	n.send(m.From, n.grant(now, m.From, m))
}

func (n *Node) onGrant(now time.Duration, m Message) {
	for _, h := range m.Failed {
		if !n.failed[h] && m.Revision == n.tgt.rev && m.Attempt == n.tgt.attempt {
			n.failed[h] = true
		}
	}
	c := n.claim
	if c == nil || c.lost || m.Claim != c.id || m.Slot != c.slot {
		return
	}
	if _, ok := c.sent[m.Round]; !ok {
		return // a round this claim did not send, or one too old to count
	}
	if c.acquired && now >= c.holdUntil() {
		// The majority lapsed before this grant arrived: the lease is lost
		// even if this grant would extend it; stop first.
		n.tickClaim(now)
		return
	}
	if m.OK {
		if old, ok := c.valid[m.From]; !ok || m.Round > old {
			if ok {
				c.perRound[old]--
			}
			c.valid[m.From] = m.Round
			c.perRound[m.Round]++
		}
	} else if m.Round == c.round {
		if !c.acquired && !c.rechecked[m.From] && n.staleRefusal(&m, c) {
			c.rechecked[m.From] = true
			c.recheckTo = append(c.recheckTo, m.From)
			if c.recheckAt == 0 {
				c.recheckAt = now + n.t.recheckDelay()
			}
		} else {
			c.refused[m.From] = true
		}
	}
	if !c.acquired {
		if c.holdUntil() > now && n.paused() {
			// The pause came while the claim was in flight: no new start
			// under it (the claims that evaluate makes stop too). The slot
			// goes back at once instead of when the grants expire.
			n.releaseClaim(now, "")
			n.writeRow(now)
			return
		}
		if c.holdUntil() > now {
			c.acquired = true
			c.nextRenew = now + n.t.Renew
			c.fence = c.holdUntil()
			run := &runState{rev: c.rev, attempt: n.tgt.attempt, rollback: c.rollback}
			n.retries = 0
			n.startRun(now, run, Decision{Fence: c.fence})
			// The voters asked (most of the group) learn at once that this
			// host left the queue; gossip tells the rest.
			n.sendTo(c.voters, Message{Kind: KindRow, Row: n.self.row})
			return
		}
		if len(c.refused) > len(c.voters)-c.need {
			n.abandonClaim(now)
		}
		return
	}
	if h := c.holdUntil(); h > c.fence && n.run != nil {
		c.fence = h
		n.decide(Decision{Kind: DecideFence, Deployment: n.run.id, Revision: n.run.rev, Attempt: n.run.attempt, Rollback: n.run.rollback, Fence: h})
	}
}

// abandonClaim gives up a claim round that did not reach a majority, and
// backs off longer the further this host is from the front of the order —
// its real place, counting the hosts it passed over: when every waiting
// host has passed over all those ahead (an outage without a majority lets
// SkipAfter expire again and again), each believes it is next, and with the
// same backoff they would split the votes for ever (fault seed 1008 of the
// simulator at 10% loss).
func (n *Node) abandonClaim(now time.Duration) {
	pos := n.waitBefore
	if n.claim.rollback {
		pos = n.rbWaitBefore
	}
	n.releaseClaim(now, "")
	n.retries++
	jitter := time.Duration(hash2(n.cfg.Host, strconv.Itoa(n.retries)) % uint64(n.t.ClaimTimeout/2+1))
	n.notBefore = now + n.t.ClaimTimeout*time.Duration(1+min(pos, 8)) + jitter
}

func (n *Node) releaseClaim(now time.Duration, result string) {
	c := n.claim
	if c == nil {
		return
	}
	n.claim = nil
	if l := n.locks[c.slot]; l != nil && l.holder == n.cfg.Host && l.claim == c.id {
		n.dropLock(c.slot)
	}
	r := &n.self.row
	if c.id > r.Released {
		r.Released = c.id
	}
	r.Claim, r.Slot = 0, 0
	n.pendingRelease = &Message{Kind: KindRelease, Epoch: c.epoch, Slot: c.slot, Claim: c.id, Revision: n.tgt.rev, Attempt: n.tgt.attempt, Result: result}
	n.pendingVoters = c.voters
}

// flushRelease sends a pending Release with the row written after it, so
// that voters learn at once that the slot is free (PROTOCOL.md §3).
func (n *Node) flushRelease() {
	m := n.pendingRelease
	if m == nil {
		return
	}
	n.pendingRelease = nil
	m.Row = n.self.row
	n.sendTo(n.pendingVoters, *m)
}

func (n *Node) onRelease(now time.Duration, m *Message) {
	if m.Row.Host == m.From && m.Row.Seq != 0 {
		n.onRow(now, &Message{Kind: KindRow, App: m.App, From: m.From, Row: m.Row})
	}
	if l := n.locks[m.Slot]; l != nil && l.holder == m.From && l.claim == m.Claim {
		n.dropLock(m.Slot)
		if n.frozen() {
			n.writeRow(now) // may have become drained
		}
	}
	if m.Result == "failed" && m.Revision == n.tgt.rev && m.Attempt == n.tgt.attempt {
		n.failed[m.From] = true
	}
}

func (n *Node) tickClaim(now time.Duration) {
	c := n.claim
	if c == nil {
		return
	}
	if !c.acquired {
		if now >= c.deadline {
			n.abandonClaim(now)
			return
		}
		if c.recheckAt != 0 && now >= c.recheckAt {
			// The same round again: a grant still counts from the round's
			// first send, so nothing about validity changes (§3).
			n.sendTo(c.recheckTo, n.claimMessage(c))
			c.recheckTo, c.recheckAt = c.recheckTo[:0], 0
		}
		return
	}
	if c.lost {
		return // stopping: released when the daemon reports the end
	}
	if now >= c.holdUntil() {
		// Lease lost: stop now; the fence (A3) stops the hooks at this
		// instant too. The claim is not released yet: the lifecycle is
		// being killed (TERM, KILL after the fence grace) and runs until
		// the daemon reports Finished. Releasing now would let a voter
		// hand the slot on while this host's scripts still run; the
		// voters' locks outlive the fence by the stop margin instead.
		if n.run != nil {
			c.lost = true
			if !n.run.aborted {
				n.run.aborted = true
				n.decide(Decision{Kind: DecideAbort, Deployment: n.run.id, Revision: n.run.rev, Attempt: n.run.attempt, Rollback: n.run.rollback, Reason: "slot lease lost: no majority of voters reachable"})
			}
			return
		}
		n.releaseClaim(now, "")
		n.writeRow(now)
		return
	}
	if now >= c.nextRenew {
		c.nextRenew = now + n.t.Renew
		n.claimRound(now)
	}
}
