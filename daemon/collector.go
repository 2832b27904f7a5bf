package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// statusCollector computes the state metrics of DESIGN.md §10 from the
// agent's status at scrape time: what this host runs, what the sources ask
// for, the fleet's rollout (the same on every host: aggregate with max),
// the sources' polls and the cluster's members.
type statusCollector struct {
	status func() Status

	appRevision, desiredRevision, rolloutHosts, paused, halted *prometheus.Desc
	polls, lastSuccess, members, manifestInvalid               *prometheus.Desc
	rosterEpoch, rosterVoters, rosterVoter                     *prometheus.Desc
	gateVerdict, stateStoreFailing                             *prometheus.Desc
}

// NewStatusCollector returns the collector of the state metrics, reading
// status at every scrape.
func NewStatusCollector(status func() Status) prometheus.Collector {
	return &statusCollector{
		status: status,
		appRevision: prometheus.NewDesc("drover_app_revision_info",
			"Always 1 for the revision this host runs for an application.", []string{"app", "group", "revision"}, nil),
		desiredRevision: prometheus.NewDesc("drover_app_desired_revision_info",
			"Always 1 for the revision the application's source asks for.", []string{"app", "group", "revision"}, nil),
		rolloutHosts: prometheus.NewDesc("drover_rollout_hosts",
			"Hosts of an application by target revision and phase, as this host sees the fleet (the same on every host: aggregate with max).",
			[]string{"app", "revision", "state"}, nil),
		paused: prometheus.NewDesc("drover_rollout_paused",
			"1 while an application's rollouts are paused fleet-wide (API or manifest).", []string{"app"}, nil),
		halted: prometheus.NewDesc("drover_rollout_halted",
			"1 while the rollout of the desired revision is halted by failures.", []string{"app", "revision"}, nil),
		polls: prometheus.NewDesc("drover_source_polls_total",
			"Polls of an application's source, by result (changed, unchanged, empty, invalid, error).", []string{"app", "result"}, nil),
		lastSuccess: prometheus.NewDesc("drover_source_last_success_timestamp_seconds",
			"Unix time of the last successful poll of an application's source (changed or unchanged); before the first, when the agent began polling it.", []string{"app"}, nil),
		manifestInvalid: prometheus.NewDesc("drover_manifest_invalid",
			"1 while the newest manifest of an application fails validation and is ignored.", []string{"app"}, nil),
		rosterEpoch: prometheus.NewDesc("drover_roster_epoch",
			"Epoch of the group's roster of voters this host holds; 0 while it has none (no host can take a slot: drover status says why).", []string{"app"}, nil),
		rosterVoters: prometheus.NewDesc("drover_roster_voters",
			"Hosts in the group's roster of voters this host holds.", []string{"app"}, nil),
		rosterVoter: prometheus.NewDesc("drover_roster_voter",
			"1 while this host is a voter of its group's roster, 0 while it is not (a joiner, or no roster).", []string{"app"}, nil),
		stateStoreFailing: prometheus.NewDesc("drover_rollout_state_store_failing",
			"1 while this host cannot store the application's rollout state (it holds its messages and decisions meanwhile; drover status says why).", []string{"app"}, nil),
		gateVerdict: prometheus.NewDesc("drover_gate_verdict",
			"1 for a health gate's merged verdict of its latest step (pending, passed, failed, inconclusive), 0 for the others; the same on every host (aggregate with max).",
			[]string{"app", "gate", "verdict"}, nil),
		members: prometheus.NewDesc("drover_cluster_members",
			"Gossip members this host sees, by state (alive, suspect, dead, left).", []string{"state"}, nil),
	}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.appRevision, c.desiredRevision, c.rolloutHosts, c.paused, c.halted, c.polls, c.lastSuccess, c.members, c.manifestInvalid, c.rosterEpoch, c.rosterVoters, c.rosterVoter, c.gateVerdict, c.stateStoreFailing} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	states := map[string]float64{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range st.Members {
		states[m.State]++
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, n, s)
	}
	for _, a := range st.Apps {
		if !a.Active {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, b2f(a.Paused), a.Name)
		ch <- prometheus.MustNewConstMetric(c.manifestInvalid, prometheus.GaugeValue, b2f(a.ManifestInvalid), a.Name)
		ch <- prometheus.MustNewConstMetric(c.rosterEpoch, prometheus.GaugeValue, float64(a.Roster.Epoch), a.Name)
		ch <- prometheus.MustNewConstMetric(c.rosterVoters, prometheus.GaugeValue, float64(a.Roster.Voters), a.Name)
		ch <- prometheus.MustNewConstMetric(c.rosterVoter, prometheus.GaugeValue, b2f(a.Roster.Voter), a.Name)
		ch <- prometheus.MustNewConstMetric(c.stateStoreFailing, prometheus.GaugeValue, b2f(a.StateError != ""), a.Name)
		for _, g := range a.Gates {
			for _, v := range []string{"pending", "passed", "failed", "inconclusive"} {
				ch <- prometheus.MustNewConstMetric(c.gateVerdict, prometheus.GaugeValue, b2f(g.Verdict == v), a.Name, g.Name, v)
			}
		}
		if a.Desired != "" {
			ch <- prometheus.MustNewConstMetric(c.desiredRevision, prometheus.GaugeValue, 1, a.Name, a.Group, a.Desired)
			ch <- prometheus.MustNewConstMetric(c.halted, prometheus.GaugeValue, b2f(a.Halted), a.Name, a.Desired)
		}
		for r, n := range a.Polls {
			ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(n), a.Name, r)
		}
		// Before any success, the time polling began: an agent that never
		// read its source (a misspelled branch from the start) turns stale
		// like one whose source went away, and the alert fires.
		if last := a.LastPoll; !last.IsZero() || !a.PollingSince.IsZero() {
			if last.IsZero() {
				last = a.PollingSince
			}
			ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(last.UnixNano())/float64(time.Second), a.Name)
		}
		type key struct{ rev, state string }
		counts := map[key]float64{}
		for _, h := range a.Hosts {
			if h.Host == st.Host && h.Revision != "" {
				ch <- prometheus.MustNewConstMetric(c.appRevision, prometheus.GaugeValue, 1, a.Name, a.Group, h.Revision)
			}
			state := h.Phase
			if !h.Reachable {
				state = "unreachable"
			}
			counts[key{h.Target, state}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.rolloutHosts, prometheus.GaugeValue, n, a.Name, k.rev, k.state)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
