package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// TestFleetCLIWithBrokenConfig: an agent runs with a good config; the
// operator saves it again with a typo. The agent keeps the old config
// (the reload is rejected), and `drover status`, `pause` and `resume`
// with that file still reach it, through the file's raw api.socket, each
// with one warning line naming the broken file and its first problem.
func TestFleetCLIWithBrokenConfig(t *testing.T) {
	f := newFleet(t, 1, "all-at-once")
	f.waitFor(0, 90*time.Second, "v1 deployed", allOn(1, "v1"))
	a := f.agents[0]
	good, err := os.ReadFile(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "poll_interval:", "poll_intervall:", 1)
	if broken == string(good) {
		t.Fatal("the fleet config has no poll_interval to misspell")
	}
	if err := os.WriteFile(a.cfg, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(broken[:strings.Index(broken, "poll_intervall:")], "\n")
	want := "warning: " + a.cfg + " does not parse (drover.yaml:" + strconv.Itoa(line) +
		`: applications[0]: unknown key "poll_intervall"; did you mean "poll_interval"?); using socket ` + a.socket + "\n"
	f.waitFor(0, 30*time.Second, "the agent to reject the reload", func(st *daemon.Status) bool {
		return strings.Contains(st.ConfigError, "poll_intervall")
	})

	r := drover(t, nil, "status", "--config", a.cfg)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "host h1,") || !strings.Contains(r.stdout, "CONFIG RELOAD REJECTED") {
		t.Errorf("drover status: exit %d, want the status of h1 and its rejected reload:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r.stderr != want {
		t.Errorf("drover status: stderr\n%s\nwant\n%s", r.stderr, want)
	}
	for _, cmd := range []string{"pause", "resume"} {
		r := drover(t, nil, cmd, fleetApp, "--config", a.cfg)
		if r.code != 0 || r.stderr != want {
			t.Errorf("drover %s: exit %d:\n%s%s", cmd, r.code, r.stdout, r.stderr)
		}
	}
	// --socket needs no config: no warning.
	r = drover(t, nil, "status", "--config", a.cfg, "--socket", a.socket)
	if r.code != 0 || r.stderr != "" {
		t.Errorf("drover status --socket: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// config check tells the whole story and fails.
	r = drover(t, nil, "config", "check", a.cfg)
	if r.code != 1 || !strings.Contains(r.stdout, `unknown key "poll_intervall"`) {
		t.Errorf("drover config check: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
