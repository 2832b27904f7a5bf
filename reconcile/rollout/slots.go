package rollout

import (
	"strconv"
	"time"
)

// Slots: one numbered mutex per slot, granted by a majority with leases
// (PROTOCOL.md §3). The voter is the grantor's side (one lock per
// slot), the claimant the holder's side (at most one claim, its rounds and
// the validity of their grants). Neither sends anything or reads the rest
// of the Node: the Node passes in what a rule reads (the roster's epoch,
// the claimant's released claims, the timing) and acts on what they return
// (claim.go).

// maxLease bounds the lease a claimant may ask for.
const maxLease = 10 * time.Minute

// lock is a voter's grant of one slot (PROTOCOL.md §3).
type lock struct {
	holder string
	claim  uint64
	expiry time.Duration // local
}

// voter is the grantor's side of the slots, in memory only: a restarted
// voter has lost it, hence the quarantine.
type voter struct {
	locks     map[uint32]*lock
	lockOf    map[string]uint32 // holder → slot of its lock here
	quarUntil time.Duration     // a restarted voter grants nothing before this
}

func newVoter() voter {
	return voter{locks: map[uint32]*lock{}, lockOf: map[string]uint32{}}
}

// quarantine makes a restarted voter refuse every grant until until: an
// earlier incarnation may have granted leases it no longer knows.
func (v *voter) quarantine(until time.Duration) { v.quarUntil = until }

// voterView is what the grant rule reads of the rest of the node.
type voterView struct {
	epoch  uint64 // the roster's epoch
	member bool   // this host is a voter of it
	frozen bool   // it accepted a roster change (§4.1): only renewals
	// lease is this host's own lease, for a claim that asks for none or
	// for more than maxLease.
	lease time.Duration
	// released is the highest claim id the claimant's row, as held here,
	// says it released; known is false when no row of it is held.
	released uint64
	known    bool
}

// grant applies the grantor rule (PROTOCOL.md §3) to claim m of host from:
// ok when granted; a refusal because another claim holds the slot names its
// holder.
func (v *voter) grant(now time.Duration, from string, m *Message, w voterView) (ok bool, holder string) {
	if now < v.quarUntil || m.Epoch != w.epoch || !w.member {
		return false, ""
	}
	if w.known && w.released >= m.Claim {
		return false, "" // a late claim its holder already released (reordering)
	}
	lease := m.Lease
	if lease <= 0 || lease > maxLease {
		lease = min(max(lease, w.lease), maxLease)
	}
	l := v.locks[m.Slot]
	active := l != nil && now < l.expiry
	if active && l.holder == from && l.claim == m.Claim {
		l.expiry = max(l.expiry, now+lease) // renewal of a valid lease, allowed while frozen
		return true, ""
	}
	if w.frozen {
		return false, ""
	}
	if active && (l.holder != from || m.Claim < l.claim) {
		return false, l.holder
	}
	// A host never holds two claims: a newer claim replaces its older lock.
	if s, ok := v.lockOf[from]; ok {
		if o := v.locks[s]; o != nil && o.holder == from && o.claim < m.Claim {
			v.drop(s)
		}
	}
	if l != nil {
		v.drop(m.Slot)
	}
	v.locks[m.Slot] = &lock{holder: from, claim: m.Claim, expiry: now + lease}
	v.lockOf[from] = m.Slot
	return true, ""
}

func (v *voter) drop(s uint32) {
	if l := v.locks[s]; l != nil {
		if v.lockOf[l.holder] == s {
			delete(v.lockOf, l.holder)
		}
		delete(v.locks, s)
	}
}

// release frees slot s if holder holds it with claim (a Release, or the
// holder's own claim ended). It reports whether a lock was freed.
func (v *voter) release(holder string, s uint32, claim uint64) bool {
	if l := v.locks[s]; l != nil && l.holder == holder && l.claim == claim {
		v.drop(s)
		return true
	}
	return false
}

// releasedUpTo frees the lock of holder if its row says it released the
// claim the lock is of (released ≥ that claim).
func (v *voter) releasedUpTo(holder string, released uint64) {
	if len(v.locks) == 0 {
		return
	}
	if s, ok := v.lockOf[holder]; ok {
		if l := v.locks[s]; l != nil && l.holder == holder && released >= l.claim {
			v.drop(s)
		}
	}
}

// active counts the locks that have not expired at now.
func (v *voter) active(now time.Duration) int {
	c := 0
	for _, l := range v.locks {
		if now < l.expiry {
			c++
		}
	}
	return c
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
}

// newClaim is claim id for slot under a roster of members voters of whom
// need make a majority, asking voters for lease (valid for validity after
// each round's send on this host's clock, Timing.holderValidity), to run
// rev (a rollback to it when rollback).
func newClaim(slot uint32, id, epoch uint64, lease, validity time.Duration, need, members int, voters []string, rollback bool, rev string) *claimState {
	return &claimState{
		slot: slot, id: id, epoch: epoch, lease: lease,
		need: need, members: members,
		sent: map[uint64]time.Duration{}, valid: map[string]uint64{}, perRound: map[uint64]int{}, refused: map[string]bool{},
		rechecked: map[string]bool{},
		validity:  validity,
		rollback:  rollback, rev: rev,
		voters: voters,
	}
}

// claimVoters picks the voters a claim asks: a majority plus a margin for
// loss (all of them in small groups), starting at a point that depends on the
// claim so that load spreads over the roster.
func claimVoters(ms []string, need int, host string, id uint64) []string {
	k := min(len(ms), need+max(2, len(ms)/8))
	if k == len(ms) {
		return ms
	}
	out := make([]string, 0, k)
	start := int(hash2(host, strconv.FormatUint(id, 10)) % uint64(len(ms)))
	for i := 0; len(out) < k; i++ {
		out = append(out, ms[(start+i)%len(ms)])
	}
	return out
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

// newRound starts the next round at now (a claim's first, or a renewal)
// and returns its Claim; grants older than eight rounds no longer count.
// The Claim names the target (rev, attempt) the claim is for.
func (c *claimState) newRound(now, claimTimeout time.Duration, rev string, attempt uint32) Message {
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
		c.deadline = now + claimTimeout
	}
	return c.message(rev, attempt)
}

// message is the Claim of c's current round.
func (c *claimState) message(rev string, attempt uint32) Message {
	return Message{Kind: KindClaim, Epoch: c.epoch, Slot: c.slot, Claim: c.id, Round: c.round, Revision: rev, Attempt: attempt, Lease: c.lease}
}

// grantOutcome is what a grant or refusal did to a claim.
type grantOutcome uint8

const (
	grantIgnored  grantOutcome = iota // not of this claim, of a round it did not send (or too old), or the claim is lost
	grantLapsed                       // the claim was acquired but its majority lapsed before this answer: stop first
	grantCounted                      // counted (or a refusal to ask again); nothing else changed
	grantMajority                     // not acquired yet, and a majority of grants is valid now
	grantRefused                      // not acquired, and more refusals than a majority allows: abandon it
)

// grant counts voter m.From's answer m at now. stale says that a refusal
// names a holder whose row here shows it no longer holds the slot: until
// the claim is acquired such a voter is asked again once, recheckDelay
// later, in the same round, instead of counting the refusal.
func (c *claimState) grant(now time.Duration, m *Message, stale bool, recheckDelay time.Duration) grantOutcome {
	if c.lost || m.Claim != c.id || m.Slot != c.slot {
		return grantIgnored
	}
	if _, ok := c.sent[m.Round]; !ok {
		return grantIgnored // a round this claim did not send, or one too old to count
	}
	if c.acquired && now >= c.holdUntil() {
		// The majority lapsed before this grant arrived: the lease is lost
		// even if this grant would extend it; stop first.
		return grantLapsed
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
		if !c.acquired && !c.rechecked[m.From] && stale {
			c.rechecked[m.From] = true
			c.recheckTo = append(c.recheckTo, m.From)
			if c.recheckAt == 0 {
				c.recheckAt = now + recheckDelay
			}
		} else {
			c.refused[m.From] = true
		}
	}
	if c.acquired {
		return grantCounted
	}
	if c.holdUntil() > now {
		return grantMajority
	}
	if len(c.refused) > len(c.voters)-c.need {
		return grantRefused
	}
	return grantCounted
}

// acquire records that the claim holds its slot from now: the first
// renewal is due renew later, and the fence is where the grants lapse.
func (c *claimState) acquire(now, renew time.Duration) {
	c.acquired = true
	c.nextRenew = now + renew
	c.fence = c.holdUntil()
}

// extendFence moves the fence to where the grants now lapse, if that is
// later; it reports the new fence.
func (c *claimState) extendFence() (time.Duration, bool) {
	if h := c.holdUntil(); h > c.fence {
		c.fence = h
		return h, true
	}
	return 0, false
}

// tickOutcome is what is due for a claim at a tick.
type tickOutcome uint8

const (
	tickNone    tickOutcome = iota
	tickAbandon             // not acquired, and the round's deadline passed
	tickRecheck             // ask the voters of recheckTo again (tick returns them)
	tickLapsed              // acquired, and the majority of valid grants lapsed
	tickRenew               // acquired, and a renewal round is due
)

// tick says what is due at now. For tickRecheck it returns the voters to
// ask again (the same round: a grant still counts from the round's first
// send, so nothing about validity changes, §3); for tickRenew it has
// scheduled the next renewal, renew later.
func (c *claimState) tick(now, renew time.Duration) (tickOutcome, []string) {
	if !c.acquired {
		if now >= c.deadline {
			return tickAbandon, nil
		}
		if c.recheckAt != 0 && now >= c.recheckAt {
			to := c.recheckTo
			c.recheckTo, c.recheckAt = c.recheckTo[:0], 0
			return tickRecheck, to
		}
		return tickNone, nil
	}
	if c.lost {
		return tickNone, nil // stopping: released when the daemon reports the end
	}
	if now >= c.holdUntil() {
		return tickLapsed, nil
	}
	if now >= c.nextRenew {
		c.nextRenew = now + renew
		return tickRenew, nil
	}
	return tickNone, nil
}

// due calls lower with every instant at which tick has something to do.
func (c *claimState) due(lower func(time.Duration)) {
	if c.lost {
		return
	}
	if c.acquired {
		lower(c.nextRenew)
		lower(c.holdUntil())
		return
	}
	lower(c.deadline)
	if c.recheckAt != 0 {
		lower(c.recheckAt)
	}
}

// claimant is the holder's side of the slots: at most one claim at a time,
// the backoff before the next one, and the Release of the last one until
// it goes out with the row written after it.
type claimant struct {
	cur       *claimState   // nil: no claim
	notBefore time.Duration // claim backoff: no new claim before this
	retries   int           // claims abandoned since the last one acquired (the backoff's jitter)
	release   *Message      // a Release to send with the next output
	releaseTo []string      // the voters the released claim asked
}

// backoff is the wait after a claim that did not reach a majority: longer
// the further this host is from the front of the order (pos: its real place,
// counting the hosts it passed over), plus a jitter of up to half a claim
// timeout that depends on host and the retries so far, so that the first
// host in the order wins duels.
func (cl *claimant) backoff(now time.Duration, host string, pos int, claimTimeout time.Duration) {
	cl.retries++
	jitter := time.Duration(hash2(host, strconv.Itoa(cl.retries)) % uint64(claimTimeout/2+1))
	cl.notBefore = now + claimTimeout*time.Duration(1+min(pos, 8)) + jitter
}

// end drops the current claim and returns it (nil: none).
func (cl *claimant) end() *claimState {
	c := cl.cur
	cl.cur = nil
	return c
}

// queueRelease holds Release m of an ended claim, to send to the voters it
// asked (to) with the next output, with the row written after it.
func (cl *claimant) queueRelease(m Message, to []string) {
	cl.release, cl.releaseTo = &m, to
}

// takeRelease returns the pending Release and its voters, and clears it.
func (cl *claimant) takeRelease() (*Message, []string) {
	m, to := cl.release, cl.releaseTo
	cl.release, cl.releaseTo = nil, nil
	return m, to
}
