package rollout

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleMessages() []Message {
	row := Row{Host: "a", Seq: 1<<32 | 7, Revision: "r2", Attempt: 9, Phase: PhaseRunning, Event: "Install",
		Installed: "r1", Previous: "r0", Slot: 3, Claim: 99, Released: 98, Halted: true, Epoch: 4, RosterHash: 77,
		AccBallot: Ballot{Round: 2, Node: "b"}, AccHash: 5, Drained: true}
	return []Message{
		{Kind: KindRow, App: "web", From: "a", Row: row},
		{Kind: KindFlag, App: "web", From: "a", Flag: Flag{Paused: true, Clock: 3, Node: "a"}},
		{Kind: KindClaim, App: "web", From: "a", Epoch: 4, Slot: 2, Claim: 10, Round: 1, Revision: "r2", Attempt: 9, Lease: 10 * time.Second},
		{Kind: KindGrant, App: "web", From: "b", Epoch: 4, Slot: 2, Claim: 10, Round: 1, OK: false, Holder: "c", Failed: []string{"d", "e"}},
		{Kind: KindRelease, App: "web", From: "a", Slot: 2, Claim: 10, Result: "failed", Row: row},
		{Kind: KindAccept, App: "web", From: "a", Epoch: 4, Ballot: Ballot{Round: 3, Node: "a"}, Members: []string{"a", "b", "c"}, Lineage: "0123456789abcdef"},
		{Kind: KindRosterResp, App: "web", From: "b", Epoch: 4, Members: []string{"a", "b"}, Lineage: "0123456789abcdef"},
		{Kind: KindPrepare, App: "web", From: "a", Epoch: 0, Ballot: Ballot{Round: 1, Node: "a"}, Expect: 5}, // the first roster (bootstrap_expect)
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		got, err := Decode(Encode(&m))
		if err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", m.Kind, got, m)
		}
	}
}

func TestWireRejects(t *testing.T) {
	good := Encode(&sampleMessages()[2])
	long := make([]byte, MaxMessage+1)
	for name, b := range map[string][]byte{
		"empty":      nil,
		"version":    append([]byte{9}, good[1:]...),
		"kind":       append([]byte{wireVersion, 0}, good[2:]...),
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte{}, good...), 0),
		"oversized":  long,
		"forged row": Encode(&Message{Kind: KindRow, App: "x", From: "a", Row: Row{Host: "b"}}),
		"no sender":  Encode(&Message{Kind: KindClaim, App: "x"}),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecode: the decoder never panics, and whatever it accepts re-encodes to
// the same bytes.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(&m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(&m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("accepted message does not round-trip: %v", err)
		}
	})
}
