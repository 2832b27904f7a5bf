package reconcile

import (
	"testing"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// TestAppTellsStoredPauseAtOnce: an application built with a stored pause
// says paused before its loop's first snapshot (here: it is not started,
// so there is none), as `drover status` right after an agent's restart
// must.
func TestAppTellsStoredPauseAtOnce(t *testing.T) {
	a := NewApp(AppConfig{Name: "x", Group: "g", Host: "a", State: rollout.Persisted{Flag: rollout.Flag{Paused: true, Clock: 3, Node: "b"}}})
	if !a.Paused() {
		t.Error("an app built with a stored pause says not paused until the first snapshot")
	}
	if f := a.Flag(); f.Node != "b" || f.Clock != 3 {
		t.Errorf("flag %+v, want the stored one", f)
	}
}
