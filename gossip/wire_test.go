package gossip

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

func sampleMessages() []rollout.Message {
	return []rollout.Message{
		{Kind: rollout.KindRow, App: "web", From: "h1", Row: rollout.Row{
			Host: "h1", Seq: 1<<32 | 7, Revision: "r2", Attempt: 3, Phase: rollout.PhaseRunning, Event: "Install",
			Installed: "r1", Previous: "r0", Slot: 1, Claim: 9, Released: 8, Epoch: 2, RosterHash: 77,
			AccBallot: rollout.Ballot{Round: 2, Node: "h2"}, AccHash: 5, Drained: true,
		}},
		{Kind: rollout.KindFlag, App: "web", From: "h3", Flag: rollout.Flag{Paused: true, Clock: 4, Node: "h3"}},
		{Kind: rollout.KindClaim, App: "web", From: "h2", Epoch: 2, Slot: 0, Claim: 11, Round: 1, Revision: "r2", Lease: 600 * time.Millisecond},
		{Kind: rollout.KindAccept, App: "web", From: "h2", Epoch: 2, Ballot: rollout.Ballot{Round: 3, Node: "h2"}, Members: []string{"h1", "h2", "h3"}},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	ms := sampleMessages()
	for _, m := range ms {
		got, _, err := decodeEnvelope(appendMessage(nil, &m))
		if err != nil {
			t.Fatalf("decode %s: %v", m.Kind, err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], m) {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", m.Kind, got, m)
		}
	}
	got, _, err := decodeEnvelope(encodeState(ms))
	if err != nil {
		t.Fatalf("decode state: %v", err)
	}
	if !reflect.DeepEqual(got, ms) {
		t.Fatalf("state round trip:\n got %+v\nwant %+v", got, ms)
	}
	if got, _, err := decodeEnvelope(encodeState(nil)); err != nil || len(got) != 0 {
		t.Fatalf("empty state: %v, %v", got, err)
	}
	if got, who, err := decodeEnvelope(appendLeave(nil, "h7")); err != nil || who != "h7" || got != nil {
		t.Fatalf("leave intent: %v, %q, %v", got, who, err)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	m := sampleMessages()[0]
	good := appendMessage(nil, &m)
	with := func(i int, b byte) []byte { c := bytes.Clone(good); c[i] = b; return c }
	state := encodeState(sampleMessages())
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"empty", nil, DropMalformed},
		{"short", []byte{'d', 1}, DropMalformed},
		{"magic", with(0, 'x'), DropMalformed},
		{"version", with(1, 2), DropVersion},
		{"kind", with(2, 9), DropMalformed},
		{"truncated message", good[:len(good)-1], DropMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), DropMalformed},
		{"oversized message", append([]byte{'d', 1, kindMessage}, make([]byte, rollout.MaxMessage+1)...), DropOversized},
		{"oversized state", make([]byte, maxState+1), DropOversized},
		{"state truncated", state[:len(state)-2], DropMalformed},
		{"state trailing", append(bytes.Clone(state), 1), DropMalformed},
		{"state count too large", []byte{'d', 1, kindState, 0xff, 0xff, 0x7f}, DropOversized},
		{"state count over bytes", []byte{'d', 1, kindState, 5, 1}, DropMalformed},
		{"leave without name", []byte{'d', 1, kindLeave, 0}, DropMalformed},
		{"leave truncated", appendLeave(nil, "host")[:6], DropMalformed},
		{"leave oversized", appendLeave(nil, strings.Repeat("h", 300)), DropOversized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeEnvelope(tt.in)
			if err == nil {
				t.Fatal("decoded; want an error")
			}
			if r := reasonOf(err); r != tt.reason {
				t.Fatalf("reason %q (%v), want %q", r, err, tt.reason)
			}
		})
	}
}

func TestMeta(t *testing.T) {
	groups := []string{"web-prod", "batch"}
	b, err := encodeMeta(groups)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil || !reflect.DeepEqual(got, groups) {
		t.Fatalf("meta round trip: %q, %v", got, err)
	}
	if got, err := decodeMeta(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty meta: %q, %v", got, err)
	}
	if _, err := decodeMeta(append([]byte{2}, b[1:]...)); reasonOf(err) != DropVersion {
		t.Fatalf("meta version 2: %v", err)
	}
	long := make([]string, 0, 10)
	for range 10 {
		long = append(long, strings.Repeat("g", 60))
	}
	if _, err := encodeMeta(long); err == nil {
		t.Fatalf("%d groups of 60 bytes fit in %d bytes of metadata?", len(long), memberlist.MetaMaxSize)
	}
	if _, err := encodeMeta([]string{""}); err == nil {
		t.Fatal("an empty group name was accepted")
	}
}

// FuzzDecode: the envelope decoder never panics, and whatever it accepts
// re-encodes to something that decodes to the same messages.
func FuzzDecode(f *testing.F) {
	ms := sampleMessages()
	for i := range ms {
		f.Add(appendMessage(nil, &ms[i]))
	}
	f.Add(encodeState(ms))
	f.Add(encodeState(nil))
	f.Add([]byte{'d', 1, kindState, 2, 1, 1})
	f.Add([]byte("d\x01\x09"))
	f.Add(appendLeave(nil, "h1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, who, err := decodeEnvelope(b)
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if who != "" {
			if _, again, err := decodeEnvelope(appendLeave(nil, who)); err != nil || again != who {
				t.Fatalf("leave intent of %q re-decoded as %q, %v", who, again, err)
			}
			return
		}
		again, _, err := decodeEnvelope(encodeState(got))
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if len(got) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("re-decoded\n%+v\nwant\n%+v", again, got)
		}
	})
}

// FuzzDecodeMeta: node metadata from peers never panics the decoder, and
// what it accepts re-encodes to the same bytes.
func FuzzDecodeMeta(f *testing.F) {
	b, _ := encodeMeta([]string{"web-prod", "batch"})
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 3, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		groups, err := decodeMeta(b)
		if err != nil || len(b) == 0 {
			return
		}
		again, err := encodeMeta(groups)
		if err != nil {
			t.Fatalf("accepted metadata %q does not re-encode: %v", groups, err)
		}
		if g2, _ := decodeMeta(again); !reflect.DeepEqual(g2, groups) {
			t.Fatalf("re-decoded %q, want %q", g2, groups)
		}
	})
}
