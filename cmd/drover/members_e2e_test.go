package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// TestFleetMembersRemove: three real agents; one is killed with SIGKILL
// and, long before the automatic removal of a dead voter (10 minutes), the
// operator removes it with `drover members remove` on another host. The
// roster moves to a new epoch without it on both survivors, and the next
// revision rolls out one at a time on the two.
func TestFleetMembersRemove(t *testing.T) {
	const n = 3
	f := newFleet(t, n, "all-at-once")
	f.waitFor(0, 90*time.Second, "v1 everywhere", allOn(n, "v1"))
	members := func(i int) *daemon.Members {
		t.Helper()
		m, err := daemon.NewClient(f.agents[i].socket).Members(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	rosterOf := func(m *daemon.Members) daemon.AppRoster {
		for _, ar := range m.Apps {
			if ar.App == fleetApp {
				return ar
			}
		}
		t.Fatalf("%s lists no roster of %s: %+v", m.Host, fleetApp, m)
		return daemon.AppRoster{}
	}
	var before daemon.AppRoster
	for i := range n {
		waitMembers(t, f, i, 30*time.Second, "a roster of all three", func(m *daemon.Members) bool {
			before = rosterOf(m)
			return before.Epoch > 0 && len(before.Voters) == n
		})
	}
	sock := f.agents[0].socket
	r := drover(t, nil, "members", "--socket", sock)
	row := regexp.MustCompile(fmt.Sprintf(`(?m)^h3 +alive +\S+ +yes +%d$`, before.Epoch))
	if r.code != 0 || !row.MatchString(r.stdout) {
		t.Errorf("drover members: exit %d, want h3 alive and a voter at epoch %d:\n%s%s", r.code, before.Epoch, r.stdout, r.stderr)
	}

	f.kill9(2)
	waitMembers(t, f, 0, 30*time.Second, "h1 to see h3 dead", func(m *daemon.Members) bool {
		for _, mb := range m.Members {
			if mb.Name == "h3" {
				return mb.State == "dead"
			}
		}
		return false
	})

	// Refusals, before anything is asked.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"h3"}, "refusing to remove a voter without --yes"}, // stdin is not a terminal
		{[]string{"h9", "--yes"}, "h9 is not a voter of any roster h1 holds (hello: epoch"},
		{[]string{"h1", "--yes"}, "h1 is this host"},
		{[]string{"h3", "--yes", "--app", "nope"}, `application "nope" is not deployed by h1`},
	} {
		r := drover(t, nil, append([]string{"members", "remove", "--socket", sock}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("members remove %v: exit %d, stderr:\n%s\nwant exit 1 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if got := rosterOf(members(0)); got.Epoch != before.Epoch {
		t.Fatalf("a refused removal changed the roster: %+v -> %+v", before, got)
	}

	asked := time.Now()
	r = drover(t, nil, "members", "remove", "h3", "--yes", "--wait", "60s", "--socket", sock)
	took := time.Since(asked)
	t.Logf("drover members remove h3 --yes (%.1fs):\nstderr:\n%sstdout:\n%s", took.Seconds(), r.stderr, r.stdout)
	if r.code != 0 {
		t.Fatalf("members remove h3: exit %d", r.code)
	}
	for _, w := range []string{"WARNING", "cannot recover a group whose", "h3 is dead as h1 sees it", "3 voters -> 2 (h1, h2), majority 2"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("the warning lacks %q", w)
		}
	}
	if !strings.Contains(r.stdout, "roster epoch") {
		t.Errorf("no new roster reported: %s", r.stdout)
	}
	for i := range 2 {
		waitMembers(t, f, i, 30*time.Second, "a later roster without h3", func(m *daemon.Members) bool {
			ar := rosterOf(m)
			return ar.Epoch > before.Epoch && strings.Join(ar.Voters, ",") == "h1,h2"
		})
	}

	f.push("v2", "one-at-a-time", bundleOpts{})
	on := map[string]bool{"h1": true, "h2": true}
	f.waitFor(1, 60*time.Second, "v2 on the two survivors", onRev(on, "v2"))
	ivs := f.lifecycles("v2")
	t.Logf("v2 lifecycles: %+v", ivs)
	if len(ivs) != 2 {
		t.Fatalf("%d hosts ran v2, want 2", len(ivs))
	}
	if c := maxConcurrent(ivs); c != 1 {
		t.Errorf("one-at-a-time ran %d lifecycles at once", c)
	}

	// Two voters left; with one of them dead no majority is, and removal
	// cannot help: the agent refuses rather than ask what cannot happen.
	f.kill9(1)
	waitMembers(t, f, 0, 30*time.Second, "h1 to see h2 dead", func(m *daemon.Members) bool {
		for _, mb := range m.Members {
			if mb.Name == "h2" {
				return mb.State == "dead"
			}
		}
		return false
	})
	r = drover(t, nil, "members", "remove", "h2", "--yes", "--socket", sock)
	if want := "only 1 of the 2 voters"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("removal without a live majority: exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, want)
	}
}

// waitMembers polls agent i's GET /v1/members until cond holds, or fails
// after d.
func waitMembers(t *testing.T, f *fleet, i int, d time.Duration, what string, cond func(*daemon.Members) bool) {
	t.Helper()
	var last *daemon.Members
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		m, err := daemon.NewClient(f.agents[i].socket).Members(t.Context())
		if err == nil {
			last = m
			if cond(m) {
				return
			}
		}
	}
	t.Fatalf("%s: not within %s; last from %s: %+v", what, d, f.agents[i].name, last)
}
