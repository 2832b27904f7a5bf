package rollout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/drover-dev/drover/reconcile/gate"
)

// Wire limits (PROTOCOL.md §8).
const (
	MaxString   = 255
	MaxList     = 4096
	MaxMessage  = 64 << 10
	wireVersion = 1
	// MaxRowGates bounds the gate states one row carries (a manifest
	// declares at most 16 gates, manifest.MaxGates).
	MaxRowGates = 16
	// MaxGateReason and MaxFlagReason bound the reasons a row's gate state
	// and a flag carry (PROTOCOL.md §10).
	MaxGateReason = 160
	MaxFlagReason = 200
)

// ClipString cuts s to at most max bytes on a UTF-8 boundary, ending it with
// "…" when cut: a row's strings travel with a length limit (MaxString), and
// a result longer than that would make the row undecodable everywhere else.
func ClipString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// ErrMalformed is returned (wrapped) for any message that cannot be decoded.
var ErrMalformed = errors.New("malformed rollout message")

type enc struct{ b []byte }

func (e *enc) u(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) s(v string)   { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) byte(v uint8) { e.b = append(e.b, v) }
func (e *enc) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}
func (e *enc) list(v []string) {
	e.u(uint64(len(v)))
	for _, s := range v {
		e.s(s)
	}
}

// AppendEncode appends m's encoding (version byte first) to b.
func AppendEncode(b []byte, m *Message) []byte {
	e := enc{b: b}
	e.byte(wireVersion)
	e.byte(uint8(m.Kind))
	e.s(m.App)
	e.s(m.From)
	switch m.Kind {
	case KindRow:
		e.row(&m.Row)
	case KindFlag:
		e.bool(m.Flag.Paused)
		e.u(m.Flag.Clock)
		e.s(m.Flag.Node)
		if m.Flag.Reason != "" {
			e.s(m.Flag.Reason) // optional trailing field: a flag without one encodes as before
		}
	default:
		e.u(m.Epoch)
		if m.Kind.paxos() {
			e.u(uint64(m.Expect))
		} else {
			e.u(uint64(m.Slot))
		}
		e.u(m.Claim)
		e.u(m.Round)
		e.bool(m.OK)
		e.s(m.Holder)
		e.s(m.Revision)
		e.u(uint64(m.Attempt))
		e.u(uint64(m.Lease / time.Millisecond))
		if m.Kind.lineageInResult() {
			e.s(m.Lineage)
		} else {
			e.s(m.Result)
		}
		e.u(m.Ballot.Round)
		e.s(m.Ballot.Node)
		e.list(m.Members)
		e.list(m.Failed)
		if m.Kind == KindRelease {
			e.row(&m.Row) // the holder's new row travels with its release
		}
	}
	return e.b
}

func (e *enc) row(r *Row) {
	e.s(r.Host)
	e.u(r.Seq)
	e.s(r.Revision)
	e.u(uint64(r.Attempt))
	e.byte(uint8(r.Phase))
	e.s(r.Event)
	e.s(r.Result)
	e.s(r.Installed)
	e.s(r.Previous)
	e.u(uint64(r.Slot))
	e.u(r.Claim)
	e.u(r.Released)
	e.bool(r.Halted)
	e.u(r.Epoch)
	e.u(r.RosterHash)
	e.u(r.AccBallot.Round)
	e.s(r.AccBallot.Node)
	e.u(r.AccHash)
	e.bool(r.Drained)
	// Optional trailing section (a row is always the last field of its
	// message): a row without gates encodes exactly as before gates, so
	// agents that predate them still decode it.
	if len(r.Gates) > 0 {
		e.u(uint64(len(r.Gates)))
		for i := range r.Gates {
			g := &r.Gates[i]
			e.s(g.Name)
			e.u(uint64(g.Step))
			e.u(g.Gen)
			e.byte(uint8(g.Verdict))
			e.u(uint64(g.Taken))
			e.u(uint64(g.FailStreak))
			e.u(uint64(g.InconcStreak))
			e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(g.Value))
			e.s(g.Reason)
		}
	}
}

// Encode returns m's encoding.
func Encode(m *Message) []byte { return AppendEncode(nil, m) }

// EncodedSize is len(Encode(m)) without keeping the bytes.
func EncodedSize(m *Message) int { return len(AppendEncode(make([]byte, 0, 128), m)) }

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) u32() uint32 {
	v := d.u()
	if v > 1<<32-1 {
		d.fail("integer out of range")
	}
	return uint32(v)
}

func (d *dec) byte() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil {
		return ""
	}
	if n > MaxString || n > uint64(len(d.b)) {
		d.fail("string too long or truncated")
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) list() []string {
	n := d.u()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > MaxList || n > uint64(len(d.b)) {
		d.fail("list too long or truncated")
		return nil
	}
	v := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		v = append(v, d.s())
	}
	return v
}

// Decode parses one message. It never panics; every failure wraps ErrMalformed.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessage {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxMessage)
	}
	d := dec{b: b}
	if v := d.byte(); d.err == nil && v != wireVersion {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	m.Kind = Kind(d.byte())
	if d.err == nil && (m.Kind == 0 || m.Kind >= kindMax) {
		return m, fmt.Errorf("%w: kind %d", ErrMalformed, m.Kind)
	}
	m.App = d.s()
	m.From = d.s()
	switch m.Kind {
	case KindRow:
		d.row(&m.Row)
		if d.err == nil && m.Row.Host != m.From {
			d.fail("row not written by its sender")
		}
	case KindFlag:
		m.Flag.Paused = d.bool()
		m.Flag.Clock = d.u()
		m.Flag.Node = d.s()
		if d.err == nil && len(d.b) > 0 {
			m.Flag.Reason = d.s()
			if d.err == nil && (m.Flag.Reason == "" || len(m.Flag.Reason) > MaxFlagReason) {
				d.fail("bad flag reason")
			}
		}
	default:
		m.Epoch = d.u()
		if m.Kind.paxos() {
			m.Expect = d.u32()
		} else {
			m.Slot = d.u32()
		}
		m.Claim = d.u()
		m.Round = d.u()
		m.OK = d.bool()
		m.Holder = d.s()
		m.Revision = d.s()
		m.Attempt = d.u32()
		ms := d.u()
		if ms > uint64(24*time.Hour/time.Millisecond) {
			d.fail("lease out of range")
		}
		m.Lease = time.Duration(ms) * time.Millisecond
		if m.Kind.lineageInResult() {
			m.Lineage = d.s()
		} else {
			m.Result = d.s()
		}
		m.Ballot.Round = d.u()
		m.Ballot.Node = d.s()
		m.Members = d.list()
		m.Failed = d.list()
		if m.Kind == KindRelease {
			d.row(&m.Row)
			if d.err == nil && m.Row.Host != m.From {
				d.fail("row not written by its sender")
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err == nil && m.From == "" {
		d.fail("no sender")
	}
	return m, d.err
}

func (d *dec) row(r *Row) {
	r.Host = d.s()
	r.Seq = d.u()
	r.Revision = d.s()
	r.Attempt = d.u32()
	r.Phase = Phase(d.byte())
	if r.Phase >= phaseCount {
		d.fail("bad phase")
	}
	r.Event = d.s()
	r.Result = d.s()
	r.Installed = d.s()
	r.Previous = d.s()
	r.Slot = d.u32()
	r.Claim = d.u()
	r.Released = d.u()
	r.Halted = d.bool()
	r.Epoch = d.u()
	r.RosterHash = d.u()
	r.AccBallot.Round = d.u()
	r.AccBallot.Node = d.s()
	r.AccHash = d.u()
	r.Drained = d.bool()
	if d.err != nil || len(d.b) == 0 {
		return // a row without gates (or from an agent that predates them)
	}
	k := d.u()
	if d.err == nil && (k == 0 || k > MaxRowGates) {
		d.fail("bad gate count") // 0 would not re-encode the same
		return
	}
	r.Gates = make([]GateState, 0, k)
	for i := uint64(0); i < k && d.err == nil; i++ {
		var g GateState
		g.Name = d.s()
		g.Step = d.u32()
		g.Gen = d.u()
		g.Verdict = gate.Verdict(d.byte())
		if g.Verdict > gate.VerdictInconclusive {
			d.fail("bad gate verdict")
		}
		g.Taken = d.u32()
		g.FailStreak = d.u32()
		g.InconcStreak = d.u32()
		if d.err == nil {
			if len(d.b) < 8 {
				d.fail("truncated")
			} else {
				g.Value = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
				d.b = d.b[8:]
			}
		}
		g.Reason = d.s()
		if d.err == nil && (g.Name == "" || len(g.Reason) > MaxGateReason) {
			d.fail("bad gate state")
		}
		r.Gates = append(r.Gates, g)
	}
}
