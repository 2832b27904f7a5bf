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
