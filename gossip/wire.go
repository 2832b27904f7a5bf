package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// Wire format (PROTOCOL.md §8). Everything this package puts on the wire,
// as a memberlist user message, a broadcast or a push-pull state, is one
// envelope:
//
//	magic 'd' | version 1 | kind | body
//
// kind 1 (message): body = rollout.Encode of one message.
// kind 2 (state):   body = uvarint count, then count × (uvarint length, rollout.Encode).
// kind 3 (leave):   body = uvarint length, node name: the sender leaves on purpose.
//
// Node metadata is separate: version 1 | uvarint count | count × (uvarint length, group).
const (
	wireMagic   = 'd'
	wireVersion = 1

	kindMessage = 1
	kindState   = 2
	kindLeave   = 3

	envelopeHeader = 3

	// maxEnvelope bounds a single-message envelope.
	maxEnvelope = envelopeHeader + rollout.MaxMessage
	// maxState bounds a push-pull state (every row of every application).
	maxState = 16 << 20
	// maxStateMessages bounds the messages of one push-pull state.
	maxStateMessages = 1 << 16
	// maxBroadcast bounds a gossiped message (PROTOCOL.md §8); a larger row
	// travels by push-pull only.
	maxBroadcast = 1 << 10

	metaVersion = 1
	maxGroup    = rollout.MaxString
)

// Drop reasons reported through Stats.Dropped. The application's loop
// reports its own through the same counter (reconcile.DropStale,
// DropUnsent, DropOverflow).
const (
	DropMalformed  = "malformed"   // not a well-formed envelope or message
	DropOversized  = "oversized"   // over a size limit
	DropVersion    = "version"     // an envelope or metadata version this build does not speak
	DropUnknownApp = "unknown-app" // a message for an application this host does not run
	DropUnsent     = "unsent"      // an outbound message that could not be sent (queue full, no address, too large to gossip)
)

// wireError is a decoding failure with the Stats reason it counts under.
type wireError struct {
	reason string
	err    error
}

func (e *wireError) Error() string { return "decode gossip envelope: " + e.err.Error() }
func (e *wireError) Unwrap() error { return e.err }

func werr(reason, format string, a ...any) error {
	return &wireError{reason: reason, err: fmt.Errorf(format, a...)}
}

// reasonOf returns the Stats reason of a decoding error.
func reasonOf(err error) string {
	var we *wireError
	if errors.As(err, &we) {
		return we.reason
	}
	return DropMalformed
}

// appendMessage appends the envelope of one message to b.
func appendMessage(b []byte, m *rollout.Message) []byte {
	b = append(b, wireMagic, wireVersion, kindMessage)
	return rollout.AppendEncode(b, m)
}

// encodeState packs messages into one state envelope.
func encodeState(ms []rollout.Message) []byte {
	b := make([]byte, 0, 64+len(ms)*128)
	b = append(b, wireMagic, wireVersion, kindState)
	b = binary.AppendUvarint(b, uint64(len(ms)))
	var scratch []byte
	for i := range ms {
		scratch = rollout.AppendEncode(scratch[:0], &ms[i])
		b = binary.AppendUvarint(b, uint64(len(scratch)))
		b = append(b, scratch...)
	}
	return b
}

// appendLeave appends a leave intent of node to b.
func appendLeave(b []byte, node string) []byte {
	b = append(b, wireMagic, wireVersion, kindLeave)
	b = binary.AppendUvarint(b, uint64(len(node)))
	return append(b, node...)
}

// decodeEnvelope parses an envelope: the messages it carries, or the node
// whose leave intent it is. It never panics and never keeps a reference to b.
func decodeEnvelope(b []byte) ([]rollout.Message, string, error) {
	ms, err := decodeMessages(b)
	if err == nil || !errors.Is(err, errLeave) {
		return ms, "", err
	}
	body := b[envelopeHeader:]
	n, k := binary.Uvarint(body)
	if k <= 0 || n == 0 || n > rollout.MaxString || n != uint64(len(body)-k) {
		return nil, "", werr(DropMalformed, "bad leave intent")
	}
	return nil, string(body[k:]), nil
}

// errLeave marks a leave intent for decodeEnvelope.
var errLeave = errors.New("leave intent")

func decodeMessages(b []byte) ([]rollout.Message, error) {
	if len(b) > maxState {
		return nil, werr(DropOversized, "%d bytes, limit %d", len(b), maxState)
	}
	if len(b) < envelopeHeader {
		return nil, werr(DropMalformed, "truncated header")
	}
	if b[0] != wireMagic {
		return nil, werr(DropMalformed, "bad magic %#x", b[0])
	}
	if b[1] != wireVersion {
		return nil, werr(DropVersion, "version %d, want %d", b[1], wireVersion)
	}
	body := b[envelopeHeader:]
	switch b[2] {
	case kindMessage:
		if len(b) > maxEnvelope {
			return nil, werr(DropOversized, "message of %d bytes, limit %d", len(b), maxEnvelope)
		}
		m, err := rollout.Decode(body)
		if err != nil {
			return nil, werr(DropMalformed, "%w", err)
		}
		return []rollout.Message{m}, nil
	case kindState:
		n, k := binary.Uvarint(body)
		if k <= 0 {
			return nil, werr(DropMalformed, "bad state count")
		}
		body = body[k:]
		if n > maxStateMessages {
			return nil, werr(DropOversized, "%d messages in a state, limit %d", n, maxStateMessages)
		}
		if n > uint64(len(body)) { // every message takes at least one byte
			return nil, werr(DropMalformed, "state count %d over %d bytes", n, len(body))
		}
		out := make([]rollout.Message, 0, n)
		for i := uint64(0); i < n; i++ {
			l, k := binary.Uvarint(body)
			if k <= 0 {
				return nil, werr(DropMalformed, "bad length of state message %d", i)
			}
			body = body[k:]
			if l > rollout.MaxMessage {
				return nil, werr(DropOversized, "state message %d of %d bytes, limit %d", i, l, rollout.MaxMessage)
			}
			if l > uint64(len(body)) {
				return nil, werr(DropMalformed, "state message %d truncated", i)
			}
			m, err := rollout.Decode(body[:l])
			if err != nil {
				return nil, werr(DropMalformed, "state message %d: %w", i, err)
			}
			out = append(out, m)
			body = body[l:]
		}
		if len(body) != 0 {
			return nil, werr(DropMalformed, "%d trailing bytes after the state", len(body))
		}
		return out, nil
	case kindLeave:
		if len(b) > envelopeHeader+1+rollout.MaxString+1 {
			return nil, werr(DropOversized, "leave intent of %d bytes", len(b))
		}
		return nil, errLeave
	default:
		return nil, werr(DropMalformed, "unknown kind %d", b[2])
	}
}

// encodeMeta encodes this host's groups as node metadata.
func encodeMeta(groups []string) ([]byte, error) {
	b := []byte{metaVersion}
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		if g == "" || len(g) > maxGroup {
			return nil, fmt.Errorf("group %q: length must be 1..%d bytes", g, maxGroup)
		}
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("groups %q take %d bytes of node metadata, limit %d", groups, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta parses node metadata. Empty metadata is a host with no groups.
func decodeMeta(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, werr(DropOversized, "metadata of %d bytes", len(b))
	}
	if b[0] != metaVersion {
		return nil, werr(DropVersion, "metadata version %d, want %d", b[0], metaVersion)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, werr(DropMalformed, "bad metadata group count")
	}
	b = b[k:]
	out := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l == 0 || l > maxGroup || l > uint64(len(b)-k) {
			return nil, werr(DropMalformed, "bad metadata group %d", i)
		}
		out = append(out, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, werr(DropMalformed, "trailing metadata bytes")
	}
	return out, nil
}
