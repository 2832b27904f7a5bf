package rollout

import "testing"

// TestDeploymentIDPinned pins IDs computed by the drover that first shipped
// this function: they are persisted in rows and records and given to hook
// scripts as DEPLOYMENT_ID, so a change of value would break running fleets.
func TestDeploymentIDPinned(t *testing.T) {
	for _, tt := range []struct {
		lineage, app, group, revision string
		attempt                       uint32
		want                          string
	}{
		{"", "hello-web", "web-prod", "3f2a9c1d", 1, "d-00c268693a06"}, // a roster of an older drover
		{"", "hello-web", "web-prod", "3f2a9c1d", 2, "d-53e79d466599"},
		{"lineage-1", "hello-web", "web-prod", "3f2a9c1d", 1, "d-4fb27569bc73"},
		{"9c1f0e2a", "a", "g", "r", 0, "d-5ef471cf0956"},
		{"", "", "", "", 0, "d-c5c464c35192"},
	} {
		if got := DeploymentID(tt.lineage, tt.app, tt.group, tt.revision, tt.attempt); got != tt.want {
			t.Errorf("DeploymentID(%q, %q, %q, %q, %d) = %s, want %s", tt.lineage, tt.app, tt.group, tt.revision, tt.attempt, got, tt.want)
		}
	}
}
