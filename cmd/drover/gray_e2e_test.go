package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// TestFleetGrayCutsNetns: five real agents, each in its own network
// namespace, install revision 1 all at once on a fresh group (every host
// slotless), then a firewall between {h1,h2} and {h3,h4,h5} drops part of
// the traffic, and revision 2 is released one at a time. What memberlist
// shows, and so what the protocol must do, depends on what the cut drops
// (reconcile/rollout/PROTOCOL.md §7, gray cuts):
//
//   - udp: datagrams between the sides are dropped, TCP passes.
//     memberlist's probes fail but its TCP fallback ping succeeds, so it
//     shows every host alive on both sides. Rows cross only in push-pull
//     (TCP), the roster and Paxos messages go over TCP as well, but claims,
//     grants and releases are datagrams: a claimant collects grants from
//     its own side only. If no roster had reached the majority before the
//     cut, it waits for a push-pull (30 s interval) to bring one. The majority completes one at a time, passing over
//     the minority hosts memberlist calls alive; the minority, with two
//     grants of five, starts nothing; after the heal it goes last.
//   - tcp: streams between the sides are dropped, datagrams pass.
//     memberlist's probes succeed (they are UDP): everyone alive; only its
//     push-pull fails. The protocol runs on datagrams (rows are gossiped and
//     fanned out, claims, grants and releases are direct datagrams, roster
//     messages go over UDP too), so the group is not divided at all: every
//     host, the minority included, completes one at a time during the cut.
//   - minority-to-majority, majority-to-minority: one direction of every
//     protocol is dropped. No TCP connection forms either way (the SYN or
//     its answer is lost), and every probe misses its ack, so each side sees
//     the other suspect, then dead: the sides behave as a partition, though
//     datagrams of one direction still arrive (rows, claims of the side that
//     can send, which voters of the other side may grant into the void).
//     Where the minority can still send, its "dead" verdicts on the majority
//     reach the majority, whose hosts may see one another dead until they
//     refute: waiting for the majority's view to settle has a long deadline.
//     The majority completes one at a time; the minority starts nothing;
//     after the heal it goes last.
//   - pair: only h1 and h3 cannot reach each other, by any protocol; each
//     reaches the three others. memberlist's indirect probes through them
//     keep h1 and h3 alive for each other; a claim misses one grant of
//     five, a majority still answers: every host completes during the cut.
//
// In every case, at no instant do two hosts run lifecycle events.
func TestFleetGrayCutsNetns(t *testing.T) {
	needNetns(t)
	needNft(t)
	minority, majority := []int{0, 1}, []int{2, 3, 4}
	cases := []grayCut{
		{name: "udp", rules: []cutRule{{minority, majority, "udp"}, {majority, minority, "udp"}},
			evidence: "over TCP but UDP probes failed"},
		{name: "tcp", rules: []cutRule{{minority, majority, "tcp"}, {majority, minority, "tcp"}}, across: true},
		{name: "minority-to-majority", rules: []cutRule{{minority, majority, ""}}, sidesApart: true},
		{name: "majority-to-minority", rules: []cutRule{{majority, minority, ""}}, sidesApart: true},
		// The same one-way cuts once every host holds the group's first
		// roster (A4 holds): no side can bootstrap a roster of its own.
		{name: "minority-to-majority-after-roster", rules: []cutRule{{minority, majority, ""}}, sidesApart: true, rosterFirst: true},
		{name: "majority-to-minority-after-roster", rules: []cutRule{{majority, minority, ""}}, sidesApart: true, rosterFirst: true},
		// The fresh-group one-way cuts once more with cluster.bootstrap_expect
		// 5 (PROTOCOL.md §4.4, A4'): the first roster is chosen by Paxos
		// with a quorum of 3, so the sides cannot form two.
		{name: "minority-to-majority-expect", rules: []cutRule{{minority, majority, ""}}, sidesApart: true, expect: 5},
		{name: "majority-to-minority-expect", rules: []cutRule{{majority, minority, ""}}, sidesApart: true, expect: 5},
		{name: "pair", rules: []cutRule{{[]int{0}, []int{2}, ""}, {[]int{2}, []int{0}, ""}}, across: true,
			evidence: "Failed UDP ping: h1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expect == 0 && !tc.rosterFirst && tc.sidesApart && os.Getenv("DROVER_E2E_A4") == "" {
				// A fresh group without bootstrap_expect, cut one way before
				// its first roster reached every host, may bootstrap two
				// epoch-1 rosters (A4 broken, PROTOCOL.md §4.4): neither safe
				// nor live by design, so its outcome depends on the timing.
				// The -expect and -after-roster cases are the checks.
				t.Skip("KNOWN, A4 without cluster.bootstrap_expect (PROTOCOL.md §4.4): a one-way cut of a fresh group can form two first rosters; set DROVER_E2E_A4=1 to run it")
			}
			runGrayCut(t, minority, majority, tc)
		})
	}
}

// grayCut is one kind of cut of TestFleetGrayCutsNetns.
type grayCut struct {
	name  string
	rules []cutRule
	// across: the protocol runs across the cut, so every host completes
	// during it; otherwise only the majority does.
	across bool
	// sidesApart: memberlist on the majority side shows only its own side
	// alive (else every host alive).
	sidesApart bool
	// evidence, when set, is a memberlist log line that shows the cut in
	// force while memberlist keeps every host alive.
	evidence string
	// rosterFirst: cut only once every host holds a roster of all five.
	rosterFirst bool
	// expect is cluster.bootstrap_expect (0: not set).
	expect int
}

func runGrayCut(t *testing.T, minority, majority []int, tc grayCut) {
	const n = 5
	lab := newNetLab(t, n)
	f := newFleetWith(t, n, "all-at-once", fleetOpts{lab: lab, bootstrapExpect: tc.expect})
	t0 := time.Now()
	f.waitFor(0, 90*time.Second, "v1 everywhere (slotless first install)", allOn(n, "v1"))
	if tc.rosterFirst {
		for i := range n {
			f.waitFor(i, 30*time.Second, "a roster of all five hosts", func(st *daemon.Status) bool {
				voters, epoch := 0, uint64(0)
				for _, h := range hostsOf(st) {
					if h.Voter {
						voters++
					}
					if h.Host == st.Host {
						epoch = h.Epoch
					}
				}
				return epoch > 0 && voters == n
			})
		}
	}
	t.Logf("v1 everywhere after %.1fs; rosters at the cut: %s", time.Since(t0).Seconds(), f.rosters())
	splitSeen := f.watchRosters(t, t0)
	defer func() {
		// Checked last, after every other check of the subtest ran.
		switch s := splitSeen(); {
		case s == "":
		case t.Failed():
			t.Logf("also, two rosters of one epoch: %s", s)
		case strings.HasPrefix(s, "epoch 1 ") && tc.expect == 0:
			t.Skipf("KNOWN, A4 without cluster.bootstrap_expect (PROTOCOL.md §4.4): the cut came before the first roster reached every host, "+
				"and the two sides bootstrapped two epoch-1 rosters apart: %s; grants check the epoch, not the roster, "+
				"so quorums of the two need not intersect (the -expect cases run the same cuts with bootstrap_expect 5)", s)
		default:
			t.Errorf("two rosters of one epoch: %s", s)
		}
	}()

	names := func(is []int) map[string]bool {
		m := map[string]bool{}
		for _, i := range is {
			m[f.agents[i].name] = true
		}
		return m
	}
	minorNames, majorNames := names(minority), names(majority)
	marks := f.logSizes()
	lab.cut(tc.rules...)
	tCut := time.Now()
	if tc.sidesApart {
		for _, i := range majority {
			f.waitFor(i, 30*time.Second, "the majority to see only its side alive", func(st *daemon.Status) bool {
				return aliveMembers(st) == len(majority)
			})
		}
	}
	if tc.evidence != "" {
		f.waitLog(majority, marks, 30*time.Second, tc.evidence)
	}
	t.Logf("cut in force after %.1fs; memberlist views: %s", time.Since(tCut).Seconds(), f.views())

	tPush := time.Now()
	f.push("v2", "one-at-a-time", bundleOpts{})
	lease := rollout.TimingFor(daemon.ProfileParams("local"), n).Lease
	if tc.across {
		f.waitFor(majority[0], 120*time.Second, "every host on v2 during the cut", allOn(n, "v2"))
		t.Logf("every host on v2 during the cut %.1fs after the push; memberlist views: %s; rosters: %s",
			time.Since(tPush).Seconds(), f.views(), f.rosters())
		f.checkWindow(t, n, 1)
		lab.uncut()
		return
	}
	f.waitFor(majority[0], 120*time.Second, "the majority on v2", onRev(majorNames, "v2"))
	t.Logf("majority on v2 %.1fs after the push", time.Since(tPush).Seconds())
	for _, i := range minority {
		f.waitFor(i, 60*time.Second, "the minority to know v2 is desired", func(st *daemon.Status) bool {
			for _, a := range st.Apps {
				if a.Name == fleetApp {
					return a.Desired == "v2"
				}
			}
			return false
		})
	}
	// Absence can only be observed over a window: six leases, each several
	// claim rounds (claim timeout, backoffs of 1 to 9.5 claim timeouts).
	// Seven cuts watch it, so the window is shorter than the partition
	// test's eight.
	for deadline := time.Now().Add(6 * lease); time.Now().Before(deadline); {
		for _, iv := range f.lifecycles("v2") {
			if minorNames[iv.host] {
				t.Fatalf("minority host %s ran v2 during the cut: %+v; rosters: %s", iv.host, f.lifecycles("v2"), f.rosters())
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("during the cut: memberlist views: %s; rosters: %s", f.views(), f.rosters())
	for _, i := range minority {
		st, err := f.status(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hostsOf(st) {
			if h.Host == f.agents[i].name && (h.Revision != "v1" || h.Phase == "running") {
				t.Errorf("minority host %s is %s on %s during the cut, want waiting on v1", h.Host, h.Phase, h.Revision)
			}
		}
	}

	tHeal := time.Now()
	lab.uncut()
	f.waitFor(minority[0], 120*time.Second, "every host on v2 after the heal", allOn(n, "v2"))
	t.Logf("every host on v2 %.1fs after the heal", time.Since(tHeal).Seconds())
	ivs := f.checkWindow(t, n, 1)
	var lastMajor float64
	for _, iv := range ivs {
		if majorNames[iv.host] {
			lastMajor = max(lastMajor, iv.end)
		}
	}
	for _, iv := range ivs {
		if minorNames[iv.host] && iv.start < lastMajor {
			t.Errorf("minority host %s started at %.3f, before the majority finished at %.3f", iv.host, iv.start, lastMajor)
		}
	}
}

// onRev holds when every host in hosts has installed rev and runs nothing.
func onRev(hosts map[string]bool, rev string) func(*daemon.Status) bool {
	return func(st *daemon.Status) bool {
		got := 0
		for _, h := range hostsOf(st) {
			if hosts[h.Host] && h.Revision == rev && h.Phase != "running" {
				got++
			}
		}
		return got == len(hosts)
	}
}

// checkWindow checks that n hosts ran v2 and that at no instant more than
// window of them ran lifecycle events; it returns the lifecycles.
func (f *fleet) checkWindow(t *testing.T, n, window int) []interval {
	t.Helper()
	ivs := f.lifecycles("v2")
	var b strings.Builder
	for _, iv := range ivs {
		fmt.Fprintf(&b, " %s %.3f+%.3fs", iv.host, iv.start-ivs[0].start, iv.end-iv.start)
	}
	t.Logf("v2 lifecycles (start from the first, duration):%s", b.String())
	if len(ivs) != n {
		t.Fatalf("%d hosts ran v2, want %d", len(ivs), n)
	}
	if c := maxConcurrent(ivs); c > window {
		t.Errorf("%d lifecycles ran at once, window %d: %+v", c, window, ivs)
	}
	return ivs
}

// rosterView is one host's roster as its status shows it.
type rosterView struct {
	host   string
	err    error
	epoch  uint64          // the host's own roster epoch
	voters []string        // the hosts it counts as voters, sorted
	rows   map[string]bool // the hosts it has rows of
}

func (f *fleet) rosterViews() []rosterView {
	var out []rosterView
	for i, a := range f.agents {
		v := rosterView{host: a.name, rows: map[string]bool{}}
		st, err := f.status(i)
		if err != nil {
			v.err = err
			out = append(out, v)
			continue
		}
		for _, h := range hostsOf(st) {
			v.rows[h.Host] = true
			if h.Voter {
				v.voters = append(v.voters, h.Host)
			}
			if h.Host == a.name {
				v.epoch = h.Epoch
			}
		}
		sort.Strings(v.voters)
		out = append(out, v)
	}
	return out
}

func formatRosters(vs []rosterView) string {
	var out []string
	for _, v := range vs {
		if v.err != nil {
			out = append(out, v.host+": "+v.err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("%s: epoch %d voters %v", v.host, v.epoch, v.voters))
	}
	return strings.Join(out, "; ")
}

// rosters is each host's own roster epoch and the voters it sees, for logs.
func (f *fleet) rosters() string { return formatRosters(f.rosterViews()) }

// splitRoster finds two hosts that hold different rosters of one epoch:
// their quorums need not intersect, and PROTOCOL.md §3's P1 argument
// assumes one roster per epoch. It only compares hosts that both have the
// rows of every host either counts as a voter, so that a row still on its
// way is not taken for a different roster.
func splitRoster(vs []rosterView) string {
	for i, a := range vs {
		for _, b := range vs[i+1:] {
			if a.err != nil || b.err != nil || a.epoch == 0 || a.epoch != b.epoch || slices.Equal(a.voters, b.voters) {
				continue
			}
			known := true
			for _, h := range append(slices.Clone(a.voters), b.voters...) {
				known = known && a.rows[h] && b.rows[h]
			}
			if known {
				return fmt.Sprintf("epoch %d is %v on %s and %v on %s", a.epoch, a.voters, a.host, b.voters, b.host)
			}
		}
	}
	return ""
}

// views is each host's memberlist view, for logs.
func (f *fleet) views() string {
	var out []string
	for i, a := range f.agents {
		st, err := f.status(i)
		if err != nil {
			out = append(out, a.name+": "+err.Error())
			continue
		}
		var ms []string
		for _, m := range st.Members {
			ms = append(ms, m.Name+"="+m.State)
		}
		sort.Strings(ms)
		out = append(out, a.name+": "+strings.Join(ms, ","))
	}
	return strings.Join(out, "; ")
}

// logSizes is the length of every agent's log, to look only at what
// comes after.
func (f *fleet) logSizes() []int {
	var out []int
	for _, a := range f.agents {
		b, _ := os.ReadFile(a.logPath)
		out = append(out, len(b))
	}
	return out
}

// waitLog waits until the log of one of the agents contains line past its
// mark.
func (f *fleet) waitLog(agents []int, marks []int, d time.Duration, line string) {
	f.t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, i := range agents {
			if b, err := os.ReadFile(f.agents[i].logPath); err == nil && len(b) > marks[i] && strings.Contains(string(b[marks[i]:]), line) {
				return
			}
		}
	}
	f.t.Fatalf("no agent logged %q within %s", line, d)
}

// watchRosters logs every change of the hosts' rosters (each host's epoch
// and the voters it sees) and memberlist views until the test ends, with the time since t0, and
// returns a function that reports the first split roster seen (or "").
func (f *fleet) watchRosters(t *testing.T, t0 time.Time) func() string {
	stop, done := make(chan struct{}), make(chan struct{})
	var split string // written by the goroutine until done is closed
	go func() {
		defer close(done)
		last, lastViews := "", ""
		for {
			vs := f.rosterViews()
			if r := formatRosters(vs); r != last {
				t.Logf("%.1fs rosters: %s", time.Since(t0).Seconds(), r)
				last = r
			}
			if v := f.views(); v != lastViews {
				t.Logf("%.1fs memberlist: %s", time.Since(t0).Seconds(), v)
				lastViews = v
			}
			if s := splitRoster(vs); s != "" && split == "" {
				split = fmt.Sprintf("%s (at %.1fs)", s, time.Since(t0).Seconds())
				t.Logf("SPLIT ROSTER: %s", split)
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	end := func() { once.Do(func() { close(stop); <-done }) }
	t.Cleanup(end)
	return func() string { end(); return split }
}
