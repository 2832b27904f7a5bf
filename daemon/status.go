package daemon

import "time"

// Status is the fleet as one agent sees it: what `drover status` prints
// and /v1/status serves.
type Status struct {
	Host        string      `json:"host"`
	Version     string      `json:"version"`
	Time        time.Time   `json:"time"`
	ConfigPath  string      `json:"config_path"`
	ConfigError string      `json:"config_error,omitempty"` // last rejected reload, if the old config is in force
	Members     []Member    `json:"members"`
	Apps        []AppStatus `json:"apps"`
}

// Member is one gossip member.
type Member struct {
	Name   string   `json:"name"`
	Addr   string   `json:"addr"`
	State  string   `json:"state"` // alive, suspect, dead, left
	Groups []string `json:"groups,omitempty"`
}

// AppStatus is one application across the fleet.
type AppStatus struct {
	Name    string `json:"name"`
	Group   string `json:"group"`
	Active  bool   `json:"active"` // this host is in the group
	Source  string `json:"source"`
	Desired string `json:"desired,omitempty"` // revision label the source publishes
	// DesiredID is the content identity (commit, sha256).
	DesiredID string `json:"desired_id,omitempty"`
	Strategy  string `json:"strategy,omitempty"`
	// Deployment is the rollout's deployment ID for the desired revision
	// (DEPLOYMENT_ID of its hooks; the same on every host), once known.
	Deployment string `json:"deployment,omitempty"`
	Paused     bool   `json:"paused"`
	// PausedBy says who paused: "drover pause" (the fleet-wide flag),
	// "gate" (the flag, set by an inconclusive health gate; PauseReason
	// says which and why) or "manifest" (deployment.paused).
	PausedBy    string `json:"paused_by,omitempty"`
	PauseReason string `json:"pause_reason,omitempty"`
	Halted      bool   `json:"halted"`
	SourceError string `json:"source_error,omitempty"`
	// StartError says why this host could not start the application's
	// loop at the last reload (which the next reload retries).
	StartError string `json:"start_error,omitempty"`
	// StateError says why this host cannot store the application's rollout
	// state (disk full, a broken state directory), since StateErrorSince:
	// it holds its messages and decisions until it can (the others see it
	// as silent). Empty while it can.
	StateError      string    `json:"state_error,omitempty"`
	StateErrorSince time.Time `json:"state_error_since,omitzero"`
	// Failure is the failed host that halted the rollout of the desired
	// revision (or, before a halt, the last failure of it), nil when none.
	Failure *Failure `json:"failure,omitempty"`
	// Why says why the rollout does not go on, when it does not (no
	// roster, no majority reachable, paused, halted, waiting for the
	// canary's bake), one reason per entry; empty while it progresses or
	// when it is complete.
	Why []string `json:"why,omitempty"`
	// ManifestInvalid is set while the newest manifest fails validation
	// and is ignored (SourceError says why).
	ManifestInvalid bool `json:"manifest_invalid,omitempty"`
	// Polls counts the source's polls by result.
	Polls    map[string]uint64 `json:"polls,omitempty"`
	LastPoll time.Time         `json:"last_poll,omitzero"` // the last successful poll
	// PollingSince is when this agent began polling the source.
	PollingSince time.Time `json:"polling_since,omitzero"`
	// Roster is the group's roster of voters as this host holds it.
	Roster RosterStatus `json:"roster"`
	// Gates are the manifest's health gates with their fleet-wide verdicts
	// (issue 13), one entry per gate.
	Gates []GateStatus `json:"gates,omitempty"`
	Hosts []HostStatus `json:"hosts"`
}

// RosterStatus is the group's roster of voters (reconcile/rollout/PROTOCOL.md §4) as
// this host holds it. Without one no host of the group can take a slot, so
// Why says what the roster waits for.
type RosterStatus struct {
	Epoch  uint64 `json:"epoch"`            // 0: none yet
	Voters int    `json:"voters"`           // its members
	Voter  bool   `json:"voter"`            // this host is one of them
	Why    string `json:"why,omitempty"`    // without a roster: why, e.g. "no roster: waiting for bootstrap_expect 5 hosts, 3 seen"
	Expect int    `json:"expect,omitempty"` // cluster.bootstrap_expect
}

// HostStatus is one host's row for one application.
type HostStatus struct {
	Host       string `json:"host"`
	Revision   string `json:"revision"`             // installed (last successful) revision
	Target     string `json:"target,omitempty"`     // revision being deployed or last attempted
	Phase      string `json:"phase"`                // idle, waiting, running, succeeded, failed, rolling-back, ...
	Event      string `json:"event,omitempty"`      // lifecycle event while running
	Result     string `json:"result,omitempty"`     // last result message (a failure: the error and the end of the script's output)
	Deployment string `json:"deployment,omitempty"` // the deployment the row is about (DEPLOYMENT_ID)
	Reachable  bool   `json:"reachable"`
	// Voter: the host is in the group's roster (its quorum), at Epoch.
	Voter bool   `json:"voter"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Claim is the slot claim the host holds while it runs (0: none).
	Claim uint64 `json:"claim,omitempty"`
	// Since is when this agent saw the row's revision, phase or event
	// change: the AGE column. An agent restarted since counts from its
	// start.
	Since time.Time `json:"since,omitzero"`
}

// Failure is a failed host of a rollout, as its gossip row tells it.
type Failure struct {
	Host       string   `json:"host"`
	Revision   string   `json:"revision"`
	Deployment string   `json:"deployment,omitempty"`
	Event      string   `json:"event,omitempty"`  // the lifecycle event that failed, when the error names it
	Error      string   `json:"error"`            // the first line of the error
	Output     []string `json:"output,omitempty"` // the last lines of the script's output, as far as a row carries them
	halted     bool
	forward    bool // the failure is of the forward run (not of a rollback)
}

// SampleStatus is a small fleet with every kind of row, for tests and
// documentation of the status and metrics formats.
func SampleStatus() Status {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return Status{
		Host: "web-1", Version: "1.0.0", Time: now, ConfigPath: DefaultConfigPath,
		Members: []Member{
			{Name: "web-1", Addr: "10.0.0.1:7946", State: "alive", Groups: []string{"web-prod"}},
			{Name: "web-2", Addr: "10.0.0.2:7946", State: "alive", Groups: []string{"web-prod"}},
			{Name: "web-3", Addr: "10.0.0.3:7946", State: "suspect", Groups: []string{"web-prod"}},
		},
		Apps: []AppStatus{{
			Name: "hello-web", Group: "web-prod", Active: true, Source: "git https://git.example/acme/deploy.git release:hello-web",
			Desired: "2026.11.26-2", DesiredID: "3f2a9c1d", Strategy: "one-at-a-time",
			Polls: map[string]uint64{"changed": 2, "unchanged": 118, "error": 1}, LastPoll: now.Add(-20 * time.Second),
			Roster: RosterStatus{Epoch: 2, Voters: 3, Voter: true},
			Hosts: []HostStatus{
				{Host: "web-1", Revision: "2026.11.26-2", Target: "2026.11.26-2", Phase: "succeeded", Result: "succeeded", Reachable: true, Since: now.Add(-40 * time.Second)},
				{Host: "web-2", Revision: "2026.11.26-1", Target: "2026.11.26-2", Phase: "running", Event: "AfterInstall", Reachable: true, Since: now.Add(-2 * time.Second)},
				{Host: "web-3", Revision: "2026.11.26-1", Target: "2026.11.26-2", Phase: "waiting", Reachable: false, Since: now.Add(-9 * time.Second)},
			},
		}},
	}
}
