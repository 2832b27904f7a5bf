// Package deployid computes deployment IDs (DESIGN.md §2): "d-" and the
// first 12 hex digits of the sha256 of the ID's parts, each followed by a
// NUL byte, so that the boundaries between parts count. The rollout
// protocol (rollout.DeploymentID) and a deployment outside a fleet
// (hooks.DeploymentID) choose the parts; this package is the one hash.
//
// IDs are persisted (gossip rows, deployment records) and given to hook
// scripts as DEPLOYMENT_ID: for the same parts the value must never change.
package deployid

import (
	"crypto/sha256"
	"encoding/hex"
)

// Prefix starts every deployment ID.
const Prefix = "d-"

// Of returns the deployment ID of parts, in order.
func Of(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return Prefix + hex.EncodeToString(h.Sum(nil))[:12]
}
