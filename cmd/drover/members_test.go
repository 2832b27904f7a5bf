package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/daemon"
)

func sampleMembers() *daemon.Members {
	return &daemon.Members{
		Host: "web-1",
		Members: []daemon.Member{
			{Name: "web-1", Addr: "10.0.0.1:7946", State: "alive"},
			{Name: "web-2", Addr: "10.0.0.2:7946", State: "alive"},
			{Name: "web-3", Addr: "10.0.0.3:7946", State: "dead"},
			{Name: "web-4", Addr: "10.0.0.4:7946", State: "alive"},
		},
		Apps: []daemon.AppRoster{{
			App: "hello-web", Group: "web-prod", Epoch: 4, Voters: []string{"web-1", "web-2", "web-3"},
			Hosts: []daemon.RosterHost{
				{Host: "web-1", Voter: true, Epoch: 4}, {Host: "web-2", Voter: true, Epoch: 4},
				{Host: "web-3", Voter: true, Epoch: 3}, {Host: "web-4", Epoch: 4},
			},
		}},
	}
}

// TestMembersTable checks the `drover members` table against a golden file
// (go test ./cmd/drover -run TestMembersTable -update rewrites it).
func TestMembersTable(t *testing.T) {
	var b strings.Builder
	printMembers(&b, sampleMembers())
	golden := filepath.Join("testdata", "members.golden")
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
		t.Errorf("members table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRemovalApps(t *testing.T) {
	m := sampleMembers()
	for _, tc := range []struct {
		host, app string
		want      string // the apps, or the error
	}{
		{host: "web-3", want: "hello-web"},
		{host: "web-3", app: "hello-web", want: "hello-web"},
		{host: "web-4", want: "web-4 is not a voter of any roster web-1 holds (hello-web: epoch 4, voters web-1, web-2, web-3); " +
			"members: web-1 (alive), web-2 (alive), web-3 (dead), web-4 (alive)"},
		{host: "web-9", want: "web-9 is not a voter of any roster web-1 holds"},
		{host: "web-3", app: "other", want: `application "other" is not deployed by web-1 (it deploys: hello-web)`},
	} {
		apps, err := removalApps(m, tc.host, tc.app)
		got := strings.Join(apps, ",")
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("remove %s (app %q): %q, want %q", tc.host, tc.app, got, tc.want)
		}
	}
}

func TestConfirm(t *testing.T) {
	var out strings.Builder
	ok, err := confirm(strings.NewReader("y\n"), &out, false, "Remove? ")
	var ee *exitError
	if ok || !errors.As(err, &ee) || !strings.Contains(ee.msg, "--yes") {
		t.Errorf("without a terminal: %v, %v; want a refusal naming --yes", ok, err)
	}
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, "yes": true, "n\n": false, "\n": false, "": false, "sure\n": false} {
		out.Reset()
		ok, err := confirm(strings.NewReader(in), &out, true, "Remove? ")
		if err != nil || ok != want || out.String() != "Remove? " {
			t.Errorf("answer %q: %v, %v (asked %q), want %v", in, ok, err, out.String(), want)
		}
	}
}
