package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/daemon"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestStatusGolden renders statuses recorded from real agents (normalized:
// see normalizeStatus; the fleet tests that record them rewrite them with
// -update) and compares them with their golden files.
func TestStatusGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "status-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded statuses in testdata: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var st daemon.Status
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		got := renderGolden(&st)
		want, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s rendered:\n%s\nwant:\n%s", f, got, want)
		}
	}
}

// TestStatusSaysWhyNoRoster: an application whose group has no roster says
// why under its desired line.
func TestStatusSaysWhyNoRoster(t *testing.T) {
	st := daemon.SampleStatus()
	st.Apps[0].Roster = daemon.RosterStatus{Why: "no roster: waiting for bootstrap_expect 5 hosts, 3 seen", Expect: 5}
	var b strings.Builder
	printStatus(&b, &st)
	if !strings.Contains(b.String(), "\n  no roster: waiting for bootstrap_expect 5 hosts, 3 seen\n") {
		t.Errorf("status does not say why there is no roster:\n%s", b.String())
	}
}
