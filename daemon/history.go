package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/hooks"
)

// DeploymentSummary is one deployment in `drover history`: this host's
// record of it, without the scripts' output.
type DeploymentSummary struct {
	ID          string        `json:"id"`
	Seq         int           `json:"seq"`
	Host        string        `json:"host"`
	Revision    string        `json:"revision"`
	RevisionID  string        `json:"revision_id,omitempty"`
	Rollback    bool          `json:"rollback,omitempty"`
	Status      hooks.Status  `json:"status"`
	Started     time.Time     `json:"started"`
	Finished    time.Time     `json:"finished,omitzero"`
	Duration    time.Duration `json:"duration_ns"`
	FailedEvent string        `json:"failed_event,omitempty"`
	// Error is the first line of the error: the scripts' output, which
	// may hold what an operator would not publish, stays in the record
	// and the log on the root-only socket.
	Error string `json:"error,omitempty"`
}

func summarize(r *hooks.Record, now time.Time) DeploymentSummary {
	first, _, _ := strings.Cut(r.Error, "\n")
	return DeploymentSummary{
		ID: r.ID, Seq: r.Seq, Host: r.Host, Revision: r.Revision, RevisionID: r.RevisionID, Rollback: r.Rollback,
		Status: r.Status, Started: r.Started, Finished: r.Finished, Duration: r.Duration(now),
		FailedEvent: r.FailedEvent, Error: strings.TrimSuffix(first, "; last output:"),
	}
}

// appGroup is the deployment group of an application this agent runs.
func (a *Agent) appGroup(name string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h, ok := a.apps[name]; ok {
		return h.app.cfg.Group, nil
	}
	for _, ac := range a.cfg.Applications {
		if ac.Name == name {
			return ac.Group, nil // configured, not active here: its records may still be
		}
	}
	names := make([]string, 0, len(a.cfg.Applications))
	for _, ac := range a.cfg.Applications {
		names = append(names, ac.Name)
	}
	return "", fmt.Errorf("application %q is not in this host's configuration (it has %s): %w", name, strings.Join(names, ", "), ErrNotFound)
}

// records lists the app's deployments on this host, newest first.
func (a *Agent) records(name string) ([]*hooks.Record, error) {
	group, err := a.appGroup(name)
	if err != nil {
		return nil, err
	}
	rs, err := a.store.List(group)
	if err != nil {
		return nil, err
	}
	rs = slices.DeleteFunc(rs, func(r *hooks.Record) bool { return r.Application != name })
	slices.Reverse(rs)
	return rs, nil
}

// History lists the app's deployments on this host, newest first.
func (a *Agent) History(name string) ([]DeploymentSummary, error) {
	rs, err := a.records(name)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]DeploymentSummary, len(rs))
	for i, r := range rs {
		out[i] = summarize(r, now)
	}
	return out, nil
}

// GroupHistory lists a deployment group's records on this host, newest
// first (GET /v1/deployments/{group}).
func (a *Agent) GroupHistory(group string) ([]DeploymentSummary, error) {
	rs, err := a.store.List(group)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		if gs, _ := a.store.Groups(); !slices.Contains(gs, group) {
			return nil, fmt.Errorf("no deployment group %q on this host (it has %s): %w", group, strings.Join(gs, ", "), ErrNotFound)
		}
	}
	slices.Reverse(rs)
	now := time.Now()
	out := make([]DeploymentSummary, len(rs))
	for i, r := range rs {
		out[i] = summarize(r, now)
	}
	return out, nil
}

// AppDeployment finds one of the app's deployments on this host: "" or
// "latest" is the newest, else a deployment ID or a unique prefix of one,
// or a sequence number ("7" or "#7").
func (a *Agent) AppDeployment(name, which string) (*hooks.Record, error) {
	rs, err := a.records(name)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no deployment of %s on this host yet: %w", name, ErrNotFound)
	}
	if which == "" || which == "latest" {
		return rs[0], nil
	}
	var seq int
	if _, err := fmt.Sscanf(strings.TrimPrefix(which, "#"), "%d", &seq); err == nil && fmt.Sprint(seq) == strings.TrimPrefix(which, "#") {
		for _, r := range rs {
			if r.Seq == seq {
				return r, nil
			}
		}
		return nil, fmt.Errorf("no deployment #%d of %s on this host (drover history %s lists them): %w", seq, name, name, ErrNotFound)
	}
	var found []*hooks.Record
	for _, r := range rs {
		if r.ID == which {
			return r, nil
		}
		if strings.HasPrefix(r.ID, which) || strings.HasPrefix(r.ID, "d-"+which) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("no deployment %s of %s on this host (drover history %s lists them; logs are kept on the host that ran them): %w", which, name, name, ErrNotFound)
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.ID
	}
	return nil, fmt.Errorf("deployment %q of %s is ambiguous: %s: %w", which, name, strings.Join(ids, ", "), ErrRefused)
}

// followPoll is how often a followed log is read for more.
const followPoll = 200 * time.Millisecond

// CopyLog writes the hook log of a deployment to w. With follow, it goes
// on while the deployment runs, flushing after each read, until it ends or
// ctx does.
func (a *Agent) CopyLog(ctx context.Context, group, id string, w io.Writer, follow bool) error {
	var f *os.File // nil until the log exists
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	// copyNew writes what the log gained since the last call.
	copyNew := func() error {
		if f == nil {
			var err error
			if f, err = os.Open(a.store.LogPath(group, id)); errors.Is(err, os.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			}
		}
		_, err := io.Copy(w, f)
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
		return err
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		if err := copyNew(); err != nil || !follow {
			return err
		}
		rec, err := a.store.Get(group, id)
		if err != nil {
			return err
		}
		if rec.Status != hooks.StatusRunning {
			return copyNew() // what came between the last read and the end
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
