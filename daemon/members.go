package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Members is the membership as one agent sees it: the gossip members and,
// per application, the roster (the voters, reconcile/rollout/PROTOCOL.md §4) this
// agent holds. `drover members` prints it; GET /v1/members serves it.
type Members struct {
	Host    string      `json:"host"`
	Members []Member    `json:"members"`
	Apps    []AppRoster `json:"apps"`
}

// AppRoster is one application's roster as this agent holds it, and the
// roster epoch each host reports in its own row.
type AppRoster struct {
	App    string       `json:"app"`
	Group  string       `json:"group"`
	Epoch  uint64       `json:"epoch"` // 0: this host holds no roster yet
	Voters []string     `json:"voters"`
	Hosts  []RosterHost `json:"hosts"`
}

// RosterHost is one host of an application's group as its row shows it.
type RosterHost struct {
	Host string `json:"host"`
	// Voter: in the roster this agent holds.
	Voter bool `json:"voter"`
	// Epoch is the roster epoch the host itself reports (0: none).
	Epoch uint64 `json:"epoch"`
}

// ErrRefused says a request was understood and refused: the agent says why.
var ErrRefused = errors.New("refused")

// Members returns the gossip members and every application's roster.
func (a *Agent) Members() Members {
	a.mu.Lock()
	host := a.cfg.Node.Name
	apps := make([]*app, 0, len(a.apps))
	for _, h := range a.apps {
		apps = append(apps, h.app)
	}
	a.mu.Unlock()
	m := Members{Host: host}
	for _, cm := range a.cluster.Members() {
		m.Members = append(m.Members, Member{Name: cm.Name, Addr: cm.Addr, State: cm.State, Groups: cm.Groups})
	}
	sort.Slice(m.Members, func(i, j int) bool { return m.Members[i].Name < m.Members[j].Name })
	for _, ap := range apps {
		m.Apps = append(m.Apps, appRoster(ap.cfg.Name, ap.cfg.Group, ap.fleet))
	}
	sort.Slice(m.Apps, func(i, j int) bool { return m.Apps[i].App < m.Apps[j].App })
	return m
}

func appRoster(name, group string, re fleet) AppRoster {
	r := re.Voters()
	ar := AppRoster{App: name, Group: group, Epoch: r.Epoch, Voters: slices.Clone(r.Members)}
	if ar.Voters == nil {
		ar.Voters = []string{}
	}
	for _, h := range re.Status() {
		ar.Hosts = append(ar.Hosts, RosterHost{Host: h.Host, Voter: h.Member, Epoch: h.Epoch})
	}
	return ar
}

// RemoveMember asks this host's rollout node of every application (or of
// app only) whose roster has host as a voter to propose a roster without it
// (rollout.Node.ForceRemove, reconcile/rollout/PROTOCOL.md §4.2). It returns the
// rosters in force when asked; the change is in force once a majority of
// them has accepted it and drained (GET /v1/members shows the new epoch).
//
// It refuses, before asking anything, what cannot work: an unknown
// application or host, this host itself (stop its agent instead: a
// graceful leave removes it at once), a host that is not a voter, and a
// roster of which this host is not a voter or of which fewer than a
// majority are alive here (a roster change is decided by a majority of the
// current voters; removal cannot help a group that lost it).
func (a *Agent) RemoveMember(_ context.Context, host, appName string) ([]AppRoster, error) {
	a.mu.Lock()
	self := a.cfg.Node.Name
	type target struct {
		ap *app
		re fleet
	}
	var targets []target
	for name, h := range a.apps {
		if appName != "" && name != appName {
			continue
		}
		targets = append(targets, target{h.app, h.app.fleet})
	}
	a.mu.Unlock()
	if appName != "" && len(targets) == 0 {
		return nil, fmt.Errorf("application %q is not deployed by this host: %w", appName, ErrNotFound)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("this host deploys no application: no roster to remove %s from: %w", host, ErrNotFound)
	}
	if host == self {
		return nil, fmt.Errorf("%s is this host: to remove it, stop its agent (systemctl stop drover): a graceful leave takes it out of every roster at once: %w", host, ErrRefused)
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].ap.cfg.Name < targets[j].ap.cfg.Name })
	alive := map[string]bool{self: true}
	var members []string
	for _, m := range a.cluster.Members() {
		members = append(members, m.Name+" ("+m.State+")")
		if m.State == "alive" {
			alive[m.Name] = true
		}
	}
	sort.Strings(members)

	var picked []target
	var rosters []string
	for _, t := range targets {
		r := t.re.Voters()
		desc := fmt.Sprintf("%s: epoch %d, voters %s", t.ap.cfg.Name, r.Epoch, strings.Join(r.Members, ", "))
		if r.Epoch == 0 {
			desc = t.ap.cfg.Name + ": no roster yet"
		}
		rosters = append(rosters, desc)
		if slices.Contains(r.Members, host) {
			picked = append(picked, t)
		}
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%s is not a voter of any roster this host holds (%s); gossip members: %s: %w",
			host, strings.Join(rosters, "; "), strings.Join(members, ", "), ErrNotFound)
	}
	var out []AppRoster
	for _, t := range picked {
		r := t.re.Voters()
		if !slices.Contains(r.Members, self) {
			return nil, fmt.Errorf("%s: this host (%s) is not a voter of the roster (epoch %d: %s); run it on one of them: %w",
				t.ap.cfg.Name, self, r.Epoch, strings.Join(r.Members, ", "), ErrRefused)
		}
		up := 0
		for _, v := range r.Members {
			if alive[v] {
				up++
			}
		}
		if need := len(r.Members)/2 + 1; up < need {
			return nil, fmt.Errorf("%s: only %d of the %d voters (epoch %d: %s) are alive as this host sees them, and a roster change needs %d: "+
				"removal is itself decided by a majority of the current voters, so it cannot recover a group that lost its majority: %w",
				t.ap.cfg.Name, up, len(r.Members), r.Epoch, strings.Join(r.Members, ", "), need, ErrRefused)
		}
		out = append(out, appRoster(t.ap.cfg.Name, t.ap.cfg.Group, t.re))
	}
	for _, t := range picked {
		t.re.ForceRemove(host)
		a.log.Warn("operator removal of a voter asked", "app", t.ap.cfg.Name, "host", host)
	}
	return out, nil
}
