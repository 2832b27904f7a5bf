// Package gitsrc is the git Source: a branch of a repository, with the
// application's manifest.yaml in a directory (path) and the bundle in
// bundle.path below it.
//
// # Polls
//
// An idle poll is one ref listing (ls-remote): when the branch head has not
// moved, nothing is fetched and the cached answer is returned. When it has
// moved, the new head is fetched into a bare cache repository in the state
// directory (depth 1 the first time; incremental afterwards), reused across
// polls and restarts.
//
// # Revision identity
//
// A revision is a commit, but a commit that changes neither the manifest nor
// the bundle directory is not a new revision. The ID is therefore "the
// commit that introduced the current content": starting at the head, follow
// first parents while the content key (the manifest's blob hash and the
// bundle directory's tree hash, both exact and cheap) stays the same; the
// last commit with the head's key is the ID. The walk stops early at a
// commit already resolved before (the previous head, whose ID was computed
// by the same rule), so a normal poll looks at the new commits only. When
// the walk reaches the edge of the shallow history, the cache is deepened
// (doubling, up to MaxDepth) and the walk resumes. Every host therefore
// computes the same ID from the same branch, however long it has been
// polling — a property the deployment ID (DESIGN.md §2) depends on — and a
// revert to earlier content is a new revision (a rollback), as users expect.
//
// A rewritten branch (force-push) is followed like any other move and
// logged: the previous head is not an ancestor of the new one.
//
// # Errors
//
// A repository that does not exist, a branch that does not exist (the
// message lists a few that do and suggests a close one), a path that is
// not on the branch (naming the commit and suggesting a close directory)
// and a path without manifest.yaml are errors wrapping source.ErrNotFound;
// refused credentials wrap source.ErrAccessDenied. A git source never
// reports source.ErrNoManifest: a commit is atomic, so a path without a
// manifest is a mistake, not a publication in progress.
package gitsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/internal/safelink"
	"github.com/drover-dev/drover/internal/suggest"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
)

// Auth holds credential file names (DESIGN.md §5). Files are read at each
// network call, so rotated credentials are picked up without a restart.
type Auth struct {
	TokenFile      string // https: a token sent as basic-auth password
	SSHKeyFile     string // ssh: a private key (unencrypted)
	KnownHostsFile string // ssh: known_hosts; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts
}

// Config configures a Source.
type Config struct {
	URL      string // https://, http://, ssh://, git:// or file://
	Branch   string // default "main"
	Path     string // directory of manifest.yaml in the repository; "" is the root
	Auth     Auth
	CacheDir string // bare cache repository, e.g. <state_dir>/sources/<app>/git
	// Timeout bounds every network call (listing, fetch); default 60s.
	Timeout time.Duration
	// MaxDepth bounds how far history is deepened to find where the
	// current content was introduced; default 10000 commits.
	MaxDepth int
	// CABundle adds PEM certificates to trust for https (tests, private CAs).
	CABundle []byte
	Logger   *slog.Logger
}

// Source is a git source. It is safe for concurrent use.
type Source struct {
	cfg   Config
	desc  string
	san   *source.Sanitizer
	log   *slog.Logger
	mu    sync.Mutex // guards the fields below and the cache repository
	repo  *git.Repository
	st    state   // memo of the last valid resolution
	cache *cached // answer for cache.head, nil until resolved in this process
}

var (
	_ source.Source      = (*Source)(nil)
	_ source.BundleNamer = (*Source)(nil)
)

// state is persisted in the cache directory so that a restart neither
// refetches nor forgets which commit introduced the current content.
type state struct {
	Branch string `json:"branch"`
	Path   string `json:"path"`
	Head   string `json:"head"` // last resolved head
	Key    string `json:"key"`  // content key at Head
	ID     string `json:"id"`   // revision ID at Head
}

type cached struct {
	head plumbing.Hash
	rev  source.Revision
	err  error
}

const stateFile = "drover-source.json"

// New returns a git source. It opens (or creates) the cache repository but
// makes no network call.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("git source: url is required")
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("git source: cache directory is required")
	}
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	cfg.Path = strings.Trim(path.Clean("/"+cfg.Path), "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, san: source.NewSanitizer()}
	if u, err := url.Parse(cfg.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			s.san = source.NewSanitizer(p)
		}
	}
	s.desc = "git " + source.RedactURL(cfg.URL) + " branch " + cfg.Branch
	if cfg.Path != "" {
		s.desc += " path " + cfg.Path
	}
	s.log = cfg.Logger.With("source", s.desc)
	if err := s.openCache(); err != nil {
		return nil, s.san.Error(err)
	}
	return s, nil
}

// String describes the source without credentials.
func (s *Source) String() string { return s.desc }

func (s *Source) openCache() error {
	if err := os.MkdirAll(s.cfg.CacheDir, 0o700); err != nil {
		return fmt.Errorf("git cache: %w", err)
	}
	repo, err := git.PlainOpen(s.cfg.CacheDir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(s.cfg.CacheDir, true)
	}
	if err != nil {
		// A damaged cache is only a cache: start again.
		s.log.Warn("git cache unusable; recreating", "err", err)
		if rerr := os.RemoveAll(s.cfg.CacheDir); rerr != nil {
			return fmt.Errorf("git cache: %w", rerr)
		}
		if repo, err = git.PlainInit(s.cfg.CacheDir, true); err != nil {
			return fmt.Errorf("git cache: %w", err)
		}
	}
	s.repo = repo
	if data, err := os.ReadFile(filepath.Join(s.cfg.CacheDir, stateFile)); err == nil {
		var st state
		if json.Unmarshal(data, &st) == nil && st.Branch == s.cfg.Branch && st.Path == s.cfg.Path {
			s.st = st
		}
	}
	return nil
}

func (s *Source) saveState() {
	data, _ := json.Marshal(s.st)
	if err := atomicfile.WriteFile(filepath.Join(s.cfg.CacheDir, stateFile), data, 0o600); err != nil {
		s.log.Warn("cannot save git source state", "err", err)
	}
}

// remote is the origin of the cache repository, built per call so that
// the URL is never written to the cache's config.
func (s *Source) remote() *git.Remote {
	return git.NewRemote(s.repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{s.cfg.URL}})
}

func (s *Source) refName() plumbing.ReferenceName {
	return plumbing.NewBranchReferenceName(s.cfg.Branch)
}

// auth builds the transport credentials from the configured files.
func (s *Source) auth() (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(s.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("git url: %w", err)
	}
	switch ep.Protocol {
	case "http", "https":
		user := ep.User
		if ep.Password != "" {
			return &githttp.BasicAuth{Username: user, Password: ep.Password}, nil
		}
		if s.cfg.Auth.TokenFile == "" {
			return nil, nil
		}
		tok, err := os.ReadFile(s.cfg.Auth.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("git token: %w", err)
		}
		token := strings.TrimSpace(string(tok))
		if token == "" {
			return nil, fmt.Errorf("git token file %s is empty", s.cfg.Auth.TokenFile)
		}
		s.san = source.NewSanitizer(token)
		if user == "" {
			user = "x-access-token" // GitHub's convention; Gitea and others accept any user
		}
		return &githttp.BasicAuth{Username: user, Password: token}, nil
	case "ssh":
		user := ep.User
		if user == "" {
			user = "git"
		}
		if s.cfg.Auth.SSHKeyFile == "" {
			return nil, errors.New("git ssh url needs auth.ssh_key_file")
		}
		pem, err := os.ReadFile(s.cfg.Auth.SSHKeyFile)
		if err != nil {
			return nil, fmt.Errorf("git ssh key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("git ssh key %s: %w", s.cfg.Auth.SSHKeyFile, err)
		}
		var files []string
		if s.cfg.Auth.KnownHostsFile != "" {
			files = []string{s.cfg.Auth.KnownHostsFile}
		}
		db, err := gitssh.NewKnownHostsDb(files...)
		if err != nil {
			return nil, fmt.Errorf("git ssh known_hosts: %w", err)
		}
		port := ep.Port
		if port == 0 {
			port = 22
		}
		addr := fmt.Sprintf("%s:%d", ep.Host, port)
		return &sshAuth{user: user, signer: signer, cb: db.HostKeyCallback(),
			algos: db.HostKeyAlgorithms(addr), timeout: s.cfg.Timeout}, nil
	}
	return nil, nil
}

// sshAuth is public-key auth with strict known_hosts checking and a dial
// timeout.
type sshAuth struct {
	user    string
	signer  ssh.Signer
	cb      ssh.HostKeyCallback
	algos   []string
	timeout time.Duration
}

func (a *sshAuth) Name() string   { return "ssh-public-keys" }
func (a *sshAuth) String() string { return "user: " + a.user + ", name: ssh-public-keys" }
func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	return &ssh.ClientConfig{
		User:              a.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(a.signer)},
		HostKeyCallback:   a.cb,
		HostKeyAlgorithms: a.algos,
		Timeout:           a.timeout,
	}, nil
}

// lsRemote returns the branch head on the server.
func (s *Source) lsRemote(ctx context.Context, auth transport.AuthMethod) (plumbing.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	refs, err := s.remote().ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: s.cfg.CABundle})
	if err != nil {
		return plumbing.ZeroHash, s.remoteError("list refs", err)
	}
	var branches []string
	for _, r := range refs {
		if r.Name() == s.refName() {
			return r.Hash(), nil
		}
		if r.Name().IsBranch() {
			branches = append(branches, r.Name().Short())
		}
	}
	return plumbing.ZeroHash, source.Markf(source.ErrNotFound, "%s: branch %q not found%s", s.desc, s.cfg.Branch, branchHint(s.cfg.Branch, branches))
}

// remoteError explains a failed call to the server.
func (s *Source) remoteError(what string, err error) error {
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return source.Markf(source.ErrNotFound, "%s: branch %q not found: the repository has no branches yet (push the first release)", s.desc, s.cfg.Branch)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return source.Markf(source.ErrNotFound, "%s: %w (check url; some servers also answer so when the credentials may not read it)", s.desc, err)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "unable to authenticate"):
		return source.Markf(source.ErrAccessDenied, "%s: %s: the server refused the credentials (check auth): %w", s.desc, what, err)
	}
	return fmt.Errorf("%s: %s: %w", s.desc, what, err)
}

// branchHint lists a few of the branches that exist, the closest to want
// first, as a suffix for "branch not found".
func branchHint(want string, branches []string) string {
	if len(branches) == 0 {
		return ": the repository has no branches"
	}
	slices.Sort(branches)
	hint := ""
	close := suggest.Closest(want, branches)
	shown := make([]string, 0, 5)
	if close != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", close)
		shown = append(shown, close)
	}
	for _, b := range branches {
		if len(shown) == cap(shown) {
			break
		}
		if b != close {
			shown = append(shown, b)
		}
	}
	more := ""
	if len(branches) > len(shown) {
		more = fmt.Sprintf(", … (%d in all)", len(branches))
	}
	return fmt.Sprintf("%s; branches on the server: %s%s", hint, strings.Join(shown, ", "), more)
}

// fetch brings the branch head into the cache. depth 0 is an incremental
// fetch of what is new since the cache's own head.
func (s *Source) fetch(ctx context.Context, auth transport.AuthMethod, depth int) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	spec := config.RefSpec(fmt.Sprintf("+%s:refs/remotes/origin/%s", s.refName(), s.cfg.Branch))
	err := s.remote().FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec}, Depth: depth, Auth: auth, Tags: git.NoTags,
		Force: true, CABundle: s.cfg.CABundle,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return s.remoteError("fetch", err)
	}
	return nil
}

func (s *Source) hasCommit(h plumbing.Hash) bool {
	_, err := s.repo.CommitObject(h)
	return err == nil
}

// Desired implements source.Source.
func (s *Source) Desired(ctx context.Context) (source.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev, err := s.desiredLocked(ctx)
	return rev, s.san.Error(err)
}

func (s *Source) desiredLocked(ctx context.Context) (source.Revision, error) {
	auth, err := s.auth()
	if err != nil {
		return source.Revision{}, err
	}
	head, err := s.lsRemote(ctx, auth)
	if err != nil {
		return source.Revision{}, err
	}
	if s.cache != nil && head == s.cache.head {
		return s.cache.rev, s.cache.err
	}
	if !s.hasCommit(head) {
		depth := 0
		if s.st.Head == "" || !s.hasCommit(plumbing.NewHash(s.st.Head)) {
			depth = 1 // first clone: shallow
		}
		if err := s.fetch(ctx, auth, depth); err != nil {
			return source.Revision{}, err
		}
		if !s.hasCommit(head) {
			// The server believed we had it (for example a reset to a
			// commit behind our shallow edge): ask for it explicitly.
			if err := s.fetch(ctx, auth, 1); err != nil {
				return source.Revision{}, err
			}
			if !s.hasCommit(head) {
				return source.Revision{}, fmt.Errorf("%s: fetched, but commit %s is still missing", s.desc, head)
			}
		}
	}
	if prev := s.lastHead(); prev != "" && prev != head.String() {
		if rewritten, known := s.rewritten(plumbing.NewHash(prev), head); rewritten {
			s.log.Warn("branch was rewritten (force-push); following it", "old_head", prev, "new_head", head.String())
		} else if known {
			s.log.Debug("branch moved", "old_head", prev, "new_head", head.String())
		}
	}
	rev, key, err := s.resolve(ctx, auth, head)
	switch {
	case err == nil:
		s.cache = &cached{head: head, rev: rev}
		s.st = state{Branch: s.cfg.Branch, Path: s.cfg.Path, Head: head.String(), Key: key, ID: rev.ID}
		s.saveState()
	case source.IsInvalidManifest(err) || errors.Is(err, source.ErrNotFound):
		// A property of this head: remember it so that idle polls stay
		// cheap, and keep the memo of the last valid head for the walk.
		s.cache = &cached{head: head, err: err}
	default:
		s.cache = nil
	}
	return rev, err
}

// lastHead is the head seen by the previous poll that got an answer.
func (s *Source) lastHead() string {
	if s.cache != nil {
		return s.cache.head.String()
	}
	return s.st.Head
}

// rewritten reports whether prev is not an ancestor of head. After an
// incremental fetch every commit between prev and a descendant head is in
// the cache, so a search through local objects is conclusive unless it was
// cut short (known=false).
func (s *Source) rewritten(prev, head plumbing.Hash) (rewritten, known bool) {
	if !s.hasCommit(prev) {
		return false, false
	}
	seen := map[plumbing.Hash]bool{head: true}
	queue := []plumbing.Hash{head}
	for len(queue) > 0 && len(seen) < 100000 {
		h := queue[0]
		queue = queue[1:]
		if h == prev {
			return false, true
		}
		c, err := s.repo.CommitObject(h)
		if err != nil {
			continue // edge of the shallow history
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return len(queue) == 0, len(queue) == 0
}

func (s *Source) manifestName(c plumbing.Hash) string {
	return path.Join(s.cfg.Path, manifest.FileName) + "@" + c.String()[:12]
}

// resolve reads and validates the manifest at head and finds the revision
// ID by walking back while the content key is unchanged.
func (s *Source) resolve(ctx context.Context, auth transport.AuthMethod, head plumbing.Hash) (source.Revision, string, error) {
	c, err := s.repo.CommitObject(head)
	if err != nil {
		return source.Revision{}, "", fmt.Errorf("%s: read commit %s: %w", s.desc, head, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return source.Revision{}, "", fmt.Errorf("%s: read commit %s: %w", s.desc, head, err)
	}
	mpath := path.Join(s.cfg.Path, manifest.FileName)
	f, err := tree.File(mpath)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return source.Revision{}, "", s.missingPath(tree, head)
	}
	if err != nil {
		return source.Revision{}, "", fmt.Errorf("%s: read %s: %w", s.desc, mpath, err)
	}
	if f.Size > manifest.MaxSize {
		return source.Revision{}, "", &manifest.Error{Problems: []manifest.Problem{{File: s.manifestName(head), Msg: "manifest is too large"}}}
	}
	text, err := f.Contents()
	if err != nil {
		return source.Revision{}, "", fmt.Errorf("%s: read %s: %w", s.desc, mpath, err)
	}
	m, err := manifest.Parse(s.manifestName(head), []byte(text))
	if err != nil {
		return source.Revision{}, "", err
	}
	if m.Bundle.Key != "" {
		return source.Revision{}, "", &manifest.Error{Problems: []manifest.Problem{{File: s.manifestName(head),
			Msg: "bundle.key is for s3 sources; a git manifest names a directory with bundle.path"}}}
	}
	bpath := path.Join(s.cfg.Path, m.Bundle.Path)
	key, ok := contentKey(tree, mpath, bpath)
	if !ok {
		return source.Revision{}, "", &manifest.Error{Problems: []manifest.Problem{{File: s.manifestName(head),
			Msg: fmt.Sprintf("bundle.path %q: no such directory in commit %s", m.Bundle.Path, head.String()[:12])}}}
	}
	id, err := s.introducedBy(ctx, auth, c, key, mpath, bpath)
	if err != nil {
		return source.Revision{}, "", err
	}
	label := m.Revision
	if label == "" {
		label = id.String()
	}
	return source.Revision{
		ID: id.String(), Label: label, Manifest: m,
		Env: map[string]string{"BUNDLE_COMMIT": id.String()},
	}, key, nil
}

// missingPath explains why the manifest is not at cfg.Path in tree: the
// first component of the path that is not a directory there, with a close
// sibling if there is one, or, when the directory exists, that it holds no
// manifest.yaml and which directories near it do.
func (s *Source) missingPath(tree *object.Tree, head plumbing.Hash) error {
	at := fmt.Sprintf("on branch %s at commit %s", s.cfg.Branch, head.String()[:12])
	var parts []string
	if s.cfg.Path != "" {
		parts = strings.Split(s.cfg.Path, "/")
	}
	cur := tree
	for i, part := range parts {
		sub, err := cur.Tree(part)
		if err == nil {
			cur = sub
			continue
		}
		where := "the repository root"
		if i > 0 {
			where = strconv.Quote(path.Join(parts[:i]...))
		}
		what := "no directory"
		if e, ferr := cur.FindEntry(part); ferr == nil && e.Mode != filemode.Dir {
			what = "a file, not a directory, named"
		}
		hint := ""
		if c := suggest.Closest(part, subdirs(cur)); c != "" {
			fixed := path.Join(append(append(slices.Clone(parts[:i]), c), parts[i+1:]...)...)
			hint = fmt.Sprintf(" (did you mean %q?)", fixed)
		}
		return source.Markf(source.ErrNotFound, "%s: path %q not found %s: %s has %s %q%s",
			s.desc, s.cfg.Path, at, where, what, part, hint)
	}
	// The directory exists: which directories next to it hold a manifest?
	var near []string
	for _, d := range subdirs(cur) {
		if _, err := cur.File(path.Join(d, manifest.FileName)); err == nil {
			near = append(near, path.Join(s.cfg.Path, d))
		}
	}
	if len(parts) > 0 {
		parent := path.Dir(s.cfg.Path)
		if parent == "." {
			parent = ""
		}
		if _, err := tree.File(path.Join(parent, manifest.FileName)); err == nil {
			near = append(near, parent)
		}
	}
	hint := ""
	if len(near) > 0 {
		hint = fmt.Sprintf(" (did you mean %q?)", near[0])
		if near[0] == "" {
			hint = " (the repository root has one: did you mean path \"\"?)"
		}
	}
	dir := strconv.Quote(s.cfg.Path)
	if s.cfg.Path == "" {
		dir = "the repository root"
	}
	return source.Markf(source.ErrNotFound, "%s: no %s in %s %s%s", s.desc, manifest.FileName, dir, at, hint)
}

// subdirs lists the directories directly in t.
func subdirs(t *object.Tree) []string {
	var out []string
	for _, e := range t.Entries {
		if e.Mode == filemode.Dir {
			out = append(out, e.Name)
		}
	}
	return out
}

// BundleFile implements source.BundleNamer: the file's path in the
// repository.
func (s *Source) BundleFile(rev source.Revision, rel string) string {
	bpath := "."
	if rev.Manifest != nil {
		bpath = rev.Manifest.Bundle.Path
	}
	return path.Join(s.cfg.Path, bpath, rel)
}

// contentKey identifies the manifest and the bundle directory of a commit.
// ok is false when the bundle directory does not exist.
func contentKey(tree *object.Tree, mpath, bpath string) (string, bool) {
	var mh, bh plumbing.Hash
	if e, err := tree.FindEntry(mpath); err == nil {
		mh = e.Hash
	}
	if bpath == "" || bpath == "." {
		bh = tree.Hash
	} else if e, err := tree.FindEntry(bpath); err == nil && e.Mode == filemode.Dir {
		bh = e.Hash
	} else {
		return mh.String() + ":", false
	}
	return mh.String() + ":" + bh.String(), true
}

// introducedBy walks first parents from c while the content key stays key
// and returns the oldest such commit (see the package comment).
func (s *Source) introducedBy(ctx context.Context, auth transport.AuthMethod, c *object.Commit, key, mpath, bpath string) (plumbing.Hash, error) {
	depth := 1
	for steps := 0; ; steps++ {
		if c.Hash.String() == s.st.Head && key == s.st.Key && s.st.ID != "" {
			return plumbing.NewHash(s.st.ID), nil
		}
		if c.NumParents() == 0 {
			return c.Hash, nil
		}
		p, err := s.repo.CommitObject(c.ParentHashes[0])
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			// The edge of the shallow history: deepen and look again.
			if depth >= s.cfg.MaxDepth {
				s.log.Warn("content unchanged for longer than the history searched; using the oldest commit seen",
					"commit", c.Hash.String(), "max_depth", s.cfg.MaxDepth)
				return c.Hash, nil
			}
			depth = min(max(2*depth, steps+32, 64), s.cfg.MaxDepth)
			s.log.Debug("deepening git cache", "depth", depth)
			if err := s.fetch(ctx, auth, depth); err != nil {
				return plumbing.ZeroHash, err
			}
			if p, err = s.repo.CommitObject(c.ParentHashes[0]); err != nil {
				s.log.Warn("cannot deepen history; using the oldest commit seen", "commit", c.Hash.String(), "err", err)
				return c.Hash, nil
			}
		} else if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: read commit %s: %w", s.desc, c.ParentHashes[0], err)
		}
		pt, err := p.Tree()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: read commit %s: %w", s.desc, p.Hash, err)
		}
		if pk, _ := contentKey(pt, mpath, bpath); pk != key {
			return c.Hash, nil
		}
		c = p
	}
}

// Fetch implements source.Source: it writes the bundle directory of the
// revision's commit from the cache into dst. No network call is needed:
// Desired fetched the commit.
func (s *Source) Fetch(ctx context.Context, rev source.Revision, dst string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev.Manifest == nil {
		return errors.New("git fetch: revision has no manifest")
	}
	h := plumbing.NewHash(rev.ID)
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return fmt.Errorf("%s: commit %s: %w", s.desc, rev.ID, source.ErrGone)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("%s: commit %s: %w", s.desc, rev.ID, err)
	}
	bpath := path.Join(s.cfg.Path, rev.Manifest.Bundle.Path)
	if bpath != "." && bpath != "" {
		if tree, err = tree.Tree(bpath); err != nil {
			return fmt.Errorf("%s: bundle %s in commit %s: %w", s.desc, bpath, rev.ID[:12], err)
		}
	}
	if err := s.writeTree(ctx, tree, dst); err != nil {
		return err
	}
	return safelink.Dir(ctx, dst) // chains of links, which no single link shows
}

// writeTree writes a git tree to dst.
func (s *Source) writeTree(ctx context.Context, tree *object.Tree, dst string) error {
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read bundle tree: %w", err)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		switch e.Mode {
		case filemode.Dir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			mode := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				mode = 0o755
			}
			if err := s.writeBlob(e.Hash, name, target, mode); err != nil {
				return err
			}
		case filemode.Symlink:
			b, err := object.GetBlob(s.repo.Storer, e.Hash)
			if err != nil {
				return fmt.Errorf("bundle %s: %w", name, err)
			}
			r, err := b.Reader()
			if err != nil {
				return fmt.Errorf("bundle %s: %w", name, err)
			}
			raw, err := io.ReadAll(io.LimitReader(r, 4096))
			r.Close()
			if err != nil {
				return fmt.Errorf("bundle %s: %w", name, err)
			}
			lt := string(raw)
			if err := safelink.Target(name, lt); err != nil {
				return err
			}
			if err := os.Symlink(lt, target); err != nil {
				return err
			}
		case filemode.Submodule:
			return fmt.Errorf("bundle %s: submodules are not supported in bundles", name)
		default:
			return fmt.Errorf("bundle %s: unsupported file mode %v", name, e.Mode)
		}
	}
}

func (s *Source) writeBlob(h plumbing.Hash, name, target string, mode os.FileMode) error {
	b, err := object.GetBlob(s.repo.Storer, h)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", name, err)
	}
	r, err := b.Reader()
	if err != nil {
		return fmt.Errorf("bundle %s: %w", name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(r); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}
