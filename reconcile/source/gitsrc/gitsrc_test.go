package gitsrc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/gittest"
	"github.com/drover-dev/drover/internal/testenv/sshtest"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

const appPath = "apps/hello-web"

// publish commits a release the way a developer would: manifest and bundle
// under apps/hello-web, pushed with the git CLI.
func publish(t *testing.T, repo *gittest.Repo, r sourcetest.Release) string {
	t.Helper()
	m := r.Manifest()
	m.Bundle.Path = "bundle"
	if err := os.RemoveAll(filepath.Join(repo.Work, appPath, "bundle")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{appPath + "/manifest.yaml": string(manifest.Format(m))}
	for k, v := range r.Files {
		files[appPath+"/bundle/"+k] = v
	}
	return repo.Commit(t, "release "+r.Label, files)
}

func harness(repo *gittest.Repo, cfg func(t *testing.T) Config, extra func(t *testing.T, base Config) []sourcetest.Misconfig, secrets ...string) sourcetest.Harness {
	cache := ""
	var once sync.Once
	open := func(t *testing.T, c Config) source.Source {
		t.Helper()
		if c.CacheDir == "" {
			c.CacheDir = t.TempDir()
		}
		c.Timeout = 20 * time.Second
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return sourcetest.Harness{
		New: func(t *testing.T) source.Source {
			c := cfg(t)
			once.Do(func() { cache = filepath.Join(t.TempDir(), "cache") })
			c.CacheDir = cache
			return open(t, c)
		},
		Publish: func(t *testing.T, r sourcetest.Release) { publish(t, repo, r) },
		PublishManifest: func(t *testing.T, text string) {
			repo.Commit(t, "edit manifest", map[string]string{appPath + "/manifest.yaml": text})
		},
		EnvKeys:  []string{"BUNDLE_COMMIT"},
		Secrets:  secrets,
		EmptyErr: source.ErrNotFound,
		RemoveManifest: func(t *testing.T) {
			repo.Commit(t, "remove manifest", map[string]string{appPath + "/manifest.yaml": ""})
		},
		PartialErr: source.ErrNotFound,
		Misconfigured: func(t *testing.T) []sourcetest.Misconfig {
			with := func(edit func(*Config)) source.Source {
				c := cfg(t)
				edit(&c)
				return open(t, c)
			}
			mcs := []sourcetest.Misconfig{
				{Name: "misspelled branch", Source: with(func(c *Config) { c.Branch = "relase" }), Is: source.ErrNotFound,
					Says: []string{`branch "relase" not found`, `did you mean "release"?`, "branches on the server: release"}},
				{Name: "misspelled path", Source: with(func(c *Config) { c.Path = "apps/helo-web" }), Is: source.ErrNotFound,
					Says: []string{`path "apps/helo-web" not found on branch release at commit `, `"apps" has no directory "helo-web"`, `did you mean "apps/hello-web"?`}},
				{Name: "path of the bundle, not the manifest", Source: with(func(c *Config) { c.Path = appPath + "/bundle" }), Is: source.ErrNotFound,
					Says: []string{`no manifest.yaml in "apps/hello-web/bundle" on branch release at commit `, `did you mean "apps/hello-web"?`}},
				{Name: "misspelled repository", Source: with(func(c *Config) { c.URL = strings.Replace(c.URL, repo.Name, "rpeo.git", 1) }),
					Is: source.ErrNotFound, Says: []string{"repository not found"}},
			}
			if extra != nil {
				mcs = append(mcs, extra(t, cfg(t))...)
			}
			return mcs
		},
		BundleFile: func(_ source.Revision, rel string) string { return path.Join(appPath, "bundle", rel) },
	}
}

// unreachable is a source whose server is not there.
func unreachable(t *testing.T, url string) sourcetest.Misconfig {
	s, err := New(Config{URL: url, Branch: "release", Path: appPath, CacheDir: t.TempDir(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sourcetest.Misconfig{Name: "unreachable server", Source: s, Says: []string{"list refs", "connection refused"}}
}

func TestContractFile(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	sourcetest.Run(t, harness(repo, func(t *testing.T) Config {
		return Config{URL: repo.FileURL(), Branch: "release", Path: appPath}
	}, nil))
}

func TestContractGitDaemon(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	sourcetest.Run(t, harness(repo, func(t *testing.T) Config {
		return Config{URL: d.URL(repo.Name), Branch: "release", Path: appPath}
	}, func(t *testing.T, _ Config) []sourcetest.Misconfig {
		return []sourcetest.Misconfig{unreachable(t, "git://"+gittest.FreeAddr(t)+"/"+repo.Name)}
	}))
}

func TestContractHTTPSToken(t *testing.T) {
	const token = "s3cr3t-t0ken-value"
	repo := gittest.NewRepo(t, "release")
	srv := gittest.StartHTTP(t, repo.Base, token)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(t.TempDir(), "wrong-token")
	if err := os.WriteFile(wrongFile, []byte("wrong-"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sourcetest.Run(t, harness(repo, func(t *testing.T) Config {
		return Config{URL: srv.URL + "/" + repo.Name, Branch: "release", Path: appPath,
			Auth: Auth{TokenFile: tokenFile}, CABundle: srv.CA}
	}, func(t *testing.T, c Config) []sourcetest.Misconfig {
		c.Auth.TokenFile, c.CacheDir, c.Timeout = wrongFile, t.TempDir(), 20*time.Second
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		return []sourcetest.Misconfig{
			{Name: "wrong token", Source: s, Is: source.ErrAccessDenied, Says: []string{"refused the credentials"}},
			unreachable(t, "https://"+gittest.FreeAddr(t)+"/"+repo.Name),
		}
	}, token, "wrong-"+token))
}

// TestContractSSH runs against Debian's OpenSSH sshd (not an in-process
// server): the session runs the real git-upload-pack.
func TestContractSSH(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	srv := sshtest.Start(t)
	sourcetest.Run(t, harness(repo, func(t *testing.T) Config {
		return Config{URL: srv.URL(repo.Bare), Branch: "release", Path: appPath,
			Auth: Auth{SSHKeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile}}
	}, func(t *testing.T, c Config) []sourcetest.Misconfig {
		c.Auth.SSHKeyFile, c.CacheDir, c.Timeout = srv.OtherKeyFile, t.TempDir(), 20*time.Second
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		return []sourcetest.Misconfig{{Name: "unauthorized key", Source: s, Is: source.ErrAccessDenied, Says: []string{"refused the credentials"}}}
	}))
}

func TestSSHRefusals(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	publish(t, repo, sourcetest.Release{Label: "a", Files: map[string]string{"appspec.yml": "x"}})
	srv := sshtest.Start(t)
	otherKnown := filepath.Join(t.TempDir(), "known_hosts")
	// A known_hosts entry for this address with a different key.
	pub, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(pub))
	os.WriteFile(otherKnown, []byte(fields[0]+" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o644)
	tests := []struct {
		name string
		auth Auth
	}{
		{"unauthorized key", Auth{SSHKeyFile: srv.OtherKeyFile, KnownHostsFile: srv.KnownHostsFile}},
		{"unknown host key", Auth{SSHKeyFile: srv.KeyFile, KnownHostsFile: otherKnown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{URL: srv.URL(repo.Bare), Branch: "release", Path: appPath, Auth: tt.auth,
				CacheDir: t.TempDir(), Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Desired(context.Background()); err == nil {
				t.Fatal("Desired succeeded")
			} else {
				t.Logf("refused as expected: %v", err)
			}
		})
	}
}

func newSource(t *testing.T, url string) *Source {
	t.Helper()
	s, err := New(Config{URL: url, Branch: "release", Path: appPath, CacheDir: t.TempDir(), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func desired(t *testing.T, s source.Source) source.Revision {
	t.Helper()
	rev, err := s.Desired(context.Background())
	if err != nil {
		t.Fatalf("Desired: %v", err)
	}
	return rev
}

var files1 = map[string]string{"appspec.yml": "version: 0.0\nos: linux\n", "run.sh": "#!/bin/sh\n"}

func TestUnrelatedCommitIsNotANewRevision(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	repo.Commit(t, "initial", map[string]string{"README.md": "hello\n"})
	c1 := publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	s := newSource(t, d.URL(repo.Name))
	if got := desired(t, s); got.ID != c1 || got.Env["BUNDLE_COMMIT"] != c1 {
		t.Fatalf("ID %s, want %s", got.ID, c1)
	}

	// Commits outside the app's directory, and inside it outside the
	// manifest and bundle, are not new revisions.
	for i, f := range []map[string]string{
		{"README.md": "changed\n"},
		{"apps/other/manifest.yaml": "version: 1\napplication: other\n"},
		{appPath + "/NOTES.txt": "not in the bundle\n"},
	} {
		head := repo.Commit(t, "unrelated", f)
		if got := desired(t, s); got.ID != c1 {
			t.Fatalf("after unrelated commit %d (%s): ID %s, want %s", i, head[:8], got.ID, c1)
		}
	}

	// A host that starts now, with an empty cache and a depth-1 clone,
	// computes the same ID: the identity does not depend on when a host
	// started polling.
	fresh := newSource(t, d.URL(repo.Name))
	if got := desired(t, fresh); got.ID != c1 {
		t.Fatalf("fresh host: ID %s, want %s", got.ID, c1)
	}

	// A change to the bundle is a new revision, and so is a revert to the
	// old content (a rollback).
	c2 := repo.Commit(t, "bundle change", map[string]string{appPath + "/bundle/run.sh": "#!/bin/sh\necho 2\n"})
	if got := desired(t, s); got.ID != c2 {
		t.Fatalf("after bundle change: ID %s, want %s", got.ID, c2)
	}
	c3 := repo.Commit(t, "revert", map[string]string{appPath + "/bundle/run.sh": files1["run.sh"]})
	if got := desired(t, s); got.ID != c3 {
		t.Fatalf("after revert: ID %s, want %s", got.ID, c3)
	}
	if got := desired(t, fresh); got.ID != c3 {
		t.Fatalf("fresh host after revert: ID %s, want %s", got.ID, c3)
	}
}

func TestForcePushIsFollowed(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	c1 := publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	var logs bytes.Buffer
	s, err := New(Config{URL: d.URL(repo.Name), Branch: "release", Path: appPath, CacheDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	desired(t, s)
	c2 := publish(t, repo, sourcetest.Release{Label: "two", Files: map[string]string{"appspec.yml": "two"}})
	if got := desired(t, s); got.ID != c2 || got.Label != "two" {
		t.Fatalf("got %s/%s, want %s/two", got.ID, got.Label, c2)
	}
	// Rewrite history: drop "two", publish "three" on top of "one".
	if head := repo.ResetAndForcePush(t, c1); head != c1 {
		t.Fatalf("reset to %s, want %s", head, c1)
	}
	if got := desired(t, s); got.ID != c1 || got.Label != "one" {
		t.Fatalf("after reset: got %s/%s, want %s/one", got.ID, got.Label, c1)
	}
	c3 := publish(t, repo, sourcetest.Release{Label: "three", Files: map[string]string{"appspec.yml": "three"}})
	got := desired(t, s)
	if got.ID != c3 || got.Label != "three" {
		t.Fatalf("after force-push: got %s/%s, want %s/three", got.ID, got.Label, c3)
	}
	dst := t.TempDir()
	if err := s.Fetch(context.Background(), got, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "appspec.yml")); string(b) != "three" {
		t.Fatalf("fetched appspec.yml %q", b)
	}
	if !strings.Contains(logs.String(), "rewritten") {
		t.Errorf("force-push not logged:\n%s", logs.String())
	}
}

func TestInvalidManifestKeepsPreviousRevision(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	c1 := publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	p := source.NewPoller(newSource(t, d.URL(repo.Name)), source.PollerConfig{App: "hello-web"})
	if u := p.Poll(context.Background()); u.Result != source.ResultChanged || u.Desired.ID != c1 {
		t.Fatalf("first poll: %+v", u)
	}
	repo.Commit(t, "broken", map[string]string{appPath + "/manifest.yaml": "version: 1\napplication: hello-web\nbundel: {}\n"})
	u := p.Poll(context.Background())
	if u.Result != source.ResultInvalid || u.Desired.ID != c1 {
		t.Fatalf("after broken manifest: %+v", u)
	}
	st := p.Status()
	if !strings.Contains(st.LastError, "manifest.yaml@") || !strings.Contains(st.LastError, `:3: manifest: unknown key "bundel"`) {
		t.Fatalf("status error %q", st.LastError)
	}
	if st.Polls[source.ResultInvalid] != 1 {
		t.Fatalf("polls %v", st.Polls)
	}
	// A bundle path that does not exist is refused the same way.
	repo.Commit(t, "missing bundle", map[string]string{appPath + "/manifest.yaml": "version: 1\napplication: hello-web\nbundle: {path: nope}\n"})
	if u := p.Poll(context.Background()); u.Result != source.ResultInvalid || u.Desired.ID != c1 {
		t.Fatalf("after missing bundle dir: %+v", u)
	}
}

func TestUnreachableBacksOffAndRecovers(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	c1 := publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	p := source.NewPoller(newSource(t, d.URL(repo.Name)), source.PollerConfig{
		App: "hello-web", Interval: 30 * time.Second, RetryMin: time.Second, RetryMax: 16 * time.Second,
		Rand: func() float64 { return 0.999 },
	})
	if u := p.Poll(context.Background()); u.Result != source.ResultChanged {
		t.Fatalf("first poll: %+v", u)
	}
	c2 := publish(t, repo, sourcetest.Release{Label: "two", Files: map[string]string{"appspec.yml": "2"}})
	d.Stop()
	var delays []time.Duration
	for range 6 {
		u := p.Poll(context.Background())
		if u.Result != source.ResultError || u.Desired.ID != c1 {
			t.Fatalf("poll while down: %+v", u)
		}
		delays = append(delays, u.Next.Round(100*time.Millisecond))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("backoff delays %v, want %v", delays, want)
		}
	}
	if st := p.Status(); st.ConsecutiveFailures != 6 || st.LastError == "" || st.Polls[source.ResultError] != 6 {
		t.Fatalf("status while down: %+v", st)
	}
	d.Start()
	u := p.Poll(context.Background())
	if u.Result != source.ResultChanged || u.Desired.ID != c2 || u.Next < 27*time.Second {
		t.Fatalf("after recovery: %+v", u)
	}
	if st := p.Status(); st.ConsecutiveFailures != 0 || st.LastError != "" || st.LastSuccess.IsZero() {
		t.Fatalf("status after recovery: %+v", st)
	}
}

// TestTimeout: a server that accepts and never answers must not hang a poll.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	for _, url := range []string{"git://" + l.Addr().String() + "/repo.git", "http://" + l.Addr().String() + "/repo.git"} {
		s, err := New(Config{URL: url, Branch: "release", CacheDir: t.TempDir(), Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Desired(context.Background()); err == nil {
			t.Fatalf("%s: Desired succeeded against a silent server", url)
		}
	}
}

func TestCredentialsNeverShown(t *testing.T) {
	const token = "tok-very-secret-123"
	repo := gittest.NewRepo(t, "release")
	publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	srv := gittest.StartHTTP(t, repo.Base, "the-right-token")
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token), 0o600)
	for _, cfg := range []Config{
		{URL: srv.URL + "/" + repo.Name, Auth: Auth{TokenFile: tokenFile}},
		{URL: strings.Replace(srv.URL, "https://", "https://user:"+token+"@", 1) + "/" + repo.Name},
	} {
		cfg.Branch, cfg.CacheDir, cfg.CABundle = "release", t.TempDir(), srv.CA
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Desired(context.Background())
		if err == nil {
			t.Fatal("Desired succeeded with a wrong token")
		}
		for _, text := range []string{err.Error(), s.String()} {
			if strings.Contains(text, token) {
				t.Errorf("token leaked: %q", text)
			}
		}
		t.Logf("error: %v; source: %s", err, s)
	}
}

func TestEmptyAndMissingBranch(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	s := newSource(t, repo.FileURL())
	_, err := s.Desired(context.Background())
	if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "the repository has no branches yet") {
		t.Fatalf("empty repo: %v", err)
	}
	head := repo.Commit(t, "no manifest yet", map[string]string{"README.md": "x"})
	_, err = s.Desired(context.Background())
	if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), `path "apps/hello-web" not found on branch release at commit `+head[:12]+`: the repository root has no directory "apps"`) {
		t.Fatalf("no manifest: %v", err)
	}
	// Many branches: a few are listed, the closest first.
	for _, b := range []string{"main", "staging", "feature-a", "feature-b", "feature-c", "feature-d", "releases"} {
		gittest.Git(t, repo.Work, "push", "-q", "origin", "HEAD:refs/heads/"+b)
	}
	s, err = New(Config{URL: repo.FileURL(), Branch: "relaese", Path: appPath, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Desired(context.Background())
	want := `branch "relaese" not found (did you mean "release"?); branches on the server: release, feature-a, feature-b, feature-c, feature-d, … (8 in all)`
	if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Fatalf("misspelled branch:\n got %v\nwant …%s", err, want)
	}
	// Nothing close: no guess.
	s, _ = New(Config{URL: repo.FileURL(), Branch: "production", Path: appPath, CacheDir: t.TempDir()})
	if _, err = s.Desired(context.Background()); !errors.Is(err, source.ErrNotFound) || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("unrelated branch: %v", err)
	}
}

// TestMissingPathIsCachedPerHead: a path that is not on the branch is
// found out once per head, not at every idle poll.
func TestMissingPathIsCachedPerHead(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	d := gittest.StartDaemon(t, repo.Base)
	publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	proxy := gittest.StartProxy(t, d.Addr)
	s, err := New(Config{URL: "git://" + proxy.Addr + "/" + repo.Name, Branch: "release", Path: "apps/helo-web", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, first := s.Desired(context.Background())
	proxy.Reset()
	for range 3 {
		if _, err := s.Desired(context.Background()); err == nil || err.Error() != first.Error() {
			t.Fatalf("idle poll: %v, first %v", err, first)
		}
	}
	if n := proxy.Conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 idle polls, want 3 (ref listings only)", n)
	}
}

// TestIdlePollCost measures an idle poll on the wire: one ref listing, no
// fetch.
func TestIdlePollCost(t *testing.T) {
	repo := gittest.NewRepo(t, "release")
	publish(t, repo, sourcetest.Release{Label: "one", Files: files1})
	for i := range 20 { // other branches make the ref advertisement grow
		gittest.Git(t, repo.Work, "push", "-q", "origin", "HEAD:refs/heads/feature-"+string(rune('a'+i)))
	}
	const polls = 10
	t.Run("git daemon", func(t *testing.T) {
		d := gittest.StartDaemon(t, repo.Base)
		proxy := gittest.StartProxy(t, d.Addr)
		s := newSource(t, "git://"+proxy.Addr+"/"+repo.Name)
		desired(t, s)
		proxy.Reset()
		for range polls {
			desired(t, s)
		}
		t.Logf("git:// idle poll: %.1f connections, %.0f bytes sent, %.0f bytes received per poll (21 branches)",
			float64(proxy.Conns.Load())/polls, float64(proxy.BytesIn.Load())/polls, float64(proxy.BytesOut.Load())/polls)
		if proxy.Conns.Load() != polls {
			t.Errorf("%d connections for %d polls", proxy.Conns.Load(), polls)
		}
	})
	t.Run("https", func(t *testing.T) {
		srv := gittest.StartHTTP(t, repo.Base, "tok")
		tokenFile := filepath.Join(t.TempDir(), "token")
		os.WriteFile(tokenFile, []byte("tok"), 0o600)
		s, err := New(Config{URL: srv.URL + "/" + repo.Name, Branch: "release", Path: appPath,
			Auth: Auth{TokenFile: tokenFile}, CABundle: srv.CA, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		desired(t, s)
		srv.Requests.Store(0)
		srv.BytesIn.Store(0)
		srv.BytesOut.Store(0)
		for range polls {
			desired(t, s)
		}
		t.Logf("https idle poll: %.1f requests, %.0f request body bytes, %.0f response body bytes per poll (21 branches)",
			float64(srv.Requests.Load())/polls, float64(srv.BytesIn.Load())/polls, float64(srv.BytesOut.Load())/polls)
		if srv.Requests.Load() != polls {
			t.Errorf("%d requests for %d polls", srv.Requests.Load(), polls)
		}
	})
}

func BenchmarkIdlePoll(b *testing.B) {
	repo := gittest.NewRepo(b, "release")
	m := sourcetest.Release{Label: "one"}.Manifest()
	m.Bundle.Path = "bundle"
	repo.Commit(b, "release", map[string]string{appPath + "/manifest.yaml": string(manifest.Format(m)),
		appPath + "/bundle/appspec.yml": "version: 0.0\n"})
	d := gittest.StartDaemon(b, repo.Base)
	srv := gittest.StartHTTP(b, repo.Base, "tok")
	tokenFile := filepath.Join(b.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("tok"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"git", Config{URL: d.URL(repo.Name)}},
		{"https", Config{URL: srv.URL + "/" + repo.Name, Auth: Auth{TokenFile: tokenFile}, CABundle: srv.CA}},
		{"file", Config{URL: repo.FileURL()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := tc.cfg
			cfg.Branch, cfg.Path, cfg.CacheDir = "release", appPath, b.TempDir()
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Desired(context.Background()); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Desired(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
