package hooks

import (
	"testing"
	"time"
)

// waitFor polls cond until it holds or a generous deadline passes. It is
// for conditions on other processes, which cannot signal the test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
