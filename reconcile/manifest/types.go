// Package manifest parses and validates drover's desired-revision manifest
// (manifest.yaml, DESIGN.md §6).
package manifest

import (
	"time"

	"github.com/drover-dev/drover/reconcile/gate/expr"
)

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
	Gates                         []Gate // health gates, in manifest order (issue 13)
}

// When says at which point of a rollout a gate is evaluated.
type When string

// The points of a rollout a gate can judge.
const (
	WhenBake       When = "bake"       // canary: during the bake, after the canary step succeeded
	WhenBatch      When = "batch"      // after each step (batch) of hosts finished
	WhenHost       When = "host"       // after each host finished
	WhenContinuous When = "continuous" // all the time while the rollout runs
)

// NoData is what a Prometheus gate makes of a query that returns nothing
// (an empty vector, or only NaN).
type NoData string

// The no_data policies.
const (
	NoDataFail         NoData = "fail"
	NoDataInconclusive NoData = "inconclusive"
	NoDataPass         NoData = "pass"
)

// Gate defaults (README, "Health gates").
const (
	DefaultGateInterval          = 30 * time.Second
	DefaultGateTimeout           = 10 * time.Second // or the interval, when shorter
	DefaultGateCount             = 1
	DefaultGateFailureLimit      = 1
	DefaultGateInconclusiveLimit = 3
)

// Gate is one health check of a rollout (issue 13): exactly one of
// Prometheus and HTTP is set. All defaults are resolved by Parse.
type Gate struct {
	Name              string
	When              When
	Prometheus        *PrometheusCheck
	HTTP              *HTTPCheck
	Success           *expr.Expr // Prometheus only; nil when not given
	Failure           *expr.Expr // Prometheus only; nil when not given
	Interval          time.Duration
	Timeout           time.Duration // per sample; at most Interval
	InitialDelay      time.Duration // before the first sample
	Count             int           // samples to take; 0 for continuous gates
	FailureLimit      int           // consecutive failed samples that fail the gate
	InconclusiveLimit int           // consecutive inconclusive samples that make it inconclusive
	NoData            NoData        // Prometheus only; "" for HTTP
}

// PrometheusCheck is an instant query against Prometheus' HTTP API.
// URL and Query may hold the templates {{app}}, {{group}}, {{host}} and
// {{revision}}.
type PrometheusCheck struct {
	URL   string // base URL of the server: /api/v1/query is appended
	Query string // PromQL
	Auth  Auth
}

// HTTPCheck is a GET whose status and body judge the sample. URL and
// ExpectBody may hold templates.
type HTTPCheck struct {
	URL              string
	ExpectStatus     []int  // any of these passes; default 200
	ExpectBody       string // substring the body must contain; "" for none
	ExpectBodyRegexp string // RE2 the body must match; "" for none
	Auth             Auth
}

// Auth is how a check authenticates and verifies the server. Secrets are
// files, read when a sample is taken, on the host taking it.
type Auth struct {
	BearerTokenFile string
	BasicAuth       *BasicAuth
	TLS             TLS
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username     string
	PasswordFile string
}

// TLS configures verification of an https server.
type TLS struct {
	CAFile             string // PEM; default: the system roots
	InsecureSkipVerify bool
}
