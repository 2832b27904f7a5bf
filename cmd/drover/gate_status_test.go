package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/drover-dev/drover/daemon"
)

// TestStatusPrintsAGateLinePerGate: `drover status` shows each gate with
// its step, verdict, value, samples and evaluator, and the reason of a
// verdict that stops the rollout.
func TestStatusPrintsAGateLinePerGate(t *testing.T) {
	v := 0.17
	st := &daemon.Status{Apps: []daemon.AppStatus{{Name: "hello", Group: "web", Active: true, Desired: "v2", Halted: true,
		Gates: []daemon.GateStatus{
			{Name: "error-rate", When: "bake", Step: 0, Verdict: "failed", Value: &v, Samples: 2, Evaluator: "web-1",
				Reason: `gate error-rate failed: value 0.17, query "sum(rate(errors[1m]))": 2 consecutive failed samples`},
			{Name: "latency", When: "batch", Verdict: "pending"},
		}}}}
	var b bytes.Buffer
	printStatusOpts(&b, st, statusOpts{})
	out := b.String()
	for _, want := range []string{
		`  gate error-rate (bake, step 0): failed, value 0.17 after 2 sample(s), evaluated by web-1: gate error-rate failed: value 0.17, query "sum(rate(errors[1m]))": 2 consecutive failed samples` + "\n",
		"  gate latency (batch, step 0): pending\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
