package hooks

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// Status is where a deployment stands.
type Status string

// Deployment statuses. A record only moves forward: running, then
// succeeded or failed.
const (
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// EventStatus is the outcome of one lifecycle event.
type EventStatus string

// Event outcomes.
const (
	EventSucceeded EventStatus = "succeeded"
	EventFailed    EventStatus = "failed"
	EventSkipped   EventStatus = "skipped"
	EventRunning   EventStatus = "running"
)

// ScriptRecord is the outcome of one hook script.
type ScriptRecord struct {
	Location string        `json:"location"`
	RunAs    string        `json:"runas,omitempty"`
	ExitCode int           `json:"exit_code"`
	Signal   string        `json:"signal,omitempty"`
	TimedOut bool          `json:"timed_out,omitempty"`
	Leftover bool          `json:"leftover_output,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// EventRecord is the outcome of one lifecycle event.
type EventRecord struct {
	Name     string         `json:"name"`
	Status   EventStatus    `json:"status"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished,omitzero"`
	Error    string         `json:"error,omitempty"`
	Scripts  []ScriptRecord `json:"scripts,omitempty"`
}

// Record is one deployment on this host, as kept in the state directory.
type Record struct {
	ID          string            `json:"id"`
	Application string            `json:"application"`
	Group       string            `json:"group"`
	Revision    string            `json:"revision"`              // label, as people and scripts see it
	RevisionID  string            `json:"revision_id,omitempty"` // content identity (commit, sha256), when known
	Rollback    bool              `json:"rollback,omitempty"`    // a return to an earlier revision after a halt
	Host        string            `json:"host"`
	Seq         int               `json:"seq"` // per group, 1 for the first deployment
	Status      Status            `json:"status"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished,omitzero"`
	FailedEvent string            `json:"failed_event,omitempty"`
	Error       string            `json:"error,omitempty"`
	Previous    string            `json:"previous,omitempty"` // last installed deployment when this one started: whose stop scripts it ran
	BundleEnv   map[string]string `json:"bundle_env,omitempty"`
	Events      []EventRecord     `json:"events"`
}

// Duration is how long the deployment ran (so far, if it still runs).
func (r *Record) Duration(now time.Time) time.Duration {
	if r.Finished.IsZero() {
		return now.Sub(r.Started)
	}
	return r.Finished.Sub(r.Started)
}

// Store is the on-disk state of every deployment group on this host:
//
//	STATE/deployments/.store-id   this state directory's random ID (see ID)
//	STATE/deployments/GROUP/
//	    .lock                 flock held while a deployment of the group runs
//	    last-successful       ID of the last successful deployment: rollback
//	                          target, and what a fresh host catches up to
//	    last-installed        ID of the last deployment whose Install event
//	                          completed (absent: last-successful): whose
//	                          ApplicationStop, BeforeBlockTraffic and
//	                          AfterBlockTraffic the next deployment runs
//	    cleanup-lists         IDs whose install cleanup lists are still to be undone
//	    DEPLOYMENT-ID/
//	        record.json       the Record, rewritten atomically at every step
//	        bundle/           the unpacked revision (the revision archive)
//	        cleanup           files and directories Install created
//	        logs/scripts.log  every line of hook output, timestamped
//
// Every file is replaced atomically; a kill -9 at any instant leaves a
// readable state.
type Store struct {
	dir string
	id  string
}

// ErrNoDeployment says a group has no (successful) deployment yet.
var ErrNoDeployment = errors.New("no deployment")

// OpenStore opens (creating if needed) the state directory.
func OpenStore(stateDir string) (*Store, error) {
	if stateDir == "" {
		return nil, errors.New("state directory is empty")
	}
	dir := filepath.Join(stateDir, "deployments")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	s := &Store{dir: dir}
	id, err := s.loadID()
	if err != nil {
		return nil, err
	}
	s.id = id
	return s, nil
}

// storeIDFile holds the store's ID: 16 random hex digits made when the
// state directory is first used.
const storeIDFile = ".store-id" // a dot: never a group name

// ID is the state directory's ID: random, made when it was first used, kept
// for its life. A host wiped or reinstalled gets a new one, so IDs derived
// from it (deployment IDs) never repeat across reinstalls.
func (s *Store) ID() string { return s.id }

func (s *Store) loadID() (string, error) {
	p := filepath.Join(s.dir, storeIDFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if id := strings.TrimSpace(string(b)); len(id) == 16 && isHex(id) {
			return id, nil
		}
		// Corrupt (a torn write cannot happen: it is written atomically;
		// an edit can): a new ID only makes later IDs differ, which is safe.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read state directory ID: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make state directory ID: %w", err)
	}
	id := hex.EncodeToString(r[:])
	if err := atomicfile.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write state directory ID: %w", err)
	}
	return id, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// groupDir returns the directory of a group. Group and deployment names are
// checked by validName before they reach the file system.
func (s *Store) groupDir(group string) string { return filepath.Join(s.dir, group) }

// DeploymentDir is the directory of one deployment.
func (s *Store) DeploymentDir(group, id string) string {
	return filepath.Join(s.dir, group, id)
}

// BundleDir is the unpacked revision of one deployment.
func (s *Store) BundleDir(group, id string) string {
	return filepath.Join(s.DeploymentDir(group, id), "bundle")
}

// LogPath is the hook output log of one deployment.
func (s *Store) LogPath(group, id string) string {
	return filepath.Join(s.DeploymentDir(group, id), "logs", "scripts.log")
}

func (s *Store) cleanupPath(group, id string) string {
	return filepath.Join(s.DeploymentDir(group, id), "cleanup")
}

// validName accepts names safe as a single path element.
func validName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if len(name) > 128 {
		return fmt.Errorf("%s name %q is longer than 128 characters", kind, name)
	}
	for _, r := range name {
		ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%s name %q: only letters, digits, '.', '-' and '_' are allowed", kind, name)
		}
	}
	if name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%s name %q may not start with '.'", kind, name)
	}
	return nil
}

// Lock takes the group's lock, so that two deployments of one group never
// run on one host at once (P3), even from two processes. It fails at once
// when another holder has it.
func (s *Store) Lock(group string) (unlock func(), err error) {
	if err := validName("deployment group", group); err != nil {
		return nil, err
	}
	gd := s.groupDir(group)
	if err := os.MkdirAll(gd, 0o755); err != nil {
		return nil, fmt.Errorf("lock group %s: %w", group, err)
	}
	f, err := os.OpenFile(filepath.Join(gd, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock group %s: %w", group, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock group %s: %w", group, ErrBusy)
		}
		return nil, fmt.Errorf("lock group %s: %w", group, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ErrBusy says another deployment of the group is running on this host.
var ErrBusy = errors.New("another deployment of this group is running on this host")

// Put writes a record atomically.
func (s *Store) Put(r *Record) error {
	if err := validName("deployment group", r.Group); err != nil {
		return err
	}
	if err := validName("deployment", r.ID); err != nil {
		return err
	}
	dd := s.DeploymentDir(r.Group, r.ID)
	if err := os.MkdirAll(dd, 0o755); err != nil {
		return fmt.Errorf("save deployment %s: %w", r.ID, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("save deployment %s: %w", r.ID, err)
	}
	return atomicfile.WriteFile(filepath.Join(dd, "record.json"), append(b, '\n'), 0o644)
}

// Get reads one record.
func (s *Store) Get(group, id string) (*Record, error) {
	if err := validName("deployment group", group); err != nil {
		return nil, err
	}
	if err := validName("deployment", id); err != nil {
		return nil, err
	}
	p := filepath.Join(s.DeploymentDir(group, id), "record.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("deployment %s of group %s: %w", id, group, ErrNoDeployment)
	}
	if err != nil {
		return nil, fmt.Errorf("read deployment record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return &r, nil
}

// Groups lists the deployment groups that have state.
func (s *Store) Groups() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && validName("group", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List returns every record of a group, oldest first.
func (s *Store) List(group string) ([]*Record, error) {
	if err := validName("deployment group", group); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.groupDir(group))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list deployments of %s: %w", group, err)
	}
	var out []*Record
	for _, e := range ents {
		if !e.IsDir() || validName("deployment", e.Name()) != nil {
			continue
		}
		r, err := s.Get(group, e.Name())
		if errors.Is(err, ErrNoDeployment) {
			continue // a directory made just before a crash, before its record
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// NextSeq is the sequence number the group's next deployment gets.
func (s *Store) NextSeq(group string) (int, error) {
	rs, err := s.List(group)
	if err != nil {
		return 0, err
	}
	if len(rs) == 0 {
		return 1, nil
	}
	return rs[len(rs)-1].Seq + 1, nil
}

// LastSuccessful returns the group's last successful deployment, or
// ErrNoDeployment.
func (s *Store) LastSuccessful(group string) (*Record, error) {
	id, err := s.readPointer(group, "last-successful")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("group %s: %w", group, ErrNoDeployment)
	}
	return s.Get(group, id)
}

// LastInstalled returns the group's last deployment whose Install event
// completed, successful or not: its files are the ones in place, so its
// ApplicationStop is the one to run next, as CodeDeploy's agent records
// its "last successful install" right after Install. A state directory
// without the pointer (written by an older drover) falls back to the last
// successful deployment. ErrNoDeployment if there is none.
func (s *Store) LastInstalled(group string) (*Record, error) {
	id, err := s.readPointer(group, "last-installed")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return s.LastSuccessful(group)
	}
	return s.Get(group, id)
}

func (s *Store) setLastInstalled(group, id string) error {
	return atomicfile.WriteFile(filepath.Join(s.groupDir(group), "last-installed"), []byte(id+"\n"), 0o644)
}

func (s *Store) setLastSuccessful(group, id string) error {
	return atomicfile.WriteFile(filepath.Join(s.groupDir(group), "last-successful"), []byte(id+"\n"), 0o644)
}

func (s *Store) readPointer(group, name string) (string, error) {
	if err := validName("deployment group", group); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(s.groupDir(group), name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s of %s: %w", name, group, err)
	}
	id := strings.TrimSpace(string(b))
	if id != "" {
		if err := validName("deployment", id); err != nil {
			return "", fmt.Errorf("%s of %s: %w", name, group, err)
		}
	}
	return id, nil
}

// pendingCleanups lists the deployments whose install cleanup lists have not
// been undone yet: normally just the last one that ran Install, two when
// an Install failed or was interrupted.
func (s *Store) pendingCleanups(group string) ([]string, error) {
	f, err := os.Open(filepath.Join(s.groupDir(group), "cleanup-lists"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cleanup lists of %s: %w", group, err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id := strings.TrimSpace(sc.Text())
		if id == "" {
			continue
		}
		if err := validName("deployment", id); err != nil {
			return nil, fmt.Errorf("cleanup lists of %s: %w", group, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read cleanup lists of %s: %w", group, err)
	}
	return ids, nil
}

func (s *Store) setPendingCleanups(group string, ids []string) error {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	return atomicfile.WriteFile(filepath.Join(s.groupDir(group), "cleanup-lists"), []byte(b.String()), 0o644)
}

// Recover marks every deployment still recorded as running as failed: the
// process that ran it is gone (a crash, kill -9, or power loss). It returns
// the records it changed. Call it before starting new deployments.
func (s *Store) Recover(now time.Time) ([]*Record, error) {
	groups, err := s.Groups()
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, g := range groups {
		rs, err := s.List(g)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.Status != StatusRunning {
				continue
			}
			event := ""
			for i := range r.Events {
				if r.Events[i].Status == EventRunning {
					r.Events[i].Status = EventFailed
					r.Events[i].Finished = now
					r.Events[i].Error = "interrupted: the agent stopped during this event"
					event = r.Events[i].Name
				}
			}
			r.Status = StatusFailed
			r.Finished = now
			r.FailedEvent = event
			if event != "" {
				r.Error = fmt.Sprintf("interrupted during %s: the agent stopped before the deployment ended", event)
			} else {
				r.Error = "interrupted: the agent stopped before the deployment ended"
			}
			if err := s.Put(r); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// Prune removes the revision archives (bundle directories) of a group's
// older deployments, keeping the newest keep ones and always the last
// successful. Records and logs are kept for the newest keepRecords.
func (s *Store) Prune(group string, keep, keepRecords int) error {
	rs, err := s.List(group)
	if err != nil {
		return err
	}
	last, err := s.readPointer(group, "last-successful")
	if err != nil {
		return err
	}
	installed, err := s.readPointer(group, "last-installed")
	if err != nil {
		return err
	}
	pending, err := s.pendingCleanups(group)
	if err != nil {
		return err
	}
	// The running deployment and the last successful one keep everything;
	// one whose cleanup list is still to be undone keeps its directory.
	keepDir := map[string]bool{last: true, installed: true}
	for _, id := range pending {
		keepDir[id] = true
	}
	// The running deployment, the last successful and the last installed
	// one count first, so that the group holds keep archives in all.
	pinned := func(r *Record) bool { return r.Status == StatusRunning || r.ID == last || r.ID == installed }
	archives := 0
	for _, r := range rs {
		if pinned(r) {
			archives++
		}
	}
	for i := len(rs) - 1; i >= 0; i-- { // newest first
		r := rs[i]
		if pinned(r) {
			continue
		}
		if newer := len(rs) - 1 - i; newer >= keepRecords && !keepDir[r.ID] {
			if err := os.RemoveAll(s.DeploymentDir(group, r.ID)); err != nil {
				return fmt.Errorf("prune deployment %s: %w", r.ID, err)
			}
			continue
		}
		bd := s.BundleDir(group, r.ID)
		if _, err := os.Lstat(bd); err != nil {
			continue
		}
		if archives < keep {
			archives++
			continue
		}
		if err := os.RemoveAll(bd); err != nil {
			return fmt.Errorf("prune revision archive %s: %w", r.ID, err)
		}
	}
	return nil
}

// FindRevision returns the newest successful deployment of revisionID (a
// content identity) whose revision archive is still on disk, for a
// rollback from the local archive.
func (s *Store) FindRevision(group, revisionID string) (*Record, error) {
	rs, err := s.List(group)
	if err != nil {
		return nil, err
	}
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		if r.Status != StatusSucceeded || (r.RevisionID != revisionID && r.Revision != revisionID) {
			continue
		}
		if _, err := os.Stat(s.BundleDir(group, r.ID)); err == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("revision %s of group %s is not in the local archive: %w", revisionID, group, ErrNoDeployment)
}
