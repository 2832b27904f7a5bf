package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// oldRolloutState is a rollout state file as drover wrote it before the
// pause flag was part of rollout.Persisted (issue 10): no "Flag" key.
const oldRolloutState = `{"Incarnation":3,"Roster":{"Epoch":2,"Members":["h1","h2","h3"],"Lineage":"n1"},"Promised":{"Round":0,"Node":""},"Accepted":{"Round":0,"Node":""},"AccValue":null,"AccLineage":"","Row":{"Host":"h1","Seq":12884901895,"Revision":"v2","Attempt":0,"Phase":3,"Event":"","Result":"","Installed":"v2","Previous":"v1","Slot":0,"Claim":0,"Released":0,"Halted":false,"Epoch":2,"RosterHash":0,"AccBallot":{"Round":0,"Node":""},"AccHash":0,"Drained":false},"Halted":null,"Desired":{"Revision":"v2","ManifestID":"abc","Deployment":{"Strategy":"one-at-a-time","Batch":{"Set":false,"Percent":false,"Value":0},"Canary":{"Set":false,"Percent":false,"Value":0},"Bake":0,"MinimumHealthy":{"Set":false,"Percent":false,"Value":0},"Rollback":"","IgnoreApplicationStopFailures":false,"Paused":false,"Gates":null}},"HaveDesired":true}`

// TestRolloutStateOldFormatLoadsUnpaused: a state file of the older format
// loads whole, as "not paused" (the zero flag, older than any flag set
// since); the new format keeps the flag across a save and a load.
func TestRolloutStateOldFormatLoadsUnpaused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rollout", "hello.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(oldRolloutState), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := loadRolloutState(path)
	if err != nil {
		t.Fatalf("old state file: %v", err)
	}
	if st.Flag != (rollout.Flag{}) {
		t.Errorf("old state file: flag %+v, want none", st.Flag)
	}
	if st.Incarnation != 3 || st.Roster.Epoch != 2 || len(st.Roster.Members) != 3 || st.Row.Installed != "v2" || st.Row.Previous != "v1" || !st.HaveDesired {
		t.Errorf("old state file loaded as %+v", st)
	}
	st.Flag = rollout.Flag{Paused: true, Clock: 4, Node: "h2"}
	if err := saveRolloutState(path, st); err != nil {
		t.Fatal(err)
	}
	again, err := loadRolloutState(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Flag != st.Flag {
		t.Errorf("flag after save and load: %+v, want %+v", again.Flag, st.Flag)
	}
}
