package reconcile

import (
	"strings"
	"testing"

	"github.com/drover-dev/drover/reconcile/rollout"
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
