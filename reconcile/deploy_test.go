package reconcile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// TestFitResult: a failure longer than a gossip row keeps its first line
// (the error) and the last lines of the output, within the limit.
func TestFitResult(t *testing.T) {
	long := "ValidateService failed: script at specified location: hook.sh failed with exit code 1; last output:\n" +
		strings.Repeat("noise line\n", 40) + "the real reason\n"
	got := FitResult(long, rollout.MaxString)
	if len(got) > rollout.MaxString || !strings.HasPrefix(got, "ValidateService failed: script at specified location: hook.sh failed with exit code 1") ||
		!strings.HasSuffix(got, "\nthe real reason") {
		t.Errorf("FitResult: %d bytes\n%s", len(got), got)
	}
	if s := "short\nfits"; FitResult(s, rollout.MaxString) != s {
		t.Errorf("a short result changed: %q", FitResult(s, rollout.MaxString))
	}
}

// TestDeployKnowsTheLastRevisions: Deploy remembers the last maxKnown
// revisions the source published (a decision naming one fetches it from
// the source), not every one an agent saw in months; a revision published
// again moves to the newest.
func TestDeployKnowsTheLastRevisions(t *testing.T) {
	d := &Deploy{}
	for i := range maxKnown + 3 {
		d.Desire(source.Revision{ID: fmt.Sprint("r", i)})
	}
	d.Desire(source.Revision{ID: "r3"}) // again: now the newest
	d.Desire(source.Revision{ID: "r100"})
	if n := len(d.KnownRevisions()); n != maxKnown {
		t.Errorf("%d revisions known, want %d", n, maxKnown)
	}
	for id, want := range map[string]bool{"r0": false, "r3": true, "r4": false, "r5": true, "r10": true, "r100": true} {
		if _, ok := d.Known(id); ok != want {
			t.Errorf("Known(%s) = %v, want %v", id, ok, want)
		}
	}
}
