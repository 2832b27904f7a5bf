package rollout

import (
	"slices"
	"time"
)

// The Node's side of the slots (slots.go): it routes claims, grants and
// releases to its voter and its claimant, and turns what they return into
// messages, decisions and row writes.

func (n *Node) frozen() bool { return n.roster.frozen() }

func (n *Node) nextClaimID() uint64 {
	n.counter++
	return n.st.Incarnation<<32 | uint64(n.counter)
}

func (n *Node) startClaim(now time.Duration, slot uint32, rollback bool, rev string) {
	id := n.nextClaimID()
	rs := &n.roster
	voters := claimVoters(rs.cur.Members, rs.need, n.cfg.Host, id)
	n.claimant.cur = newClaim(slot, id, rs.cur.Epoch, n.t.Lease, n.t.holderValidity(n.t.Lease), rs.need, len(rs.cur.Members), voters, rollback, rev)
	n.claimRound(now)
}

// claimRound sends the next round of the current claim; this host, when
// it is one of the voters asked, answers it first.
func (n *Node) claimRound(now time.Duration) {
	c := n.claimant.cur
	m := c.newRound(now, n.t.ClaimTimeout, n.strat.tgt.rev, n.strat.tgt.attempt)
	if n.roster.isMember && slices.Contains(c.voters, n.cfg.Host) {
		g := n.grant(now, n.cfg.Host, &m)
		g.From = n.cfg.Host
		n.onGrant(now, g)
		if n.claimant.cur != c {
			return
		}
	}
	n.sendTo(c.voters, m)
}

// recheckDelay is how long a claimant waits before asking again a voter
// whose refusal looked stale: long enough for a release in flight on a LAN
// to land, short against the claim timeout.
func (t Timing) recheckDelay() time.Duration { return t.ClaimTimeout / 50 }

// staleRefusal reports whether refusal m names a holder whose row, as held
// here, no longer holds slot.
func (n *Node) staleRefusal(m *Message, slot uint32) bool {
	if m.Holder == "" || m.Holder == n.cfg.Host {
		return false
	}
	p := n.peers[m.Holder]
	return p != nil && p.hasRow && (p.row.Claim == 0 || p.row.Slot != slot)
}

func (n *Node) sendTo(hosts []string, m Message) {
	n.out.Send = slices.Grow(n.out.Send, len(hosts))
	for _, h := range hosts {
		if h != n.cfg.Host {
			n.send(h, m)
		}
	}
}

// grant applies the voter rule to a claim and returns the reply, which
// carries the failures this host knows for the claim's revision.
func (n *Node) grant(now time.Duration, from string, m *Message) Message {
	reply := Message{Kind: KindGrant, Epoch: n.roster.cur.Epoch, Slot: m.Slot, Claim: m.Claim, Round: m.Round, Revision: m.Revision, Attempt: m.Attempt}
	if m.Revision == n.strat.tgt.rev && m.Attempt == n.strat.tgt.attempt && len(n.strat.failed) > 0 {
		for h := range n.strat.failed {
			if len(reply.Failed) >= 32 {
				break
			}
			reply.Failed = append(reply.Failed, h)
		}
	}
	rel, known := n.releasedBy(from)
	reply.OK, reply.Holder = n.voter.grant(now, from, m, voterView{
		epoch: n.roster.cur.Epoch, member: n.roster.isMember, frozen: n.frozen(), lease: n.t.Lease, released: rel, known: known})
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
		if !n.strat.failed[h] && m.Revision == n.strat.tgt.rev && m.Attempt == n.strat.tgt.attempt {
			n.strat.failed[h] = true
		}
	}
	c := n.claimant.cur
	if c == nil {
		return
	}
	switch c.grant(now, &m, !m.OK && n.staleRefusal(&m, c.slot), n.t.recheckDelay()) {
	case grantLapsed:
		n.tickClaim(now)
	case grantMajority:
		if n.paused() {
			// The pause came while the claim was in flight: no new start
			// under it (the claims that evaluate makes stop too). The slot
			// goes back at once instead of when the grants expire.
			n.releaseClaim(now, "")
			n.writeRow(now)
			return
		}
		c.acquire(now, n.t.Renew)
		run := &runState{rev: c.rev, attempt: n.strat.tgt.attempt, rollback: c.rollback}
		n.claimant.retries = 0
		n.startRun(now, run, Decision{Fence: c.fence})
		// The voters asked (most of the group) learn at once that this
		// host left the queue; gossip tells the rest.
		n.sendTo(c.voters, Message{Kind: KindRow, Row: n.self.row})
	case grantRefused:
		n.abandonClaim(now)
	case grantCounted:
		if c.acquired && n.run != nil {
			if h, moved := c.extendFence(); moved {
				n.decide(Decision{Kind: DecideFence, Deployment: n.run.id, Revision: n.run.rev, Attempt: n.run.attempt, Rollback: n.run.rollback, Fence: h})
			}
		}
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
	pos := n.strat.waitBefore
	if n.claimant.cur.rollback {
		pos = n.strat.rbWaitBefore
	}
	n.releaseClaim(now, "")
	n.claimant.backoff(now, n.cfg.Host, pos, n.t.ClaimTimeout)
}

func (n *Node) releaseClaim(now time.Duration, result string) {
	c := n.claimant.end()
	if c == nil {
		return
	}
	n.voter.release(n.cfg.Host, c.slot, c.id)
	r := &n.self.row
	if c.id > r.Released {
		r.Released = c.id
	}
	r.Claim, r.Slot = 0, 0
	n.claimant.queueRelease(Message{Kind: KindRelease, Epoch: c.epoch, Slot: c.slot, Claim: c.id, Revision: n.strat.tgt.rev, Attempt: n.strat.tgt.attempt, Result: result}, c.voters)
}

// flushRelease sends a pending Release with the row written after it, so
// that voters learn at once that the slot is free (PROTOCOL.md §3).
func (n *Node) flushRelease() {
	m, to := n.claimant.takeRelease()
	if m == nil {
		return
	}
	m.Row = n.self.row
	n.sendTo(to, *m)
}

func (n *Node) onRelease(now time.Duration, m *Message) {
	if m.Row.Host == m.From && m.Row.Seq != 0 {
		n.onRow(now, &Message{Kind: KindRow, App: m.App, From: m.From, Row: m.Row})
	}
	if n.voter.release(m.From, m.Slot, m.Claim) && n.frozen() {
		n.writeRow(now) // may have become drained
	}
	if m.Result == "failed" && m.Revision == n.strat.tgt.rev && m.Attempt == n.strat.tgt.attempt {
		n.strat.failed[m.From] = true
	}
}

func (n *Node) tickClaim(now time.Duration) {
	c := n.claimant.cur
	if c == nil {
		return
	}
	switch what, to := c.tick(now, n.t.Renew); what {
	case tickAbandon:
		n.abandonClaim(now)
	case tickRecheck:
		// The same round again: a grant still counts from the round's
		// first send, so nothing about validity changes (§3).
		n.sendTo(to, c.message(n.strat.tgt.rev, n.strat.tgt.attempt))
	case tickLapsed:
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
	case tickRenew:
		n.claimRound(now)
	}
}
