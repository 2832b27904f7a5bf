package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/internal/testenv/gittest"
)

// fleet is N real `drover agent` processes on 127.0.0.1, each with its own
// config, state directory and root, watching one real git server. It is
// the end-to-end harness of DESIGN.md §13.
type fleet struct {
	t        testing.TB
	dir      string
	repo     *gittest.Repo
	gitURL   string
	timeline string // every host's hooks append "TIME HOST REVISION EVENT start|end" here
	keyFile  string
	agents   []*agentProc
	lab      *netLab // nil: every agent on 127.0.0.1
}

type agentProc struct {
	name, dir, cfg, socket, metrics string
	cmd                             *exec.Cmd
	exited                          chan struct{}
	logPath                         string
}

const fleetApp = "hello"

func newFleet(t testing.TB, n int, strategy string) *fleet {
	t.Helper()
	return newFleetWith(t, n, strategy, fleetOpts{})
}

// fleetOpts changes how the fleet runs.
type fleetOpts struct {
	// lab puts agent i in lab's namespace i (nil: all on 127.0.0.1). In
	// namespaces the agents share the filesystem but not the network, so
	// they read the release branch over file://: the git server of the
	// loopback fleet would be out of reach, and such tests are about the
	// gossip network, not the source.
	lab *netLab
	// profile is cluster.profile; "" is local, the fast timing for one machine.
	profile string
	// poll is the application's poll_interval; "" is 2s.
	poll string
	// bootstrapExpect is cluster.bootstrap_expect (0: not set).
	bootstrapExpect int
}

func newFleetWith(t testing.TB, n int, strategy string, o fleetOpts) *fleet {
	t.Helper()
	gittest.Need(t)
	if o.profile == "" {
		o.profile = "local"
	}
	if o.poll == "" {
		o.poll = "2s"
	}
	lab := o.lab
	f := &fleet{t: t, dir: t.TempDir(), lab: o.lab}
	f.repo = gittest.NewRepo(t, "release")
	if lab != nil {
		f.gitURL = f.repo.FileURL()
	} else {
		d := gittest.StartDaemon(t, f.repo.Base)
		f.gitURL = d.URL(f.repo.Name)
	}
	f.timeline = filepath.Join(f.dir, "timeline")
	f.keyFile = filepath.Join(f.dir, "gossip.key")
	if err := os.WriteFile(f.keyFile, []byte(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Revision 1 must be on the branch before the agents start, as in a
	// real fleet where the release branch exists.
	f.push("v1", strategy, bundleOpts{})
	var seed string
	for i := 0; i < n; i++ {
		a := &agentProc{name: fmt.Sprintf("h%d", i+1), dir: filepath.Join(f.dir, fmt.Sprintf("h%d", i+1))}
		bind, metrics := gittest.FreeAddr(t), gittest.FreeAddr(t)
		if lab != nil {
			bind, metrics = lab.addrs[i]+":7946", "127.0.0.1:9947"
		}
		if i == 0 {
			seed = bind
		}
		a.socket = filepath.Join(a.dir, "drover.sock")
		a.metrics = metrics
		a.cfg = filepath.Join(a.dir, "drover.yaml")
		a.logPath = filepath.Join(a.dir, "agent.log")
		for _, sub := range []string{"state", "root"} {
			if err := os.MkdirAll(filepath.Join(a.dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cfg := fmt.Sprintf(`node:
  name: %s
  groups: [web]
  state_dir: %s
  root: %s
cluster:
  bind: %s
  join: [%s]
  encrypt_key_file: %s
  profile: %s
  bootstrap_expect: %d
api:
  socket: %s
  metrics_listen: %s
systemd: off
applications:
  - name: %s
    group: web
    poll_interval: %s
    source:
      git: {url: %q, branch: release, path: app}
`, a.name, filepath.Join(a.dir, "state"), filepath.Join(a.dir, "root"), bind, seed, f.keyFile, o.profile, o.bootstrapExpect, a.socket, a.metrics, fleetApp, o.poll, f.gitURL)
		if err := os.WriteFile(a.cfg, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		f.agents = append(f.agents, a)
	}
	// The seed first, as an admin brings up a new fleet; the others join it
	// (PROTOCOL.md A4: the first roster forms among connected hosts).
	f.start(0)
	f.waitFor(0, 30*time.Second, "the seed agent serves", func(*daemon.Status) bool { return true })
	for i := 1; i < len(f.agents); i++ {
		f.start(i)
	}
	t.Cleanup(func() {
		for i := range f.agents {
			f.stop(i)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for i := range f.agents {
				if st, err := f.status(i); err == nil {
					b, _ := json.Marshal(hostsOf(st))
					t.Logf("status from %s: %s", f.agents[i].name, b)
				}
			}
			if b, err := os.ReadFile(f.timeline); err == nil {
				t.Logf("---- timeline ----\n%s", tail(string(b), 40))
			}
			for _, a := range f.agents {
				b, _ := os.ReadFile(a.logPath)
				t.Logf("---- %s log (last 60 lines) ----\n%s", a.name, tail(string(b), 60))
			}
		}
	})
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (f *fleet) start(i int) {
	f.t.Helper()
	a := f.agents[i]
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	args := []string{"agent", "--config", a.cfg, "--log-level", "debug", "--shutdown-grace", "5s"}
	if f.lab != nil {
		a.cmd = f.lab.command(i, droverBin, args...)
	} else {
		a.cmd = exec.Command(droverBin, args...)
	}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	logf.Close()
	a.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(a.cmd, a.exited)
}

// stop ends an agent gracefully (SIGTERM), then by force.
func (f *fleet) stop(i int) {
	a := f.agents[i]
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// kill9 kills an agent the hard way, as a crash or the OOM killer would.
func (f *fleet) kill9(i int) {
	a := f.agents[i]
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
	a.cmd = nil
}

type bundleOpts struct {
	failValidate bool          // ValidateService exits 1
	hang         string        // event whose script hangs on every host
	hangOnce     string        // event whose script hangs on the first host to reach it
	hold         time.Duration // each lifecycle sleeps this long in ValidateService
	// exclusive: every script takes an exclusive flock on one file for its
	// whole life (its children inherit it, so until its tree is gone) and
	// appends to the timeline's .overlap file when another host's script
	// holds it: an exact P1 check for window 1, also for killed scripts.
	exclusive     bool
	canary, batch string
	// gates is YAML for deployment.gates (its list items, each line
	// indented by 4), "" for none; bake is the canary's bake ("" is 0s).
	gates, bake string
}

// push commits revision rev of the app and its manifest, as a developer's
// merge to the release branch does.
func (f *fleet) push(rev, strategy string, o bundleOpts) string {
	f.t.Helper()
	if o.hold == 0 {
		o.hold = 300 * time.Millisecond
	}
	mark := func(what string) string {
		return fmt.Sprintf("echo \"$(date +%%s.%%N) $DROVER_HOST $DROVER_REVISION $LIFECYCLE_EVENT %s\" >> %q\n", what, f.timeline)
	}
	script := "#!/bin/sh\nset -e\n"
	if o.exclusive {
		script += fmt.Sprintf("exec 9>>%q\nif ! flock -n 9; then echo \"$(date +%%s.%%N) $DROVER_HOST $DROVER_REVISION $LIFECYCLE_EVENT\" >> %q; fi\n",
			f.timeline+".lock", f.timeline+".overlap")
	}
	script += mark("start")
	script += fmt.Sprintf("if [ \"$LIFECYCLE_EVENT\" = ValidateService ]; then sleep %.3f; fi\n", o.hold.Seconds())
	if o.hang != "" {
		script += fmt.Sprintf("if [ \"$LIFECYCLE_EVENT\" = %s ]; then touch \"$DROVER_ROOT/hanging\"; while :; do sleep 0.05; done; fi\n", o.hang)
	}
	if o.hangOnce != "" {
		script += fmt.Sprintf("if [ \"$LIFECYCLE_EVENT\" = %s ] && mkdir %q 2>/dev/null; then echo $$ > \"$DROVER_ROOT/hanging.tmp\"; mv \"$DROVER_ROOT/hanging.tmp\" \"$DROVER_ROOT/hanging\"; while :; do sleep 0.05; done; fi\n",
			o.hangOnce, filepath.Join(filepath.Dir(f.timeline), "hung-once"))
	}
	if o.failValidate {
		script += "if [ \"$LIFECYCLE_EVENT\" = ValidateService ]; then echo 'service check failed' >&2; exit 1; fi\n"
	}
	script += mark("end")
	var spec strings.Builder
	spec.WriteString("version: 0.0\nos: linux\nfiles:\n  - source: site\n    destination: /srv/hello\nfile_exists_behavior: OVERWRITE\nhooks:\n")
	for _, ev := range []string{"ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"} {
		fmt.Fprintf(&spec, "  %s:\n    - location: hook.sh\n      timeout: 120\n", ev)
	}
	dep := "  strategy: " + strategy + "\n"
	if o.canary != "" {
		bake := o.bake
		if bake == "" {
			bake = "0s"
		}
		dep += "  canary: " + o.canary + "\n  bake: " + bake + "\n"
	}
	if o.gates != "" {
		dep += "  gates:\n" + o.gates
	}
	if o.batch != "" {
		dep += "  batch: " + o.batch + "\n"
	}
	manifest := fmt.Sprintf("version: 1\napplication: %s\nrevision: %q\nbundle:\n  path: .\ndeployment:\n%s  rollback: on-failure\n", fleetApp, rev, dep)
	return f.repo.Commit(f.t, "release "+rev, map[string]string{
		"app/manifest.yaml":   manifest,
		"app/appspec.yml":     spec.String(),
		"app/hook.sh":         script,
		"app/site/index.html": "revision " + rev + "\n",
	})
}

// status asks agent i for the fleet view, as `drover status --json` does.
func (f *fleet) status(i int) (*daemon.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return daemon.NewClient(f.agents[i].socket).Status(ctx)
}

// waitFor polls agent i's status until cond holds, or fails after d.
func (f *fleet) waitFor(i int, d time.Duration, what string, cond func(*daemon.Status) bool) *daemon.Status {
	f.t.Helper()
	deadline := time.Now().Add(d)
	var last *daemon.Status
	for time.Now().Before(deadline) {
		if st, err := f.status(i); err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	f.t.Fatalf("%s: not within %s; last status from %s:\n%s", what, d, f.agents[i].name, b)
	return nil
}

// allOn reports whether every host of the app runs revision rev.
func allOn(n int, rev string) func(*daemon.Status) bool {
	return func(st *daemon.Status) bool {
		for _, a := range st.Apps {
			if a.Name != fleetApp {
				continue
			}
			on := 0
			for _, h := range a.Hosts {
				if h.Revision == rev && h.Phase != "running" {
					on++
				}
			}
			return on == n
		}
		return false
	}
}

// interval is one host's lifecycle of one revision, from the timeline.
type interval struct {
	host, rev  string
	start, end float64
}

// lifecycles reads the timeline: for each (host, revision) the first start
// and the last end of its hook scripts.
func (f *fleet) lifecycles(rev string) []interval {
	f.t.Helper()
	fh, err := os.Open(f.timeline)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	by := map[string]*interval{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 || fs[2] != rev {
			continue
		}
		ts, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		iv := by[fs[1]]
		if iv == nil {
			iv = &interval{host: fs[1], rev: rev, start: ts, end: ts}
			by[fs[1]] = iv
		}
		iv.start = min(iv.start, ts)
		iv.end = max(iv.end, ts)
	}
	var out []interval
	for _, iv := range by {
		out = append(out, *iv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// maxConcurrent is the most lifecycles that overlapped at any instant.
func maxConcurrent(ivs []interval) int {
	type ev struct {
		t float64
		d int
	}
	var evs []ev
	for _, iv := range ivs {
		evs = append(evs, ev{iv.start, 1}, ev{iv.end, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].d < evs[j].d // an end before a start at the same instant
	})
	cur, best := 0, 0
	for _, e := range evs {
		cur += e.d
		best = max(best, cur)
	}
	return best
}
