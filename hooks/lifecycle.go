// Package hooks runs CodeDeploy-compatible in-place deployments on one
// host: it fetches and unpacks a bundle, runs the appspec.yml lifecycle
// hooks under process control, installs the files, and keeps the local
// deployment state (records, revision archives, hook logs).
//
// The package takes a bundle and a small configuration; it knows nothing
// of sources, gossip or the daemon.
package hooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/hooks/install"
	"github.com/drover-dev/drover/hooks/proc"
	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/internal/deployid"
)

// ProcessRunner runs one hook script under process control.
type ProcessRunner interface {
	Run(ctx context.Context, s proc.Spec) (proc.Result, error)
}

var _ ProcessRunner = proc.Runner(nil)

// Config is what an Engine needs, built once by its owner.
type Config struct {
	Store  *Store
	Runner ProcessRunner
	Logger *slog.Logger
	// Root prefixes every appspec destination; "" or "/" means none.
	Root string
	// Host is this host's name, given to scripts as DROVER_HOST.
	Host string
	// Now is the clock; time.Now when nil. The lifecycle reads time from it
	// alone: records, events, the hook log's timestamps and the hour the
	// scripts of one event share. (A slot's fence is checked against the
	// monotonic clock it was set on, not against Now.)
	Now func() time.Time
	// KeepArchives is how many revision archives a group keeps (5 when 0);
	// the last successful one is always kept on top.
	KeepArchives int
	// KeepRecords is how many deployment records and logs a group keeps
	// (50 when 0).
	KeepRecords int
	// KillGrace is the time between TERM and KILL when a hook times out.
	KillGrace time.Duration
	// DrainTimeout is how long output is still read after a script exits
	// while a process it left behind holds the pipe.
	DrainTimeout time.Duration
	// BaseEnv is the environment every script starts from (os.Environ()
	// when nil), as CodeDeploy passes the agent's environment on.
	BaseEnv []string
}

// Engine runs deployments. It is safe for concurrent use; deployments of
// one group are serialised by the store's lock.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// NewEngine checks the configuration and returns an Engine.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("hooks: no state store")
	}
	if cfg.Runner == nil {
		return nil, errors.New("hooks: no process runner")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("hooks: root %q is not an absolute path", cfg.Root)
	}
	if cfg.KeepArchives <= 0 {
		cfg.KeepArchives = 5
	}
	if cfg.KeepRecords <= 0 {
		cfg.KeepRecords = 50
	}
	if cfg.KeepRecords < cfg.KeepArchives {
		cfg.KeepRecords = cfg.KeepArchives
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 2 * time.Second
	}
	if cfg.BaseEnv == nil {
		cfg.BaseEnv = AgentEnv(os.Environ())
	}
	return &Engine{cfg: cfg, log: cfg.Logger}, nil
}

// Store returns the engine's state store.
func (e *Engine) Store() *Store { return e.cfg.Store }

// Request is one deployment to run.
type Request struct {
	Application string
	Group       string
	Revision    string // label shown to people and given as DROVER_REVISION
	// RevisionID is the revision's content identity (git commit, bundle
	// sha256), kept in the record so that a rollback can find its archive.
	RevisionID string
	// Rollback marks a return to an earlier revision after a halt.
	Rollback bool
	// ID is the deployment ID; when empty it is DeploymentID(store, app, group,
	// revision, seq) with seq the group's next local sequence number.
	ID string
	// Fetch puts the revision's bundle into dst, an empty staging directory
	// inside the state directory. It runs as the DownloadBundle event.
	Fetch func(ctx context.Context, dst string) error
	// BundleEnv is given to every script: BUNDLE_COMMIT, or BUNDLE_BUCKET,
	// BUNDLE_KEY and BUNDLE_ETAG.
	BundleEnv map[string]string
	// IgnoreApplicationStopFailures lets the deployment go on when
	// ApplicationStop, BeforeBlockTraffic or AfterBlockTraffic fail, as
	// CodeDeploy's option of the same name does.
	IgnoreApplicationStopFailures bool
	// Progress, when set, is called as each event starts and ends.
	Progress func(ev EventRecord)
	// Fence, when set, is the rollout protocol's fence of this deployment's
	// slot (reconcile/rollout/PROTOCOL.md, A3): no event starts once it has passed
	// (checked before every event and script, so an agent resumed after a
	// pause stops before doing anything), and every script runs under it
	// (proc.Fence: enforced by the script's watchdog even while the agent
	// is stopped).
	Fence *proc.Fence
}

// ErrFenced is the failure of a deployment whose slot's fence passed: the
// host's lease on its slot may have lapsed, so it must not go on.
var ErrFenced = errors.New("the slot's fence passed: this host's lease on its rollout slot ran out (the agent was paused, or cut off from the voters)")

// DeploymentID is the ID of a deployment run outside a fleet (drover
// deploy-local): "d-" and 12 hex digits of sha256(app, group, revision,
// seq, store), store being the state directory's ID, so that two fresh
// state directories never give the same ID. A fleet's IDs come from the
// rollout protocol (rollout.DeploymentID); both are internal/deployid's
// hash.
func DeploymentID(store, app, group, revision string, seq int) string {
	return deployid.Of(app, group, revision, strconv.Itoa(seq), store)
}

// DeploymentGroupID is a stable UUID-shaped ID of a deployment group, given
// to scripts as DEPLOYMENT_GROUP_ID.
func DeploymentGroupID(app, group string) string {
	s := sha256.Sum256([]byte("drover-group\x00" + app + "\x00" + group))
	x := hex.EncodeToString(s[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// EventError says which lifecycle event failed and why.
type EventError struct {
	Event appspec.Event
	Err   error
}

func (e *EventError) Error() string { return fmt.Sprintf("%s failed: %v", e.Event, e.Err) }
func (e *EventError) Unwrap() error { return e.Err }

// deployment is the state of one running Deploy call.
type deployment struct {
	e    *Engine
	req  Request
	rec  *Record
	log  *slog.Logger
	dir  string
	prev *Record // last successful deployment, nil on a first deployment

	bundleDir string           // unpacked new revision, set by DownloadBundle
	unsynced  []string         // file systems Install wrote to, flushed before success is recorded
	spec      *appspec.AppSpec // its appspec
	prevSpec  *appspec.AppSpec // the previous revision's, loaded on first use
	prevErr   error

	logMu   sync.Mutex // guards logFile writes from output callbacks
	logFile *os.File
}

// Deploy runs one full in-place lifecycle. It returns the final record; the
// error is non-nil when the deployment failed (an *EventError names the
// event) or could not start.
func (e *Engine) Deploy(ctx context.Context, req Request) (*Record, error) {
	if err := validName("application", req.Application); err != nil {
		return nil, err
	}
	if err := validName("deployment group", req.Group); err != nil {
		return nil, err
	}
	if req.Fetch == nil {
		return nil, errors.New("deploy: no bundle to fetch")
	}
	st := e.cfg.Store
	unlock, err := st.Lock(req.Group)
	if err != nil {
		return nil, err
	}
	defer unlock()

	seq, err := st.NextSeq(req.Group)
	if err != nil {
		return nil, err
	}
	id := req.ID
	if id == "" {
		id = DeploymentID(st.ID(), req.Application, req.Group, req.Revision, seq)
	}
	if err := validName("deployment", id); err != nil {
		return nil, err
	}
	if _, err := st.Get(req.Group, id); err == nil {
		// The same fleet-wide ID again on this host (a retry of a revision
		// it ran before): keep both records apart.
		id = fmt.Sprintf("%s-%d", id, seq)
	}
	// The stop events run the last installed revision's scripts (its files
	// are in place), not the last successful one's, as CodeDeploy does.
	prev, err := st.LastInstalled(req.Group)
	if err != nil && !errors.Is(err, ErrNoDeployment) {
		return nil, err
	}
	d := &deployment{
		e:   e,
		req: req,
		dir: st.DeploymentDir(req.Group, id),
		rec: &Record{
			ID: id, Application: req.Application, Group: req.Group, Revision: req.Revision,
			RevisionID: req.RevisionID, Rollback: req.Rollback, Host: e.cfg.Host, Seq: seq, Status: StatusRunning, Started: e.cfg.Now(),
			BundleEnv: req.BundleEnv, Events: []EventRecord{},
		},
		log: e.log.With("app", req.Application, "group", req.Group, "deployment", id),
	}
	if prev != nil {
		d.prev = prev
		d.rec.Previous = prev.ID
	}
	if err := st.Put(d.rec); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(st.LogPath(req.Group, id)), 0o755); err != nil {
		return d.finish(&EventError{Event: appspec.DownloadBundle, Err: err})
	}
	d.logFile, err = os.OpenFile(st.LogPath(req.Group, id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return d.finish(&EventError{Event: appspec.DownloadBundle, Err: err})
	}
	defer d.logFile.Close()

	d.log.Info("deployment started", "revision", req.Revision, "previous", d.rec.Previous)
	for _, ev := range appspec.Events {
		if err := d.runEvent(ctx, ev); err != nil {
			return d.finish(err)
		}
	}
	return d.finish(nil)
}

// finish records the outcome. err is an *EventError or nil.
func (d *deployment) finish(err error) (*Record, error) {
	st := d.e.cfg.Store
	d.rec.Finished = d.e.cfg.Now()
	if err != nil {
		d.rec.Status = StatusFailed
		d.rec.Error = err.Error()
		var ee *EventError
		if errors.As(err, &ee) {
			d.rec.FailedEvent = string(ee.Event)
		}
	} else {
		// The installed files are flushed here, at the commit point, not at
		// the end of Install: the kernel writes them back while the later
		// hooks run. A crash before this leaves a running record, recovered
		// as failed, and the rollback policy applies.
		//
		// The pointer moves before the record says succeeded: a crash in
		// between leaves a running record (recovered as failed) whose
		// revision is nonetheless what ApplicationStop will use next, which
		// is right, since its files are installed.
		if perr := install.Sync(d.unsynced); perr != nil {
			d.rec.Status = StatusFailed
			d.rec.Error = fmt.Sprintf("flush installed files: %v", perr)
			err = perr
		} else if perr := st.setLastSuccessful(d.req.Group, d.rec.ID); perr != nil {
			d.rec.Status = StatusFailed
			d.rec.Error = fmt.Sprintf("record success: %v", perr)
			err = perr
		} else {
			d.rec.Status = StatusSucceeded
		}
	}
	if perr := st.Put(d.rec); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		d.log.Info("deployment succeeded", "revision", d.req.Revision, "duration", d.rec.Duration(d.rec.Finished).Round(time.Millisecond))
	} else {
		d.log.Error("deployment failed", "revision", d.req.Revision, "event", d.rec.FailedEvent, "err", err)
	}
	if perr := st.Prune(d.req.Group, d.e.cfg.KeepArchives, d.e.cfg.KeepRecords); perr != nil {
		d.log.Warn("pruning old revisions failed", "err", perr)
	}
	return d.rec, err
}

// runEvent runs one lifecycle event and records it.
func (d *deployment) runEvent(ctx context.Context, ev appspec.Event) error {
	er := EventRecord{Name: string(ev), Status: EventRunning, Started: d.e.cfg.Now()}
	idx := len(d.rec.Events)
	d.rec.Events = append(d.rec.Events, er)

	if d.fenced() {
		d.rec.Events[idx].Status = EventFailed
		d.rec.Events[idx].Error = ErrFenced.Error()
		d.rec.Events[idx].Finished = d.e.cfg.Now()
		d.notify(idx)
		return &EventError{Event: ev, Err: ErrFenced}
	}
	skip, run := d.plan(ev)
	if skip != "" {
		d.rec.Events[idx].Status = EventSkipped
		d.rec.Events[idx].Error = skip
		d.rec.Events[idx].Finished = d.rec.Events[idx].Started
		d.notify(idx)
		return nil
	}
	if err := d.e.cfg.Store.Put(d.rec); err != nil {
		return &EventError{Event: ev, Err: err}
	}
	d.notify(idx)
	d.writeLog(d.e.cfg.Now(), "LifecycleEvent - "+string(ev))

	err := run(ctx, &d.rec.Events[idx])
	d.rec.Events[idx].Finished = d.e.cfg.Now()
	if err != nil && ev.FromPreviousRevision() && d.req.IgnoreApplicationStopFailures && !errors.Is(err, ErrFenced) {
		d.log.Warn("event failed; going on as ignore_application_stop_failures is set", "event", ev, "err", err)
		d.rec.Events[idx].Error = "failure ignored: " + err.Error()
		err = nil
	}
	if err != nil {
		d.rec.Events[idx].Status = EventFailed
		d.rec.Events[idx].Error = err.Error()
		d.notify(idx)
		return &EventError{Event: ev, Err: err}
	}
	d.rec.Events[idx].Status = EventSucceeded
	if err := d.e.cfg.Store.Put(d.rec); err != nil {
		return &EventError{Event: ev, Err: err}
	}
	d.notify(idx)
	return nil
}

// fenced reports whether the deployment's fence has passed. It reads the
// monotonic clock the fence was set on, not Config.Now.
func (d *deployment) fenced() bool { return d.req.Fence != nil && d.req.Fence.Passed(time.Now()) }

func (d *deployment) notify(idx int) {
	if d.req.Progress != nil {
		d.req.Progress(d.rec.Events[idx])
	}
}

// plan says whether ev is skipped (and why) or how to run it.
func (d *deployment) plan(ev appspec.Event) (skip string, run func(context.Context, *EventRecord) error) {
	switch {
	case ev == appspec.DownloadBundle:
		return "", d.download
	case ev == appspec.Install:
		return "", d.install
	case ev.FromPreviousRevision():
		if d.prev == nil {
			return "first deployment of this group on this host: no previous revision", nil
		}
		spec, err := d.previousSpec()
		if err != nil {
			return "", func(context.Context, *EventRecord) error { return err }
		}
		if len(spec.Hooks[ev]) == 0 {
			return "no scripts", nil
		}
		dir := d.e.cfg.Store.BundleDir(d.req.Group, d.prev.ID)
		return "", func(ctx context.Context, er *EventRecord) error {
			return d.runScripts(ctx, ev, dir, spec.Hooks[ev], er)
		}
	default:
		if len(d.spec.Hooks[ev]) == 0 {
			return "no scripts", nil
		}
		return "", func(ctx context.Context, er *EventRecord) error {
			return d.runScripts(ctx, ev, d.bundleDir, d.spec.Hooks[ev], er)
		}
	}
}

// previousSpec loads the last successful revision's appspec from its archive.
func (d *deployment) previousSpec() (*appspec.AppSpec, error) {
	if d.prevSpec == nil && d.prevErr == nil {
		dir := d.e.cfg.Store.BundleDir(d.req.Group, d.prev.ID)
		d.prevSpec, d.prevErr = appspec.Load(dir)
		if d.prevErr != nil {
			d.prevErr = fmt.Errorf("previous revision %s (deployment %s): %w", d.prev.Revision, d.prev.ID, d.prevErr)
		}
	}
	return d.prevSpec, d.prevErr
}

// download fetches the bundle into a staging directory, checks its
// appspec, and only then renames it into place as the revision archive.
func (d *deployment) download(ctx context.Context, _ *EventRecord) error {
	staging := filepath.Join(d.dir, "bundle.staging")
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("clear staging directory: %w", err)
	}
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	if err := d.req.Fetch(ctx, staging); err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("fetch bundle: %w", err)
	}
	spec, err := appspec.Load(staging)
	if err != nil {
		os.RemoveAll(staging)
		return err
	}
	for _, w := range spec.Warnings {
		d.writeLog(d.e.cfg.Now(), "[warning] "+w.String())
		d.log.Warn("appspec: " + w.String())
	}
	final := filepath.Join(d.dir, "bundle")
	if err := os.Rename(staging, final); err != nil {
		return fmt.Errorf("move bundle into place: %w", err)
	}
	if err := atomicfile.SyncDir(d.dir); err != nil {
		return err
	}
	d.bundleDir = final
	d.spec = spec // its paths are relative to the bundle root, so still valid
	return nil
}

// install copies the revision's files into place. The cleanup lists of
// earlier deployments are undone first; the list of this deployment is
// registered before any file is copied, so that an interrupted Install is
// still cleaned up by the next deployment.
func (d *deployment) install(ctx context.Context, er *EventRecord) error {
	st := d.e.cfg.Store
	group := d.req.Group
	pending, err := st.pendingCleanups(group)
	if err != nil {
		return err
	}
	prevList, err := d.mergeCleanupLists(pending)
	if err != nil {
		return err
	}
	if err := st.setPendingCleanups(group, append(pending, d.rec.ID)); err != nil {
		return err
	}
	res, err := install.Install(ctx, d.spec, install.Options{
		Root:            d.e.cfg.Root,
		BundleDir:       d.bundleDir,
		CleanupFile:     st.cleanupPath(group, d.rec.ID),
		PrevCleanupFile: prevList,
		DeferSync:       true,
		Logger:          d.log,
	})
	if err != nil {
		return err
	}
	d.unsynced = res.Unsynced
	d.writeLog(d.e.cfg.Now(), fmt.Sprintf("Install - %d files, %d directories, %d bytes; %d earlier entries removed", res.Files, res.Dirs, res.Bytes, res.Removed))
	if err := st.setPendingCleanups(group, []string{d.rec.ID}); err != nil {
		return err
	}
	// Its files are in place: from now on its ApplicationStop is the one
	// to run, whatever happens to the rest of this deployment.
	if err := st.setLastInstalled(group, d.rec.ID); err != nil {
		return fmt.Errorf("record the installed revision: %w", err)
	}
	return nil
}

// mergeCleanupLists returns one file naming everything the given
// deployments installed ("" when none).
func (d *deployment) mergeCleanupLists(ids []string) (string, error) {
	st := d.e.cfg.Store
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return st.cleanupPath(d.req.Group, ids[0]), nil
	}
	var all []byte
	for _, id := range ids {
		b, err := os.ReadFile(st.cleanupPath(d.req.Group, id))
		if err != nil && !os.IsNotExist(err) {
			return "", fmt.Errorf("read cleanup list of %s: %w", id, err)
		}
		// A last line without its newline is a write cut short by a crash;
		// the install package ignores it, and so must the merge.
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			all = append(all, b[:i+1]...)
		}
	}
	p := filepath.Join(d.dir, "cleanup.previous")
	if err := os.WriteFile(p, all, 0o644); err != nil {
		return "", fmt.Errorf("merge cleanup lists: %w", err)
	}
	return p, nil
}

// runScripts runs an event's scripts in order from dir, the bundle root.
func (d *deployment) runScripts(ctx context.Context, ev appspec.Event, dir string, hs []appspec.Hook, er *EventRecord) error {
	env := d.env(ev)
	// The scripts of one event share CodeDeploy's one-hour budget: explicit
	// timeouts are validated to fit, and scripts without one get what is
	// left of it.
	eventStart := d.e.cfg.Now()
	for i, h := range hs {
		if left := appspec.DefaultHookTimeout - d.e.cfg.Now().Sub(eventStart); h.Timeout > left {
			if left <= 0 {
				return fmt.Errorf("%s used up its %d seconds before script %s could start", ev, int(appspec.DefaultHookTimeout/time.Second), h.Location)
			}
			h.Timeout = left
		}
		if d.fenced() {
			return ErrFenced
		}
		path := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(h.Location, "/")))
		if err := ensureExecutable(path); err != nil {
			return fmt.Errorf("script at specified location: %s: %w", h.Location, err)
		}
		unit := fmt.Sprintf("drover-%s-%s-%s", d.req.Application, ev, d.rec.ID)
		if i > 0 {
			unit += "-" + strconv.Itoa(i+1)
		}
		log := d.log.With("event", string(ev), "script", h.Location)
		d.writeLog(d.e.cfg.Now(), "Script - "+h.Location)
		var tail tailBuffer
		res, err := d.e.cfg.Runner.Run(ctx, proc.Spec{
			Unit:         unit,
			Path:         path,
			Dir:          dir,
			Env:          env,
			User:         h.RunAs,
			Timeout:      h.Timeout,
			KillGrace:    d.e.cfg.KillGrace,
			DrainTimeout: d.e.cfg.DrainTimeout,
			Fence:        d.req.Fence,
			Output: func(l proc.Line) {
				d.writeLog(d.e.cfg.Now(), "["+l.Stream+"]"+l.Text) // Output runs as the line is read: l.Time, on the engine's clock
				tail.add(l.Text)
				log.Debug(l.Text, "stream", l.Stream)
			},
		})
		sr := ScriptRecord{Location: h.Location, RunAs: h.RunAs, ExitCode: res.ExitCode, Signal: res.Signal,
			TimedOut: res.TimedOut, Leftover: res.LeftoverOutput, Duration: res.Duration}
		er.Scripts = append(er.Scripts, sr)
		if err != nil {
			return fmt.Errorf("script at specified location: %s: %w", h.Location, err)
		}
		if res.LeftoverOutput {
			msg := "a process this script started still holds its output; the event ended when the script exited (redirect the background process's stdout and stderr to silence this)"
			d.writeLog(d.e.cfg.Now(), "[warning] "+msg)
			log.Warn(msg)
		}
		if ferr := scriptFailure(h, res); ferr != nil {
			if t := tail.String(); t != "" {
				ferr = fmt.Errorf("%w; last output:\n%s", ferr, t)
			}
			return ferr
		}
	}
	return nil
}

// scriptFailure turns a failed result into CodeDeploy's wording.
func scriptFailure(h appspec.Hook, res proc.Result) error {
	who := "script at specified location: " + h.Location
	if h.RunAs != "" {
		who += " run as user " + h.RunAs
	}
	switch {
	case res.Fenced:
		return fmt.Errorf("%s was stopped: %w", who, ErrFenced)
	case res.Canceled:
		return fmt.Errorf("%s was stopped: the agent is shutting down", who)
	case res.TimedOut:
		return fmt.Errorf("%s failed to complete in %d seconds; its process tree was killed", who, int(h.Timeout/time.Second))
	case res.Signal != "":
		return fmt.Errorf("%s was killed by %s", who, res.Signal)
	case res.ExitCode != 0:
		return fmt.Errorf("%s failed with exit code %d", who, res.ExitCode)
	}
	return nil
}

// ensureExecutable makes a hook script executable, as CodeDeploy does with
// a warning, when its bundle forgot the x bit.
func ensureExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0o111 {
		return nil
	}
	if err := os.Chmod(path, fi.Mode().Perm()|0o111); err != nil {
		return fmt.Errorf("not executable, and making it executable failed: %w", err)
	}
	return nil
}

// env is the environment of an event's scripts: the agent's, then
// CodeDeploy's variables, the bundle's, and drover's own.
func (d *deployment) env(ev appspec.Event) []string {
	set := map[string]string{
		"LIFECYCLE_EVENT":       string(ev),
		"DEPLOYMENT_ID":         d.rec.ID,
		"APPLICATION_NAME":      d.req.Application,
		"DEPLOYMENT_GROUP_NAME": d.req.Group,
		"DEPLOYMENT_GROUP_ID":   DeploymentGroupID(d.req.Application, d.req.Group),
		"DROVER_HOST":           d.e.cfg.Host,
		"DROVER_REVISION":       d.req.Revision,
		"DROVER_ROOT":           d.e.cfg.Root,
	}
	for k, v := range d.req.BundleEnv {
		set[k] = v
	}
	out := make([]string, 0, len(d.e.cfg.BaseEnv)+len(set))
	for _, kv := range d.e.cfg.BaseEnv {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := set[k]; !over {
			out = append(out, kv)
		}
	}
	for _, k := range sortedKeys(set) {
		out = append(out, k+"="+set[k])
	}
	return out
}

// writeLog appends one timestamped line to the deployment's hook log.
func (d *deployment) writeLog(t time.Time, line string) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	if d.logFile == nil {
		return
	}
	fmt.Fprintf(d.logFile, "%s %s\n", t.UTC().Format("2006-01-02T15:04:05.000Z"), line)
}

// AgentEnv is the agent's environment without what systemd gave the agent
// itself: a hook that inherited NOTIFY_SOCKET or WATCHDOG_USEC could report
// for the agent, and LISTEN_FDS names descriptors the hook does not have.
func AgentEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "NOTIFY_SOCKET", strings.HasPrefix(k, "WATCHDOG_"), strings.HasPrefix(k, "LISTEN_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}
