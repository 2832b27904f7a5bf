package daemon

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/gate"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/drover-dev/drover/reconcile/source"
)

// stubFleet is the fleet of these tests of status: the rows, roster and
// flags status reads. (The fleet tests in cmd/drover read the same status
// from real agents; these cover the states those do not reach cheaply.)
type stubFleet struct {
	rows   []rollout.HostStatus
	roster rollout.RosterState
	paused bool
	bake   time.Time
	gates  []rollout.GateStatus
	flag   rollout.Flag

	storeErr   string
	storeSince time.Time
}

func (s *stubFleet) Status() []rollout.HostStatus        { return s.rows }
func (s *stubFleet) Roster() rollout.RosterState         { return s.roster }
func (s *stubFleet) Paused() bool                        { return s.paused }
func (s *stubFleet) BakeUntil() time.Time                { return s.bake }
func (s *stubFleet) TimeAt(d time.Duration) time.Time    { return time.Unix(0, 0).Add(d) }
func (s *stubFleet) Timing() rollout.Timing              { return rollout.Timing{} }
func (s *stubFleet) Voters() rollout.Roster              { return rollout.Roster{} }
func (s *stubFleet) ForceRemove(string)                  {}
func (s *stubFleet) SetPaused(bool)                      {}
func (s *stubFleet) Evaluating() []rollout.GateJob       { return nil }
func (s *stubFleet) GateSample(string, int, gate.Sample) {}
func (s *stubFleet) Gates() []rollout.GateStatus         { return s.gates }
func (s *stubFleet) Flag() rollout.Flag                  { return s.flag }
func (s *stubFleet) StoreError() (string, time.Time)     { return s.storeErr, s.storeSince }

// revSource publishes one revision.
type revSource struct{ rev source.Revision }

func (s revSource) Desired(context.Context) (source.Revision, error)   { return s.rev, nil }
func (revSource) Fetch(context.Context, source.Revision, string) error { return nil }
func (revSource) String() string                                       { return "dir /srv/release" }

// statusApp is an application whose source published r2 (label v2) with
// the deployment d, as one poll found it; its loop does not run.
func statusApp(t *testing.T, f *stubFleet, d manifest.Deployment) *app {
	t.Helper()
	st, err := hooks.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rev := source.Revision{ID: "r2", Label: "v2", Manifest: &manifest.Manifest{Deployment: d}}
	p := source.NewPoller(revSource{rev}, source.PollerConfig{App: "hello"})
	if u := p.Poll(context.Background()); !u.Has {
		t.Fatalf("poll: %+v", u)
	}
	dep := &reconcile.Deploy{}
	reconcile.NewApp(reconcile.AppConfig{Name: "hello", Group: "web", Host: "h1", Poller: p, Deploy: dep})
	dep.Desire(rev)
	return &app{
		cfg: AppConfig{Name: "hello", Group: "web"}, host: "h1", log: slog.New(slog.DiscardHandler),
		poller: p, fleet: f, store: st, deploy: dep,
	}
}

func row(host string, phase rollout.Phase, reach rollout.Reach, result string) rollout.HostStatus {
	return rollout.HostStatus{Row: rollout.Row{Host: host, Revision: "r2", Installed: "r1", Phase: phase, Result: result}, Reach: reach, Member: true}
}

func TestStatusSaysWhyTheRolloutStands(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		f    *stubFleet
		d    manifest.Deployment
		want []string // each in one of Why, in order
	}{
		{"no majority", &stubFleet{roster: rollout.RosterState{Epoch: 2, Members: 3},
			rows: []rollout.HostStatus{row("h1", rollout.PhaseWaiting, rollout.ReachAlive, ""),
				row("h2", rollout.PhaseWaiting, rollout.ReachDead, ""), row("h3", rollout.PhaseWaiting, rollout.ReachSuspect, "")}},
			manifest.Deployment{Strategy: manifest.OneAtATime},
			[]string{"no majority of the roster reachable: 1 of 3 voters (unreachable: h2, h3)"}},
		{"no roster", &stubFleet{roster: rollout.RosterState{Why: "no roster: waiting for bootstrap_expect 5 hosts, 3 seen"},
			rows: []rollout.HostStatus{row("h1", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{}, []string{"no roster: waiting for bootstrap_expect 5 hosts, 3 seen"}},
		{"paused by drover pause", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 1}, paused: true,
			rows: []rollout.HostStatus{row("h1", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{}, []string{"paused fleet-wide by `drover pause`", "`drover resume hello` goes on"}},
		{"paused by the manifest", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 1},
			rows: []rollout.HostStatus{row("h1", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{Paused: true}, []string{"paused by the manifest (deployment.paused: true)"}},
		{"bake", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 2}, bake: now.Add(90 * time.Second),
			rows: []rollout.HostStatus{row("h1", rollout.PhaseSucceeded, rollout.ReachAlive, "succeeded"), row("h2", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{Strategy: manifest.Canary}, []string{"waiting for the canary's bake: 1m30s left"}},
		{"halted, with an aborted host's failure", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 2},
			rows: []rollout.HostStatus{
				func() rollout.HostStatus {
					h := row("h1", rollout.PhaseFailed, rollout.ReachAlive, "aborted by the rollout protocol: this host lost its slot: AfterInstall failed: script at specified location: x.sh was stopped\nbye")
					h.Halted = true
					return h
				}(), row("h2", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{}, []string{"halted: h1 failed at AfterInstall"}},
		{"paused by an inconclusive gate", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 2}, paused: true,
			flag: rollout.Flag{Paused: true, Clock: 3, Node: "h1", Reason: `gate lat inconclusive: value no data, query "up": prometheus: unreachable`},
			rows: []rollout.HostStatus{row("h1", rollout.PhaseSucceeded, rollout.ReachAlive, "succeeded"), row("h2", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{}, []string{"paused: gate lat inconclusive: value no data, query \"up\": prometheus: unreachable; `drover resume hello` starts a fresh run of the gate"}},
		{"halted by a failed gate", &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 2},
			gates: []rollout.GateStatus{{Name: "err", When: manifest.WhenBatch, Verdict: gate.VerdictFail, Value: 0.17, Taken: 2, Evaluator: "h1",
				Reason: `gate err failed: value 0.17, query "sum(rate(e[1m]))": 2 consecutive failed samples`}},
			rows: []rollout.HostStatus{
				func() rollout.HostStatus {
					h := row("h1", rollout.PhaseRolledBack, rollout.ReachAlive, rollout.ResultRolledBack)
					h.Halted = true
					return h
				}(), row("h2", rollout.PhaseWaiting, rollout.ReachAlive, "")}},
			manifest.Deployment{}, []string{`halted: gate err failed: value 0.17, query "sum(rate(e[1m]))": 2 consecutive failed samples; it starts again only`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := statusApp(t, tc.f, tc.d).status(now, 0)
			got := strings.Join(st.Why, "\n")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("why:\n%s\nwant %q", got, w)
				}
			}
		})
	}
	// Complete and not paused: nothing to explain.
	f := &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 1}, rows: []rollout.HostStatus{
		{Row: rollout.Row{Host: "h1", Revision: "r2", Installed: "r2", Phase: rollout.PhaseSucceeded}, Member: true}}}
	if st := statusApp(t, f, manifest.Deployment{}).status(now, 0); len(st.Why) != 0 || st.Failure != nil {
		t.Errorf("a complete rollout: why %q, failure %+v", st.Why, st.Failure)
	}
}

// TestStatusKeepsArchivedLabels: the label of a revision the source no
// longer publishes comes from this host's records once, not at every
// status (the metrics scrape and `status --watch` ask often).
func TestStatusKeepsArchivedLabels(t *testing.T) {
	f := &stubFleet{roster: rollout.RosterState{Epoch: 1, Members: 1}, rows: []rollout.HostStatus{
		{Row: rollout.Row{Host: "h1", Revision: "r2", Installed: "r0", Phase: rollout.PhaseWaiting}, Member: true}}}
	a := statusApp(t, f, manifest.Deployment{})
	rec := &hooks.Record{ID: "d-000000000001", Application: "hello", Group: "web", Revision: "v0", RevisionID: "r0", Seq: 1, Status: hooks.StatusSucceeded}
	if err := a.store.Put(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.store.BundleDir("web", rec.ID), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := a.status(now, 0).Hosts[0].Revision; got != "v0" {
		t.Fatalf("installed revision shown as %q, want its label v0 from the record", got)
	}
	if err := os.RemoveAll(a.store.DeploymentDir("web", rec.ID)); err != nil {
		t.Fatal(err)
	}
	if got := a.status(now, 0).Hosts[0].Revision; got != "v0" {
		t.Errorf("after the first status the label is read again from the records: %q", got)
	}
}
