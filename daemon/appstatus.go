package daemon

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// status is this app's part of `drover status` at now; expect is the
// cluster's bootstrap_expect.
func (a *app) status(now time.Time, expect int) AppStatus {
	ps := a.poller.Status()
	desired, hasDes, since := a.deploy.Desired()
	st := AppStatus{
		Name: a.cfg.Name, Group: a.cfg.Group, Active: true, Source: ps.Source,
		SourceError: ps.LastError, LastPoll: ps.LastSuccess,
		ManifestInvalid: ps.LastResult == source.ResultInvalid, Polls: map[string]uint64{},
	}
	for r, n := range ps.Polls {
		st.Polls[string(r)] = n
	}
	st.PollingSince = since
	manifestPaused := false
	if hasDes {
		st.Desired, st.DesiredID = desired.Label, desired.ID
		if m := desired.Manifest; m != nil {
			st.Strategy = string(m.Deployment.Strategy)
			manifestPaused = m.Deployment.Paused
		}
	}
	labels := map[string]string{}
	for _, r := range a.deploy.KnownRevisions() {
		labels[r.ID] = r.Label
	}
	switch {
	case a.fleet.Paused():
		st.Paused, st.PausedBy = true, "drover pause"
		if r := a.fleet.Flag().Reason; r != "" {
			st.PausedBy, st.PauseReason = "gate", r
		}
	case manifestPaused:
		st.Paused, st.PausedBy = true, "manifest"
	}
	rs := a.fleet.Roster()
	st.Roster = RosterStatus{Epoch: rs.Epoch, Voters: rs.Members, Voter: rs.Voter, Why: rs.Why, Expect: expect}
	label := func(id string) string {
		if l, ok := labels[id]; ok {
			return l
		}
		return a.archivedLabel(id)
	}
	st.Gates = gateStatuses(a.fleet.Gates())
	rows := a.fleet.Status()
	done, voters, reachVoters := 0, 0, 0
	var unreachable []string
	for _, h := range rows {
		reachable := h.Reach.Reachable() || h.Host == a.host
		hs := HostStatus{
			Host: h.Host, Revision: label(h.Installed), Target: label(h.Revision), Phase: h.Phase.String(),
			Event: h.Event, Result: h.Result, Deployment: h.Deployment, Reachable: reachable,
			Voter: h.Member, Epoch: h.Epoch, Claim: h.Claim, Since: a.fleet.TimeAt(h.Since),
		}
		if h.Installed == "" {
			hs.Revision = ""
		}
		if h.Revision == "" {
			hs.Target = ""
		}
		if st.DesiredID != "" && h.Revision == st.DesiredID {
			if h.Halted {
				st.Halted = true
			}
			if st.Deployment == "" && !h.Phase.Running() && h.Phase != rollout.PhaseRolledBack && h.Phase != rollout.PhaseRollbackFailed {
				st.Deployment = h.Deployment
			}
			if h.Phase == rollout.PhaseRunning {
				st.Deployment = h.Deployment
			}
			if h.Installed == st.DesiredID && !h.Phase.Running() {
				done++
			}
			if f := failureOf(h, hs.Target); f != nil && (st.Failure == nil || h.Halted && !st.Failure.halted) {
				st.Failure = f
			}
		}
		if h.Member {
			voters++
			if reachable {
				reachVoters++
			} else {
				unreachable = append(unreachable, h.Host)
			}
		}
		st.Hosts = append(st.Hosts, hs)
	}
	if f := st.Failure; f != nil && f.forward && st.Deployment != "" {
		f.Deployment = st.Deployment // the failed run's, not its rollback's
	}
	if st.DesiredID != "" && done < len(rows) || st.Halted {
		st.Why = a.why(st, now, voters, reachVoters, unreachable)
	}
	if st.StateError, st.StateErrorSince = a.fleet.StoreError(); st.StateError != "" {
		st.Why = append(st.Why, fmt.Sprintf("this host cannot store its rollout state (for %s: %s): it holds its messages and decisions until it can, so the others see it as silent; free space or repair %s",
			now.Sub(st.StateErrorSince).Round(time.Second), st.StateError, "the state directory"))
	}
	return st
}

// why lists what keeps the rollout of st from going on.
func (a *app) why(st AppStatus, now time.Time, voters, reachable int, unreachable []string) []string {
	var why []string
	if st.Roster.Epoch == 0 && st.Roster.Why != "" {
		why = append(why, st.Roster.Why)
	} else if voters > 0 && reachable < voters/2+1 {
		slices.Sort(unreachable)
		why = append(why, fmt.Sprintf("no majority of the roster reachable: %d of %d voters (unreachable: %s): no host can take a slot until the partition heals or `drover members remove` drops the dead ones",
			reachable, voters, strings.Join(unreachable, ", ")))
	}
	switch st.PausedBy {
	case "drover pause":
		why = append(why, fmt.Sprintf("paused fleet-wide by `drover pause`: no new host starts; `drover resume %s` goes on", st.Name))
	case "gate":
		why = append(why, fmt.Sprintf("paused: %s; `drover resume %s` starts a fresh run of the gate", st.PauseReason, st.Name))
	case "manifest":
		why = append(why, "paused by the manifest (deployment.paused: true): publish the manifest without it to go on")
	}
	if st.Halted {
		w := "halted"
		if f := st.Failure; f != nil {
			w += ": " + f.Host + " failed"
			if f.Event != "" {
				w += " at " + f.Event
			}
		} else {
			for _, g := range st.Gates {
				if g.Verdict == "failed" {
					w += ": " + g.Reason
					break
				}
			}
		}
		why = append(why, w+"; it starts again only with a new revision or a changed manifest (push a fix or revert)")
	}
	if until := a.fleet.BakeUntil(); !until.IsZero() && until.After(now) {
		why = append(why, fmt.Sprintf("waiting for the canary's bake: %s left", until.Sub(now).Round(time.Second)))
	}
	return why
}

// failureOf reads a failed row: the host, the event its error names and
// the output the row carries. It is nil for a row that did not fail.
func failureOf(h rollout.HostStatus, revision string) *Failure {
	if !h.OwnFailure() {
		return nil
	}
	f := &Failure{Host: h.Host, Revision: revision, Deployment: h.Deployment, halted: h.Halted,
		forward: h.Phase != rollout.PhaseRollbackFailed}
	msg := h.Result
	first, rest, _ := strings.Cut(msg, "\n")
	f.Error = strings.TrimSuffix(first, "; last output:")
	if rest != "" {
		for l := range strings.SplitSeq(rest, "\n") {
			if l != "" {
				f.Output = append(f.Output, l)
			}
		}
	}
	// An error names its event first ("ValidateService failed: ..."),
	// after the prefix of an abort.
	at := len(first)
	for _, ev := range appspec.Events {
		i := strings.Index(first, string(ev)+" failed: ")
		// A whole word: "AfterInstall failed" is not Install's.
		if i >= 0 && i < at && (i == 0 || first[i-1] == ' ') {
			f.Event, at = string(ev), i
		}
	}
	return f
}

// archivedLabel is the label of a revision the source no longer publishes,
// from this host's records, else its short ID. Found labels are kept (a
// revision's label never changes), so that status, which the metrics
// scrape and `drover status --watch` call often, does not read every
// record for every host each time.
func (a *app) archivedLabel(id string) string {
	a.mu.Lock()
	l, ok := a.labels[id]
	a.mu.Unlock()
	if ok {
		return l
	}
	rec, err := a.store.FindRevision(a.cfg.Group, id)
	if err != nil {
		return shortID(id)
	}
	a.mu.Lock()
	if a.labels == nil || len(a.labels) >= 256 {
		a.labels = map[string]string{} // bounded: start over
	}
	a.labels[id] = rec.Revision
	a.mu.Unlock()
	return rec.Revision
}
