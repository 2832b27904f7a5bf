package hooks

import "testing"

// TestDeploymentIDPinned pins IDs computed by the drover that first shipped
// this function: they are persisted in records and given to hook scripts
// as DEPLOYMENT_ID (drover deploy-local), so their values must not change.
func TestDeploymentIDPinned(t *testing.T) {
	for _, tt := range []struct {
		store, app, group, revision string
		seq                         int
		want                        string
	}{
		{"0123456789abcdef", "hello-web", "web-prod", "abc123", 1, "d-8a67e99d03bd"},
		{"0123456789abcdef", "hello-web", "web-prod", "abc123", 2, "d-eeb5466bf967"},
		{"", "hello-web", "web-prod", "abc123", 1, "d-13acdc871704"}, // an empty store ID still counts
		{"fedcba9876543210", "a", "g", "r", 0, "d-a20e469e58de"},
	} {
		if got := DeploymentID(tt.store, tt.app, tt.group, tt.revision, tt.seq); got != tt.want {
			t.Errorf("DeploymentID(%q, %q, %q, %q, %d) = %s, want %s", tt.store, tt.app, tt.group, tt.revision, tt.seq, got, tt.want)
		}
	}
}
