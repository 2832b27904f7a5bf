package rollout

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/gate"
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
		// Encodings, not structs, are compared: a gate's value may be NaN.
		if err != nil || !bytes.Equal(Encode(&again), Encode(&m)) {
			t.Fatalf("accepted message does not round-trip: %v", err)
		}
	})
}

// The encodings of sampleMessages' row, flag and release before rows carried
// gates and flags a reason (the commit before them): an agent of that
// version decodes exactly these bytes, and this version must still produce
// them for a row without gates and a flag without a reason, and decode them.
var preGateEncodings = map[int]string{
	0: "010103776562016101618780808010027232090207496e7374616c6c0002723102723003636201044d0201620501",
	1: "010203776562016101030161",
	4: "010503776562016100020a000000000000066661696c65640000000001618780808010027232090207496e7374616c6c0002723102723003636201044d0201620501",
}

func TestWireWithoutGatesIsUnchanged(t *testing.T) {
	ms := sampleMessages()
	for i, want := range preGateEncodings {
		if got := hex.EncodeToString(Encode(&ms[i])); got != want {
			t.Errorf("%s: encoding changed\n got %s\nwant %s", ms[i].Kind, got, want)
		}
		b, _ := hex.DecodeString(want)
		m, err := Decode(b)
		if err != nil || !reflect.DeepEqual(m, ms[i]) {
			t.Errorf("%s: an older agent's bytes: %v\n got %+v", ms[i].Kind, err, m)
		}
	}
}

func gatedRow() Row {
	r := sampleMessages()[0].Row
	r.Gates = []GateState{
		{Name: "error-rate", Step: 2, Gen: 7, Verdict: gate.VerdictFail, Taken: 3, FailStreak: 2, Value: 0.17,
			Reason: `gate error-rate failed: value 0.17, query "sum(rate(errors[1m]))": 2 consecutive failed samples`},
		{Name: "latency", Step: 2, Gen: 7, Verdict: gate.VerdictPending, Taken: 1, InconcStreak: 1, Value: math.NaN()},
	}
	return r
}

func TestWireGatesRoundTrip(t *testing.T) {
	row := gatedRow()
	for _, m := range []Message{
		{Kind: KindRow, App: "web", From: "a", Row: row},
		{Kind: KindRelease, App: "web", From: "a", Slot: 1, Claim: 3, Row: row},
		{Kind: KindFlag, App: "web", From: "a", Flag: Flag{Paused: true, Clock: 8, Node: "a", Reason: "gate latency inconclusive: prometheus: unreachable"}},
	} {
		b := Encode(&m)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
		if !bytes.Equal(Encode(&got), b) || got.Flag != m.Flag || len(got.Row.Gates) != len(m.Row.Gates) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", m.Kind, got, m)
		}
		if len(got.Row.Gates) == 2 && (got.Row.Gates[0] != row.Gates[0] || !math.IsNaN(got.Row.Gates[1].Value)) {
			t.Errorf("%s: gates %+v", m.Kind, got.Row.Gates)
		}
	}
	good := Encode(&Message{Kind: KindRow, App: "web", From: "a", Row: row})
	for name, b := range map[string][]byte{
		"zero gates": append(Encode(&sampleMessages()[0]), 0),
		"truncated":  good[:len(good)-3],
		"trailing":   append(append([]byte{}, good...), 0),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

// A row of a realistic host with four active gates (the longest names a
// manifest allows) and one failure reason stays inside the broadcast limit
// of PROTOCOL.md §8 (1 KiB for the gossip envelope, 3 bytes of it header).
func TestWireGatedRowFitsABroadcast(t *testing.T) {
	r := Row{Host: "web-prod-eu-west-1a-0042.internal.example.com", Seq: 1<<40 | 99, Revision: strings.Repeat("f", 40),
		Attempt: 3, Phase: PhaseSucceeded, Result: "succeeded", Installed: strings.Repeat("f", 40), Previous: strings.Repeat("e", 40),
		Released: 1<<40 | 98, Epoch: 12, RosterHash: 1 << 60}
	for i := 0; i < 4; i++ {
		g := GateState{Name: strings.Repeat(string(rune('a'+i)), 63), Step: 40, Gen: 1 << 20, Taken: 100, FailStreak: 4, InconcStreak: 4, Value: 0.5}
		if i == 0 {
			g.Verdict, g.Reason = gate.VerdictFail, strings.Repeat("r", MaxGateReason)
		}
		r.Gates = append(r.Gates, g)
	}
	m := Message{Kind: KindRow, App: "hello-web", From: r.Host, Row: r}
	if n := EncodedSize(&m) + 3; n > 1<<10 {
		t.Errorf("a gated row takes %d bytes, more than a broadcast's 1024", n)
	}
}
