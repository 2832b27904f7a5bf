// Package manifest parses and validates drover's desired-revision manifest
// (manifest.yaml, DESIGN.md §6).
package manifest

import "time"

// FileName is the manifest's name in a git path, an S3 prefix or a directory.
const FileName = "manifest.yaml"

// Strategy names a rollout strategy.
type Strategy string

// The strategies of DESIGN.md §8.
const (
	AllAtOnce  Strategy = "all-at-once"
	OneAtATime Strategy = "one-at-a-time"
	Rolling    Strategy = "rolling"
	Canary     Strategy = "canary"
)

// Rollback is the rollback policy.
type Rollback string

// Rollback policies.
const (
	RollbackOnFailure Rollback = "on-failure"
	RollbackNever     Rollback = "never"
)

// Quantity is a host count or a percentage of a group, parsed once.
// The zero value means "not set".
type Quantity struct {
	Set     bool
	Percent bool
	Value   int // hosts when !Percent; 0..100 when Percent
}

// Of resolves q against a group of n hosts, rounding a percentage down: for
// sizes (batch, canary), where callers that need "at least one" apply that
// themselves. minimum_healthy rounds up instead, as CodeDeploy's
// FLEET_PERCENT does ("rounds up fractional instances"): rollout.MinHealthyOf.
func (q Quantity) Of(n int) int {
	if !q.Percent {
		return q.Value
	}
	return n * q.Value / 100
}

// Manifest is a validated manifest.
type Manifest struct {
	Version     int
	Application string
	Revision    string // label; for git the commit sha when absent
	Bundle      Bundle
	Deployment  Deployment
}

// Bundle says where the revision's files are.
type Bundle struct {
	Path   string // git and dir sources: directory holding appspec.yml, relative to the manifest
	Key    string // s3: object key under the prefix
	SHA256 string // s3: required, lowercase hex
}

// Deployment is how the revision rolls out.
type Deployment struct {
	Strategy                      Strategy
	Batch                         Quantity
	Canary                        Quantity
	Bake                          time.Duration
	MinimumHealthy                Quantity // unset: the strategy's default (DESIGN.md §8)
	Rollback                      Rollback
	IgnoreApplicationStopFailures bool
	Paused                        bool
}
