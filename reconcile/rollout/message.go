package rollout

import "time"

// Kind is a message type.
type Kind uint8

// Message kinds. Rows and flags are broadcast; the rest are direct.
const (
	KindRow Kind = iota + 1
	KindFlag
	KindClaim    // claim or renew a slot
	KindGrant    // reply to a claim
	KindRelease  // holder stopped using a claim
	KindPrepare  // Paxos phase 1 for roster Epoch+1
	KindPromise  //
	KindAccept   // Paxos phase 2
	KindAccepted // answer to an accept; counted for the first roster only (see onAccepted)
	KindRosterReq
	KindRosterResp
	kindMax
)

var kindNames = [...]string{"", "row", "flag", "claim", "grant", "release", "prepare", "promise", "accept", "accepted", "roster-req", "roster-resp"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Message is every protocol message; the fields used depend on Kind.
type Message struct {
	Kind     Kind
	App      string
	From     string
	Epoch    uint64
	Slot     uint32
	Claim    uint64
	Round    uint64
	OK       bool
	Holder   string
	Revision string
	Attempt  uint32
	Lease    time.Duration // claim: lease asked for, honoured by the grantor
	// Expect: prepare and accept of epoch 0 (the first roster), the
	// sender's bootstrap_expect; an acceptor with another value refuses.
	// On the wire it takes Slot's place, which Paxos messages do not use.
	Expect uint32
	Result string
	// Lineage: roster responses and Paxos messages, the roster's lineage
	// (Roster.Lineage; for prepare/promise/accept, the one proposed or
	// accepted with the value). On the wire it takes Result's place, which
	// those kinds do not use, so older agents ignore it.
	Lineage string
	Ballot  Ballot
	Members []string // accept, promise (accepted value), roster-resp
	Failed  []string // grant: failures the voter knows for Revision/Attempt
	Row     Row      // KindRow
	Flag    Flag     // KindFlag
}

// paxos reports whether k is a Paxos message of a roster change.
func (k Kind) paxos() bool {
	return k == KindPrepare || k == KindPromise || k == KindAccept || k == KindAccepted
}

// lineageInResult reports whether the kind's Result slot on the wire holds
// Message.Lineage.
func (k Kind) lineageInResult() bool { return k.paxos() || k == KindRosterResp }

// Broadcast reports whether m travels by gossip rather than directly.
func (m *Message) Broadcast() bool { return m.Kind == KindRow || m.Kind == KindFlag }

// Reliable reports whether m must also travel over a stream (TCP), not
// only as a datagram: roster and Paxos messages are rare and a group
// cannot form or change its voters without them, and a firewall that drops
// UDP between some hosts while TCP passes (memberlist still shows them
// alive through its TCP fallback ping) must not leave a host without the
// roster forever. Claims, grants and releases stay datagrams: they are
// frequent, a lost one costs a retry, and a side cut off from a majority
// must not progress anyway.
func (m *Message) Reliable() bool {
	switch m.Kind {
	case KindPrepare, KindPromise, KindAccept, KindAccepted, KindRosterReq, KindRosterResp:
		return true
	}
	return false
}
