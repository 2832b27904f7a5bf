package gossip

import (
	"testing"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// TestAppTellsStoredPauseAtOnce: an application registered with a stored
// pause says paused before the driver's first snapshot (here: the cluster
// is not started, so there is none), as `drover status` right after an
// agent's restart must.
func TestAppTellsStoredPauseAtOnce(t *testing.T) {
	c, err := New(Config{NodeName: "a", Bind: "127.0.0.1:0", Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	app, err := c.App(AppConfig{Name: "x", Group: "g", State: rollout.Persisted{Flag: rollout.Flag{Paused: true, Clock: 3, Node: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !app.Paused() {
		t.Error("an app registered with a stored pause says not paused until the first snapshot")
	}
}
