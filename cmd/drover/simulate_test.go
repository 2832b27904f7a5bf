package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSimulateFaultFlags runs `drover simulate` with the fault kinds of
// issue 9: clean with the supervisor fence, and exit 1 with P1 violations
// under the hidden mutation that leaves a paused agent's hook running.
func TestSimulateFaultFlags(t *testing.T) {
	args := []string{"simulate", "--hosts", "50", "--strategy", "one-at-a-time", "--seeds", "6", "--hook-seconds", "4",
		"--pauses", "--slow-hooks", "0.3", "--gray-cuts", "--duplicate", "0.05", "--drift-extremes", "--loss", "0.01", "--json"}
	r := drover(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("simulate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep simulateReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("simulate --json: %v\n%s", err, r.stdout)
	}
	if rep.Violations != 0 || rep.Completed != rep.Expected || rep.Expected != 6 {
		t.Errorf("violations %d, completed %d of %d expected: %+v", rep.Violations, rep.Completed, rep.Expected, rep)
	}
	for _, k := range []string{"pause", "duplicate", "drift-fast-host", "drift-slow-host", "slow-hook"} {
		if rep.Faults[k] == 0 {
			t.Errorf("fault %q not counted: %v", k, rep.Faults)
		}
	}
	gray := 0
	for k, v := range rep.Faults {
		if strings.HasPrefix(k, "gray-") {
			gray += v
		}
	}
	if gray == 0 {
		t.Errorf("no gray cut counted: %v", rep.Faults)
	}

	m := drover(t, nil, append(args[:len(args)-1], "--no-supervisor-fence")...)
	if m.code != 1 || !strings.Contains(m.stdout, "P1:") {
		t.Errorf("--no-supervisor-fence: exit %d, want 1 with P1 violations\n%s%s", m.code, m.stdout, m.stderr)
	}

	bad := drover(t, nil, "simulate", "--duplicate", "1.5")
	if bad.code == 0 || !strings.Contains(bad.stderr, "--duplicate") {
		t.Errorf("--duplicate 1.5: exit %d, stderr %q", bad.code, bad.stderr)
	}
}

// TestSimulateGateFlags: a scripted gate failing at step 1 halts every run,
// one inconclusive at step 0 pauses until the operator's resume and the
// rollouts complete, both under crashes of the evaluators, without a
// violation of the gate checks.
func TestSimulateGateFlags(t *testing.T) {
	for _, tt := range []struct {
		flag   string
		halted bool
		fault  string
	}{{"--gate-fail-at", true, "gate-fail"}, {"--gate-inconclusive-at", false, "gate-resume"}} {
		step := "1"
		if !tt.halted {
			step = "0"
		}
		r := drover(t, nil, "simulate", "--hosts", "12", "--strategy", "rolling", "--batch", "3", "--seeds", "6", "--hook-seconds", "4",
			"--crashes", "--loss", "0.02", tt.flag, step, "--json")
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", tt.flag, r.code, r.stdout, r.stderr)
		}
		var rep simulateReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("simulate --json: %v\n%s", err, r.stdout)
		}
		if rep.Violations != 0 || rep.Completed != 6 || (rep.Halted == 6) != tt.halted || rep.Faults[tt.fault] != 6 || rep.GateBoundSeconds == 0 {
			t.Errorf("%s %s: %+v", tt.flag, step, rep)
		}
	}
	if bad := drover(t, nil, "simulate", "--gate-fail-at", "-2"); bad.code == 0 || !strings.Contains(bad.stderr, "--gate-fail-at") {
		t.Errorf("--gate-fail-at -2: exit %d, stderr %q", bad.code, bad.stderr)
	}
}
