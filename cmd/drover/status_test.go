package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/daemon"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestStatusTable checks the `drover status` table against a golden file
// (go test ./cmd/drover -run TestStatusTable -update rewrites it).
func TestStatusTable(t *testing.T) {
	st := daemon.SampleStatus()
	st.ConfigError = "drover.yaml:12: applications[0].source: want exactly one of git, s3 or dir, found 2"
	st.Apps[0].Paused = true
	var b strings.Builder
	printStatus(&b, &st)
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("status table:\n%s\nwant:\n%s", b.String(), want)
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
