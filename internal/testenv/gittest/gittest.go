// Package gittest runs real git servers for tests: a bare repository that
// the git command line commits to and pushes to as a developer would, served
// by `git daemon` (git://) or by `git http-backend` behind a TLS test server
// with token auth (https://). It also has a counting TCP proxy to measure
// what a client sends and receives.
package gittest

import (
	"context"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Need skips the test when the git command line is missing.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install git): needed for a real git server")
	}
}

// Repo is a bare repository (Bare) with a developer's clone (Work) that
// pushes to it.
type Repo struct {
	Base   string // directory served as the base path; Bare is inside it
	Bare   string // the bare repository, Base/Name
	Name   string // repo.git
	Work   string
	Branch string
}

// Git runs git with args in dir, failing the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.test",
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.test",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewRepo creates an empty bare repository and a clone of it.
func NewRepo(t testing.TB, branch string) *Repo {
	t.Helper()
	Need(t)
	base := t.TempDir()
	r := &Repo{Base: base, Name: "repo.git", Bare: filepath.Join(base, "repo.git"), Work: t.TempDir(), Branch: branch}
	Git(t, base, "init", "-q", "--bare", "-b", branch, r.Bare)
	// Let ssh (root) and daemon users read it; allow fetching any sha.
	Git(t, r.Bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	Git(t, r.Bare, "config", "http.receivepack", "false")
	Git(t, r.Work, "init", "-q", "-b", branch)
	Git(t, r.Work, "remote", "add", "origin", r.Bare)
	return r
}

// Commit writes files into the clone (an empty string removes a file; a
// name ending in .sh is made executable), commits them all and pushes.
// It returns the new commit hash.
func (r *Repo) Commit(t testing.TB, msg string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(r.Work, filepath.FromSlash(name))
		if body == "" {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, r.Work, "add", "-A")
	Git(t, r.Work, "commit", "-q", "--allow-empty", "-m", msg)
	Git(t, r.Work, "push", "-q", "origin", "HEAD:refs/heads/"+r.Branch)
	return Git(t, r.Work, "rev-parse", "HEAD")
}

// ResetAndForcePush moves the branch back to rev (a commit or HEAD~N) in
// the clone and force-pushes it, rewriting the server's branch.
func (r *Repo) ResetAndForcePush(t testing.TB, rev string) string {
	t.Helper()
	Git(t, r.Work, "reset", "-q", "--hard", rev)
	Git(t, r.Work, "push", "-q", "--force", "origin", "HEAD:refs/heads/"+r.Branch)
	return Git(t, r.Work, "rev-parse", "HEAD")
}

// FileURL is the file:// URL of the bare repository.
func (r *Repo) FileURL() string { return "file://" + r.Bare }

// Daemon is a running `git daemon` serving Repo.Base.
type Daemon struct {
	t    testing.TB
	base string
	Addr string // 127.0.0.1:PORT
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartDaemon serves base over git:// on a free loopback port until the
// test ends.
func StartDaemon(t testing.TB, base string) *Daemon {
	t.Helper()
	Need(t)
	d := &Daemon{t: t, base: base, Addr: FreeAddr(t)}
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// URL is the git:// URL of the repository name under the base path.
func (d *Daemon) URL(name string) string { return "git://" + d.Addr + "/" + name }

// Start (re)starts the daemon on its address and waits until it accepts.
func (d *Daemon) Start() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return
	}
	host, port, _ := net.SplitHostPort(d.Addr)
	cmd := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
		"--base-path="+d.base, "--listen="+host, "--port="+port, d.base)
	// No output pipes (forked children would hold them open) and a
	// process group of its own, so that Stop kills the per-connection
	// children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("git daemon: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(d.done)
	WaitListening(d.t, d.Addr, d.done)
}

// Stop kills the daemon and waits for it to exit.
func (d *Daemon) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for servers that cannot be told to pick one. The IP is a random one
// of 127.0.0.0/8, not 127.0.0.1: between this check and the server's bind,
// any process's outgoing loopback connection can take a port of
// 127.0.0.1 (the kernel picks that source address for every 127.x
// destination), and in CI one did take a test agent's. On an address of
// its own, only a listener on the same address or the wildcard can.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 10 {
		ip := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(150), 1+rand.IntN(254), 1+rand.IntN(254))
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		// memberlist binds UDP on the same port as TCP.
		if u, err := net.ListenPacket("udp", addr); err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free loopback address found")
	return ""
}

// WaitListening waits until addr accepts connections, failing the test
// after 30s or if exited is closed first.
func WaitListening(t testing.TB, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("server for %s exited before listening", addr)
		case <-time.After(20 * time.Millisecond): // poll interval, not synchronisation
		}
		if time.Now().After(deadline) {
			t.Fatalf("server for %s not listening after 30s: %v", addr, err)
		}
	}
}

// HTTPServer serves Repo.Base with `git http-backend` over TLS and checks
// a token sent as the basic-auth password.
type HTTPServer struct {
	URL      string // https://127.0.0.1:PORT
	CA       []byte // PEM of the server certificate, to trust
	Requests atomic.Int64
	BytesIn  atomic.Int64 // request bodies
	BytesOut atomic.Int64 // response bodies
	srv      *httptest.Server
}

// StartHTTP starts an https git server for base requiring token.
func StartHTTP(t testing.TB, base, token string) *HTTPServer {
	t.Helper()
	Need(t)
	execPath := Git(t, base, "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend not found at %s", backend)
	}
	h := &HTTPServer{}
	cgiH := &cgi.Handler{Path: backend, Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1"}}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.Requests.Add(1)
		_, pass, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		req.Body = countingBody{req.Body, &h.BytesIn}
		cgiH.ServeHTTP(countingWriter{w, &h.BytesOut}, req)
	}))
	t.Cleanup(h.srv.Close)
	h.URL = h.srv.URL
	h.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	return h
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Proxy is a TCP proxy on loopback that counts connections and bytes each
// way, to measure what a client costs a server (git, ssh, S3 alike).
type Proxy struct {
	Addr     string
	Conns    atomic.Int64
	BytesIn  atomic.Int64 // client to server
	BytesOut atomic.Int64 // server to client
	l        net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex // guards open
	open     map[net.Conn]bool
}

// StartProxy forwards a loopback port to target until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), l: l, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.Conns.Add(1)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c, target)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *Proxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.open[c] = true
	} else {
		delete(p.open, c)
	}
}

func (p *Proxy) serve(c net.Conn, target string) {
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	s, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	p.track(s, true)
	defer p.track(s, false)
	defer s.Close()
	done := make(chan struct{})
	go func() {
		n, _ := io.Copy(s, c)
		p.BytesIn.Add(n)
		s.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	n, _ := io.Copy(c, s)
	p.BytesOut.Add(n)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// Reset zeroes the counters.
func (p *Proxy) Reset() {
	p.Conns.Store(0)
	p.BytesIn.Store(0)
	p.BytesOut.Store(0)
}

// String summarises the counters.
func (p *Proxy) String() string {
	return fmt.Sprintf("%d connections, %d bytes sent, %d bytes received", p.Conns.Load(), p.BytesIn.Load(), p.BytesOut.Load())
}
