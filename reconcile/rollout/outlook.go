package rollout

import (
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// BakeUntil is when the canary step's bake ends, as this node counts it
// (from when it saw the canary hosts installed), while the rollout waits
// for it; 0 when it does not wait for a bake. Status uses it to say why a
// canary rollout does not go on.
func (n *Node) BakeUntil() time.Duration {
	if n.strat.pol.Strategy != manifest.Canary || n.strat.bakeFrom == 0 || n.st.Desired.Deployment.Bake <= 0 {
		return 0
	}
	return n.strat.bakeFrom + n.st.Desired.Deployment.Bake
}
