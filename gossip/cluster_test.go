package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// Tests run real memberlist instances on 127.0.0.1 with short intervals and
// an encrypted keyring. The hook runner is a fake (runner below): the real
// one (hooks/) is wired by the daemon and tested end to end there.

var testParams = rollout.MemberlistParams{
	ProbeInterval:  100 * time.Millisecond,
	ProbeTimeout:   50 * time.Millisecond,
	SuspicionMult:  3,
	GossipInterval: 20 * time.Millisecond,
}

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x17}, 32)
)

const (
	testApp   = "web"
	testGroup = "web-prod"
)

func q(v int) manifest.Quantity { return manifest.Quantity{Set: true, Value: v} }

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") == "warn" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if os.Getenv("GOSSIP_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutines fails the test if goroutines started during it are still
// running a while after everything was closed. Register it first, so that
// it runs after the other cleanups.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d before, %d after Close\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ---- a transport that partitions ----

// testNet decides which addresses can talk: each address is on a side, and
// while the net is cut only addresses of the same side can.
type testNet struct {
	mu   sync.Mutex
	side map[string]int // guarded by mu
	cut  bool           // guarded by mu
	// udpOnly: the cut drops datagrams only; streams (TCP) pass, as with
	// a firewall that blocks UDP 7946. Guarded by mu.
	udpOnly bool
}

func newTestNet() *testNet { return &testNet{side: map[string]int{}} }

func (n *testNet) blocked(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut && n.side[from] != n.side[to]
}

// blockedStream reports whether a stream from one address to another is refused.
func (n *testNet) blockedStream(from, to string) bool {
	n.mu.Lock()
	udpOnly := n.udpOnly
	n.mu.Unlock()
	return !udpOnly && n.blocked(from, to)
}

func (n *testNet) partition(sides map[string]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.side, n.cut = sides, true
}

func (n *testNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = false
}

var errPartitioned = errors.New("partitioned")

// faultyTransport is memberlist's NetTransport over real UDP and TCP
// sockets, except that it drops packets to, and refuses streams to, the
// addresses its net says are on the other side. Filtering every sender's
// output is enough to cut both directions.
type faultyTransport struct {
	*memberlist.NetTransport
	net  *testNet
	self string
}

func newFaultyTransport(t testing.TB, n *testNet) *faultyTransport {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  0,
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatalf("net transport: %v", err)
	}
	return &faultyTransport{NetTransport: nt, net: n, self: fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort())}
}

func (f *faultyTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if f.net.blocked(f.self, addr) {
		return time.Now(), nil
	}
	return f.NetTransport.WriteTo(b, addr)
}

func (f *faultyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return f.WriteTo(b, a.Addr)
}

func (f *faultyTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if f.net.blockedStream(f.self, addr) {
		return nil, errPartitioned
	}
	return f.NetTransport.DialTimeout(addr, timeout)
}

func (f *faultyTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return f.DialTimeout(a.Addr, timeout)
}

// ---- a fleet of hosts with fake hook runners ----

type host struct {
	name string
	addr string
	c    *Cluster
	app  *loopApp

	mu        sync.Mutex        // guards persisted
	persisted rollout.Persisted // what Persist stored last

	stop   chan struct{} // stops the runner
	doneWG sync.WaitGroup
}

func (h *host) state() rollout.Persisted {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.persisted.Clone()
}

// fleet runs hosts and checks P1 with a counter of running lifecycles.
type fleet struct {
	t      testing.TB
	net    *testNet
	keys   [][]byte
	window int // bound on running hosts (0: no check)
	canary int // while fewer than canary succeeded, at most canary run
	// gossipOnly and bootstrapExpect: AppConfig's, for every host
	gossipOnly      bool
	bootstrapExpect int

	hook     func(host string, n int) time.Duration // n-th start of the fleet
	mu       sync.Mutex                             // guards the fields below
	running  int
	peak     int
	started  int
	ok       int
	startLog []startEvent
	endLog   []endEvent
	problems []string
	hosts    []*host
	drops    map[string]int
	bytesOut int
}

type startEvent struct {
	host string
	at   time.Time
}

type endEvent struct {
	host string
	at   time.Time
}

func newFleet(t testing.TB) *fleet {
	return &fleet{t: t, net: newTestNet(), keys: [][]byte{testKey}, hook: func(string, int) time.Duration { return 30 * time.Millisecond }}
}

func (f *fleet) problem(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, fmt.Sprintf(format, a...))
}

func (f *fleet) begin(h string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running++
	f.started++
	f.peak = max(f.peak, f.running)
	f.startLog = append(f.startLog, startEvent{host: h, at: time.Now()})
	if f.window > 0 && f.running > f.window {
		f.problems = append(f.problems, fmt.Sprintf("P1: %d hosts run at once (window %d) when %s started", f.running, f.window, h))
	}
	if f.canary > 0 && f.ok < f.canary && f.running > f.canary {
		f.problems = append(f.problems, fmt.Sprintf("canary: %d hosts run before %d canaries succeeded", f.running, f.canary))
	}
	return f.hook(h, f.started)
}

func (f *fleet) end(h string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	if ok {
		f.ok++
	}
	f.endLog = append(f.endLog, endEvent{host: h, at: time.Now()})
}

func (f *fleet) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Error(p)
	}
}

type hostOpts struct {
	name      string
	keys      [][]byte
	join      []string
	state     rollout.Persisted
	transport bool // through the fleet's faulty transport
	params    rollout.MemberlistParams
	adjust    func(*Cluster) // before Start
}

// startHost starts a cluster member with one App and its runner.
func (f *fleet) startHost(o hostOpts) *host {
	t := f.t
	if o.keys == nil {
		o.keys = f.keys
	}
	h := &host{name: o.name, stop: make(chan struct{}), persisted: o.state}
	cfg := Config{
		NodeName: o.name,
		Bind:     "127.0.0.1:0",
		Join:     o.join,
		Keys:     o.keys,
		Groups:   []string{testGroup},
		Params:   o.params,
		Logger:   testLogger(t).With("node", o.name),
		Stats: Stats{
			Dropped: func(reason string) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.drops == nil {
					f.drops = map[string]int{}
				}
				f.drops[reason]++
			},
			Bytes: func(dir string, n int) {
				if dir == "out" {
					f.mu.Lock()
					defer f.mu.Unlock()
					f.bytesOut += n
				}
			},
		},
	}
	if cfg.Params == (rollout.MemberlistParams{}) {
		cfg.Params = testParams
	}
	var ft *faultyTransport
	if o.transport {
		ft = newFaultyTransport(t, f.net)
		cfg.Transport = ft
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("new %s: %v", o.name, err)
	}
	if o.adjust != nil {
		o.adjust(c)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", o.name, err)
	}
	h.c, h.addr = c, c.LocalAddr()
	if ft != nil && ft.self != h.addr {
		t.Fatalf("transport bound %s, memberlist advertises %s", ft.self, h.addr)
	}
	t.Cleanup(func() { f.stopHost(h) })
	f.mu.Lock()
	f.hosts = append(f.hosts, h)
	f.mu.Unlock()
	return h
}

// addApp registers the App of h and starts its runner.
func (f *fleet) addApp(h *host, groupSize int) {
	app, err := h.c.App(AppConfig{
		Name: testApp, Group: testGroup, State: h.state(), GroupSize: groupSize,
		GossipOnly: f.gossipOnly, BootstrapExpect: f.bootstrapExpect,
		Persist: func(p rollout.Persisted) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.persisted = p.Clone()
			return nil
		},
	})
	if err != nil {
		f.t.Fatalf("app on %s: %v", h.name, err)
	}
	h.app = app
	h.doneWG.Add(1)
	go f.runner(h)
}

// runner is the fake hook runner of one host: it "runs" a lifecycle for the
// fleet's hook duration, reports Finished, obeys Abort, and keeps a lifecycle
// of a killed host running until its fence (PROTOCOL.md A3), as systemd
// would.
func (f *fleet) runner(h *host) {
	defer h.doneWG.Done()
	for {
		var d Decision
		select {
		case <-h.stop:
			return
		case d = <-h.app.Decisions():
		}
		if d.Kind != rollout.DecideStart {
			continue
		}
		if st := h.state(); !st.Row.Phase.Running() && !d.Slotless {
			f.problem("A2: %s got Start of %s before its running row was stored (stored phase %s)", h.name, d.Deployment, st.Row.Phase)
		}
		if d.Slotless {
			h.app.Finished(d.Deployment, true, "installed")
			continue
		}
		dur := f.begin(h.name)
		fence := d.FenceAt
		timer := time.NewTimer(dur)
	running:
		for {
			select {
			case <-timer.C:
				f.end(h.name, true)
				h.app.Finished(d.Deployment, true, "ok")
				break running
			case d2 := <-h.app.Decisions():
				switch {
				case d2.Kind == rollout.DecideFence && d2.Deployment == d.Deployment:
					fence = d2.FenceAt
				case d2.Kind == rollout.DecideAbort && d2.Deployment == d.Deployment:
					timer.Stop()
					f.end(h.name, false)
					h.app.Finished(d.Deployment, false, "aborted")
					break running
				}
			case <-h.stop:
				// The agent died; the lifecycle goes on until its fence.
				timer.Stop()
				if fence.IsZero() {
					f.problem("%s ran without a fence", h.name)
					f.end(h.name, false)
					return
				}
				wait := time.Until(fence)
				if dur < wait {
					wait = dur
				}
				time.AfterFunc(max(wait, 0), func() { f.end(h.name, false) })
				return
			}
		}
	}
}

// kill stops h without a graceful leave, as a SIGKILL of the agent would.
func (f *fleet) kill(h *host) {
	select {
	case <-h.stop:
		return
	default:
	}
	close(h.stop)
	h.doneWG.Wait()
	if h.app != nil {
		h.app.Close() // the agent's loop dies with it: nothing stored or sent after
	}
	h.c.crash()
}

func (f *fleet) stopHost(h *host) {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.doneWG.Wait()
	if h.app != nil {
		h.app.Close()
	}
	if err := h.c.Close(); err != nil {
		f.t.Errorf("close %s: %v", h.name, err)
	}
}

// startFleet starts n hosts that have revision r1 installed and a roster
// of all n (as after a first rollout), joined through the first, and waits
// until each of them sees every row.
func (f *fleet) startFleet(n int, transport bool) []*host {
	return f.startFleetOpts(n, transport, testParams, nil)
}

// startFleetParams is startFleet with other memberlist parameters and a
// hook to adjust each Cluster before it starts.
func (f *fleet) startFleetParams(n int, p rollout.MemberlistParams, adjust func(*Cluster)) []*host {
	return f.startFleetOpts(n, false, p, adjust)
}

func (f *fleet) startFleetOpts(n int, transport bool, p rollout.MemberlistParams, adjust func(*Cluster)) []*host {
	var hs []*host
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("h%d", i))
	}
	for i := range n {
		o := hostOpts{
			name: names[i],
			state: rollout.Persisted{
				Roster: rollout.Roster{Epoch: 1, Members: names},
				Row:    rollout.Row{Revision: "r1", Installed: "r1", Phase: rollout.PhaseSucceeded},
			},
			transport: transport,
			params:    p,
			adjust:    adjust,
		}
		if i > 0 {
			o.join = []string{hs[0].addr}
		}
		hs = append(hs, f.startHost(o))
	}
	for _, h := range hs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := h.c.WaitJoined(ctx)
		cancel()
		if err != nil {
			f.t.Fatalf("%s: %v", h.name, err)
		}
	}
	// 60 s: with 50 ms probe timeouts a loaded machine makes memberlist
	// flap for a while (hosts refute being dead); a quiet one takes < 1 s.
	waitFor(f.t, "every host to see every other alive", 60*time.Second, func() bool {
		for _, h := range hs {
			if aliveCount(h.c) != n {
				return false
			}
		}
		return true
	})
	for _, h := range hs {
		f.addApp(h, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, h := range hs {
			if !fullRoster(h.app.Status(), n) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			for _, h := range hs {
				for _, s := range h.app.Status() {
					f.t.Logf("%s sees %s: epoch %d hash %x member %v reach %s phase %s acc %v drained %v", h.name, s.Host, s.Epoch, s.RosterHash, s.Member, s.Reach, s.Phase, s.AccBallot, s.Drained)
				}
			}
			f.t.Fatalf("timed out waiting for a roster of every host on every host")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return hs
}

func aliveCount(c *Cluster) int {
	n := 0
	for _, m := range c.Members() {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

func fullRoster(st []rollout.HostStatus, n int) bool {
	if len(st) != n {
		return false
	}
	for _, s := range st {
		if !s.Member || s.Epoch == 0 || s.Epoch != st[0].Epoch || s.RosterHash != st[0].RosterHash {
			return false
		}
	}
	return true
}

// installed reports whether every host in hs shows rev installed in its own row.
func installed(hs []*host, rev string) bool {
	for _, h := range hs {
		if h.app == nil || h.state().Row.Installed != rev {
			return false
		}
	}
	return true
}

func desired(rev string, d manifest.Deployment) rollout.Desired {
	return rollout.Desired{Revision: rev, ManifestID: "m-" + rev, Deployment: d}
}

// TestRollouts is issue 4's "done when" over real memberlist: five hosts
// roll out one at a time and canary, and never more of them run than the
// window allows.
func TestRollouts(t *testing.T) {
	tests := []struct {
		name   string
		dep    manifest.Deployment
		window int
		canary int
	}{
		{"one-at-a-time", manifest.Deployment{Strategy: manifest.OneAtATime}, 1, 0},
		{"canary", manifest.Deployment{Strategy: manifest.Canary, Canary: q(1), Batch: q(2), Bake: 100 * time.Millisecond}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			f := newFleet(t)
			f.window, f.canary = tt.window, tt.canary
			hs := f.startFleet(5, false)
			for _, h := range hs {
				h.app.SetDesired(desired("r2", tt.dep))
			}
			waitFor(t, "every host to install r2", 60*time.Second, func() bool { return installed(hs, "r2") })
			f.check()
			f.mu.Lock()
			if f.started != len(hs) || f.ok != len(hs) {
				t.Errorf("%d starts, %d successes; want %d each", f.started, f.ok, len(hs))
			}
			if f.peak > tt.window {
				t.Errorf("peak of %d running hosts, window %d", f.peak, tt.window)
			}
			t.Logf("peak %d running (window %d)", f.peak, tt.window)
			f.mu.Unlock()
			// Every host sees every row settled. A row spreads in a few
			// gossip rounds, or directly; if every copy of it missed a host
			// (random fan-out, a loaded machine dropping loopback UDP), the
			// next push-pull brings it: memberlist's 30 s, plus a margin.
			for _, h := range hs {
				for _, s := range h.app.Status() {
					if s.Installed != "r2" && s.Host != h.name {
						waitFor(t, h.name+" to see "+s.Host+" installed", 45*time.Second, func() bool {
							for _, s2 := range h.app.Status() {
								if s2.Host == s.Host {
									return s2.Installed == "r2"
								}
							}
							return false
						})
					}
				}
			}
		})
	}
}

// TestCrashedHolder kills the host that holds the only slot, without a
// graceful leave: another host starts within CrashBound (memberlist's
// detection plus the lease and a claim round), never while the killed
// host's lifecycle may still run (until its fence); the others complete; the
// killed host restarts under its name at a new address and reports the
// interrupted deployment as failed.
func TestCrashedHolder(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	f.window = 1
	f.hook = func(_ string, n int) time.Duration {
		if n == 1 {
			return time.Minute // the first holder runs until it is killed
		}
		return 30 * time.Millisecond
	}
	const n = 5
	hs := f.startFleet(n, false)
	// Rolling, batch 1, minimum_healthy 0: the window is 1 and a crashed
	// holder does not gate the others (one-at-a-time's default minimum
	// healthy of n−1 would, until it restarts and reports its failure).
	dep := manifest.Deployment{Strategy: manifest.Rolling, Batch: q(1), MinimumHealthy: q(0)}
	for _, h := range hs {
		h.app.SetDesired(desired("r2", dep))
	}
	var victim *host
	waitFor(t, "a first host to start", 20*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.startLog) == 0 {
			return false
		}
		for _, h := range hs {
			if h.name == f.startLog[0].host {
				victim = h
			}
		}
		return true
	})
	timing := victim.app.Timing()
	bound := CrashBound(timing, testParams, n)
	killed := time.Now()
	f.kill(victim)

	var next startEvent
	waitFor(t, "another host to start", bound+10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.startLog) < 2 {
			return false
		}
		next = f.startLog[1]
		return true
	})
	took := next.at.Sub(killed)
	t.Logf("%s started %s after %s was killed; bound %s (detection ≤ %s, lease %s, claim timeout %s)",
		next.host, took.Round(time.Millisecond), victim.name, bound, DetectionBound(testParams, n), timing.Lease, timing.ClaimTimeout)
	if took > bound {
		t.Errorf("the slot of the killed holder was blocked for %s, over the documented bound %s", took, bound)
	}
	var rest []*host
	for _, h := range hs {
		if h != victim {
			rest = append(rest, h)
		}
	}
	waitFor(t, "the other hosts to install r2", 60*time.Second, func() bool { return installed(rest, "r2") })

	// Restart the killed host: same name, its stored state, a new port.
	st := victim.state()
	if !st.Row.Phase.Running() {
		t.Fatalf("the killed host's stored row is %s, want running", st.Row.Phase)
	}
	back := f.startHost(hostOpts{name: victim.name, state: st, join: []string{rest[0].addr}})
	f.addApp(back, n)
	waitFor(t, "the others to see the restarted host alive with its interrupted deployment failed", 30*time.Second, func() bool {
		for _, h := range rest {
			ok := false
			for _, s := range h.app.Status() {
				if s.Host == victim.name && s.Reach == rollout.ReachAlive && s.Phase == rollout.PhaseFailed && s.Revision == "r2" {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
	f.check()
}

// TestWrongKey: a host with another key is never admitted.
func TestWrongKey(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	var hs []*host
	for i := range 3 {
		o := hostOpts{name: fmt.Sprintf("h%d", i)}
		if i > 0 {
			o.join = []string{hs[0].addr}
		}
		hs = append(hs, f.startHost(o))
	}
	waitFor(t, "three members", 10*time.Second, func() bool { return aliveCount(hs[0].c) == 3 })
	intruder := f.startHost(hostOpts{name: "intruder", keys: [][]byte{otherKey}, join: []string{hs[0].addr, hs[1].addr}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if err := intruder.c.WaitJoined(ctx); err == nil {
		t.Error("the host with the wrong key joined")
	}
	cancel()
	// Over 30 probe intervals, nobody lists it.
	deadline := time.Now().Add(30 * testParams.ProbeInterval)
	for time.Now().Before(deadline) {
		for _, h := range hs {
			for _, m := range h.c.Members() {
				if m.Name == "intruder" {
					t.Fatalf("%s lists the intruder: %+v", h.name, m)
				}
			}
		}
		time.Sleep(testParams.ProbeInterval)
	}
	if got := aliveCount(intruder.c); got != 1 {
		t.Errorf("the intruder sees %d alive members, want only itself", got)
	}
}

// TestKeyRotation rotates the key on a live cluster: add, use, remove; the
// cluster stays whole and a host with only the new key joins.
func TestKeyRotation(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	var hs []*host
	for i := range 3 {
		o := hostOpts{name: fmt.Sprintf("h%d", i)}
		if i > 0 {
			o.join = []string{hs[0].addr}
		}
		hs = append(hs, f.startHost(o))
	}
	whole := func(k int) func() bool {
		return func() bool {
			for _, h := range hs {
				if aliveCount(h.c) != k {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "three members", 10*time.Second, whole(3))
	for _, step := range []struct {
		name string
		do   func(*Cluster, []byte) error
		key  []byte
	}{{"add", (*Cluster).AddKey, otherKey}, {"use", (*Cluster).UseKey, otherKey}, {"remove", (*Cluster).RemoveKey, testKey}} {
		for _, h := range hs {
			if err := step.do(h.c, step.key); err != nil {
				t.Fatalf("%s key on %s: %v", step.name, h.name, err)
			}
		}
		// Several probe rounds under the new keyring: nobody is lost.
		deadline := time.Now().Add(10 * testParams.ProbeInterval)
		for time.Now().Before(deadline) {
			if !whole(3)() {
				t.Fatalf("a member was lost after %s", step.name)
			}
			time.Sleep(testParams.ProbeInterval)
		}
	}
	if err := hs[0].c.RemoveKey(otherKey); err == nil {
		t.Error("removed the primary key")
	}
	hs = append(hs, f.startHost(hostOpts{name: "h3", keys: [][]byte{otherKey}, join: []string{hs[1].addr}}))
	waitFor(t, "a host with only the new key to join", 10*time.Second, whole(4))
}

// TestPartition cuts five hosts into two and three with a transport that
// drops packets and refuses streams between the sides: the minority never
// starts while the majority rolls out; after the heal the minority takes its
// turn. (The same with real agent processes in network namespaces:
// cmd/drover TestFleetPartitionNetns.)
func TestPartition(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	f.window = 1
	hs := f.startFleet(5, true)
	minority := map[string]bool{hs[0].name: true, hs[3].name: true}
	sides := map[string]int{}
	var major, minor []*host
	for _, h := range hs {
		if minority[h.name] {
			sides[h.addr] = 1
			minor = append(minor, h)
		} else {
			major = append(major, h)
		}
	}
	f.net.partition(sides)
	waitFor(t, "each side to declare the other dead", 20*time.Second, func() bool {
		for _, h := range hs {
			want := 3
			if minority[h.name] {
				want = 2
			}
			if aliveCount(h.c) != want {
				return false
			}
		}
		return true
	})
	for _, h := range hs {
		h.app.SetDesired(desired("r2", manifest.Deployment{Strategy: manifest.OneAtATime}))
	}
	waitFor(t, "the majority to install r2", 60*time.Second, func() bool { return installed(major, "r2") })
	// The minority keeps trying; give it several leases after the majority
	// finished, then check it never started.
	lease := hs[0].app.Timing().Lease
	deadline := time.Now().Add(5 * lease)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, s := range f.startLog {
			if minority[s.host] {
				f.mu.Unlock()
				t.Fatalf("minority host %s started during the partition", s.host)
			}
		}
		f.mu.Unlock()
		time.Sleep(lease / 4)
	}
	for _, h := range minor {
		if got := h.state().Row.Phase; got != rollout.PhaseWaiting {
			t.Errorf("minority host %s is %s, want waiting", h.name, got)
		}
	}
	f.net.heal()
	waitFor(t, "every host to install r2 after the heal", 90*time.Second, func() bool { return installed(hs, "r2") })
	f.check()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peak > 1 {
		t.Errorf("peak of %d running hosts, window 1", f.peak)
	}
}

// TestJoinRetries: a host whose seed is not up yet keeps trying and joins
// once it is; WaitJoined returns then.
func TestJoinRetries(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	// Reserve an address for the seed, free it, start the joiner first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := l.Addr().String()
	l.Close()
	joiner := f.startHost(hostOpts{name: "joiner", join: []string{seedAddr}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := joiner.c.WaitJoined(ctx); err == nil {
		t.Fatal("joined a seed that is not running")
	}
	cancel()
	c, err := New(Config{NodeName: "seed", Bind: seedAddr, Keys: f.keys, Groups: []string{testGroup}, Params: testParams, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := joiner.c.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both to see each other", 10*time.Second, func() bool { return aliveCount(c) == 2 && aliveCount(joiner.c) == 2 })
	m := c.Members()
	if len(m) != 2 || m[0].Name != "joiner" || !slices.Equal(m[0].Groups, []string{testGroup}) {
		t.Errorf("members %+v", m)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Bind: "127.0.0.1:0"}, "node name"},
		{"bad bind", Config{NodeName: "a", Bind: "nowhere"}, "bind address"},
		{"bad key", Config{NodeName: "a", Bind: "127.0.0.1:0", Keys: [][]byte{{1, 2, 3}}}, "key 0"},
		{"group too long", Config{NodeName: "a", Bind: "127.0.0.1:0", Groups: []string{strings.Repeat("g", 300)}}, "group"},
		{"advertise name", Config{NodeName: "a", Bind: "127.0.0.1:0", Advertise: "example.org:1"}, "IP address"},
		{"probe timeout", Config{NodeName: "a", Bind: "127.0.0.1:0", Params: rollout.MemberlistParams{ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second, SuspicionMult: 1, GossipInterval: time.Second}}, "probe timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error about %q", err, tt.want)
			}
		})
	}
	c, err := New(Config{NodeName: "a", Bind: "127.0.0.1:0", Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.App(AppConfig{Name: "x", Group: "other"}); err == nil {
		t.Error("registered an app of a group this host is not in")
	}
	if err := c.AddKey(testKey); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("AddKey without encryption: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close before start: %v", err)
	}
	if err := c.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v", err)
	}
}

// TestGracefulLeave: a host that closes is recorded as left, not dead, and
// the others take it out of the roster at once (P4).
func TestGracefulLeave(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	hs := f.startFleet(4, false)
	gone := hs[3]
	f.stopHost(gone)
	rest := hs[:3]
	waitFor(t, "the others to record the host as left and drop it from the roster", 20*time.Second, func() bool {
		for _, h := range rest {
			left := false
			for _, m := range h.c.Members() {
				if m.Name == gone.name {
					left = m.State == "left"
				}
			}
			if !left {
				return false
			}
			for _, s := range h.app.Status() {
				if s.Host == gone.name && (s.Member || s.Reach != rollout.ReachLeft) {
					return false
				}
				if s.Host != gone.name && !s.Member {
					return false
				}
			}
		}
		return true
	})
}

// TestForceRemove: the operator removes a crashed voter long before
// RemoveAfter (App.ForceRemove, `drover members remove`); the survivors
// move to a roster without it and roll out one at a time.
func TestForceRemove(t *testing.T) {
	checkGoroutines(t)
	f, rest, _ := forceRemoved(t)
	for _, h := range rest {
		h.app.SetDesired(desired("r2", manifest.Deployment{Strategy: manifest.OneAtATime}))
	}
	waitFor(t, "the survivors to install r2", 30*time.Second, func() bool { return installed(rest, "r2") })
	f.check()
}

// TestForceRemovedHostReadmitted: the removed host, restarted, is a joiner
// (PROTOCOL.md §4.2): admitted when the group is quiet, and the roster then
// stays put: the removal was done and must not be proposed again.
func TestForceRemovedHostReadmitted(t *testing.T) {
	checkGoroutines(t)
	f, rest, gone := forceRemoved(t)
	back := f.startHost(hostOpts{name: gone.name, state: gone.state(), join: []string{rest[0].addr}})
	f.addApp(back, 3)
	all := []*host{rest[0], rest[1], back}
	waitFor(t, "the restarted host to be a voter again", 30*time.Second, func() bool {
		for _, h := range all {
			if r := h.app.Voters(); !slices.Contains(r.Members, gone.name) {
				return false
			}
		}
		return true
	})
	settled := rest[0].app.Voters()
	t.Logf("re-admitted: %+v", settled)
	watch := 20 * rest[0].app.Timing().ProposeDelay
	var moved []rollout.Roster
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r := rest[1].app.Voters(); r.Epoch > settled.Epoch && (len(moved) == 0 || moved[len(moved)-1].Epoch != r.Epoch) {
			moved = append(moved, r)
		}
	}
	f.check()
	if len(moved) > 0 {
		t.Errorf("the roster moved on %d times in %s after the re-admission (the removal proposed again): %+v", len(moved), watch, moved)
	}
}

// forceRemoved starts three hosts, kills the third, has the first remove it
// with ForceRemove and waits for the roster without it on both survivors.
func forceRemoved(t *testing.T) (f *fleet, rest []*host, gone *host) {
	f = newFleet(t)
	f.window = 1
	hs := f.startFleet(3, false)
	gone, rest = hs[2], hs[:2]
	before := rest[0].app.Voters()
	if before.Epoch == 0 || !slices.Contains(before.Members, gone.name) {
		t.Fatalf("roster before: %+v, want one with %s", before, gone.name)
	}
	f.kill(gone)
	waitFor(t, "the survivors to see the host dead", 20*time.Second, func() bool {
		for _, h := range rest {
			for _, m := range h.c.Members() {
				if m.Name == gone.name && m.State != "dead" {
					return false
				}
			}
		}
		return true
	})
	rest[0].app.ForceRemove(gone.name)
	want := []string{rest[0].name, rest[1].name}
	waitFor(t, "a roster without the removed host on both survivors", 20*time.Second, func() bool {
		for _, h := range rest {
			if r := h.app.Voters(); r.Epoch <= before.Epoch || !slices.Equal(r.Members, want) {
				return false
			}
		}
		return true
	})
	t.Logf("roster %d %v -> %+v", before.Epoch, before.Members, rest[1].app.Voters())
	return f, rest, gone
}
