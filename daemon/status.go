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
	DesiredID   string       `json:"desired_id,omitempty"`
	Strategy    string       `json:"strategy,omitempty"`
	Paused      bool         `json:"paused"`
	Halted      bool         `json:"halted"`
	SourceError string       `json:"source_error,omitempty"`
	LastPoll    time.Time    `json:"last_poll,omitzero"`
	Hosts       []HostStatus `json:"hosts"`
}

// HostStatus is one host's row for one application.
type HostStatus struct {
	Host       string    `json:"host"`
	Revision   string    `json:"revision"`         // installed (last successful) revision
	Target     string    `json:"target,omitempty"` // revision being deployed or last attempted
	Phase      string    `json:"phase"`            // idle, waiting, running, succeeded, failed, rolling-back, ...
	Event      string    `json:"event,omitempty"`  // lifecycle event while running
	Result     string    `json:"result,omitempty"` // last result message
	Deployment string    `json:"deployment,omitempty"`
	Reachable  bool      `json:"reachable"`
	Updated    time.Time `json:"updated,omitzero"` // when this agent last heard of the row
}
