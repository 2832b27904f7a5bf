package rollout

import "github.com/drover-dev/drover/reconcile/manifest"

// Policy is a manifest's Deployment resolved against a group of n hosts.
type Policy struct {
	Strategy manifest.Strategy
	N        int
	Window   int // after the canary step for canary; 0 for all-at-once (no claims)
	Canary   int // canary step size (canary only)
	// MinHealthyGate gates starts: a start must leave at least this many healthy
	// hosts (running, failed and, when Explicit, unreachable waiting hosts are
	// unhealthy). -1: no gate beyond the window.
	MinHealthyGate int
	// MinHealthyHalt: the rollout halts when n − failed < MinHealthyHalt + 1,
	// i.e. failed ≥ n − MinHealthyHalt.
	MinHealthyHalt int
	Explicit       bool
	Rollback       bool
}

// countOf resolves a count-or-percent for sizes (window, canary): percentages
// round down, with at least one host.
func countOf(q manifest.Quantity, n int) int {
	v := q.Value
	if q.Percent {
		v = n * q.Value / 100
	}
	return max(1, min(v, max(n, 1)))
}

// MinHealthyOf resolves minimum_healthy as CodeDeploy does: a FLEET_PERCENT
// converts to hosts rounding fractional hosts up; the result is clamped to
// n−1 so that at least one host can proceed.
func MinHealthyOf(q manifest.Quantity, n int) int {
	v := q.Value
	if q.Percent {
		v = (n*q.Value + 99) / 100
	}
	return max(0, min(v, n-1))
}

// Resolve computes the policy of d for a group of n hosts.
func Resolve(d manifest.Deployment, n int) Policy {
	n = max(n, 1)
	p := Policy{Strategy: d.Strategy, N: n, Rollback: d.Rollback != manifest.RollbackNever, MinHealthyGate: -1}
	batch := 1
	if d.Batch.Set {
		batch = countOf(d.Batch, n)
	}
	switch d.Strategy {
	case manifest.AllAtOnce:
		p.Window = 0
		p.MinHealthyHalt = 0
	case manifest.Rolling:
		p.Window = batch
		p.MinHealthyHalt = max(0, n-batch)
		p.MinHealthyGate = p.MinHealthyHalt
	case manifest.Canary:
		p.Canary = 1
		if d.Canary.Set {
			p.Canary = countOf(d.Canary, n)
		}
		p.Window = batch
		p.MinHealthyHalt = n - 1
	default: // one-at-a-time
		p.Window = 1
		p.MinHealthyHalt = n - 1
		p.MinHealthyGate = n - 1
	}
	if d.MinimumHealthy.Set {
		m := MinHealthyOf(d.MinimumHealthy, n)
		p.MinHealthyHalt, p.MinHealthyGate, p.Explicit = m, m, true
	}
	return p
}

// Halts reports whether failed failures halt the rollout.
func (p Policy) Halts(failed int) bool { return failed > 0 && failed >= p.N-p.MinHealthyHalt }

// MaxWindow is the largest number of hosts this policy ever lets run at once
// (the bound P1 is checked against).
func (p Policy) MaxWindow() int {
	if p.Window == 0 {
		return p.N
	}
	return max(p.Window, p.Canary)
}
