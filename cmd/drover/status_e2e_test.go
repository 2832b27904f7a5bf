package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
)

// TestFleetFailingHookAsAnOperatorSeesIt: three real agents; v2's
// ValidateService fails on the first host to run it, one-at-a-time halts
// and rolls back. Every other host's `drover status` names the failed host,
// the event, the deployment and the end of the script's output; the failed
// host's `drover logs` and `drover history` show the rest; `drover resume`
// says that resume does not restart a halted rollout. The status of a real
// agent, normalized, is the golden input of TestStatusGolden.
func TestFleetFailingHookAsAnOperatorSeesIt(t *testing.T) {
	f := newFleet(t, 3, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 deployed", allOn(3, "v1"))
	// ValidateService sleeps 2 s, then fails.
	f.push("v2", "one-at-a-time", bundleOpts{failValidate: true, hold: 2 * time.Second})

	// drover logs -f on the host in ValidateService streams its log as it
	// grows (the failure's output comes after the follow began) and ends
	// with the deployment.
	var inValidate string
	f.waitFor(0, 90*time.Second, "a host in v2's ValidateService", func(st *daemon.Status) bool {
		for _, h := range helloApp(st).Hosts {
			if h.Phase == "running" && h.Event == "ValidateService" {
				inValidate = h.Host
				return true
			}
		}
		return false
	})
	vi := slices.IndexFunc(f.agents, func(a *agentProc) bool { return a.name == inValidate })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, droverBin, "logs", fleetApp, "-f", "--socket", f.agents[vi].socket)
	var fout, ferr strings.Builder
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Run(); err != nil || ctx.Err() != nil {
		t.Errorf("drover logs -f on %s: %v (%v)\n%s", inValidate, err, ctx.Err(), ferr.String())
	}
	if !strings.Contains(ferr.String(), "revision v2: running") || !strings.HasSuffix(fout.String(), "[stderr]service check failed\n") {
		t.Errorf("drover logs -f on %s: stderr %q; log:\n%s", inValidate, ferr.String(), fout.String())
	}

	settled := func(st *daemon.Status) bool {
		a := helloApp(st)
		if a == nil || !a.Halted || a.Failure == nil || !allOn(3, "v1")(st) {
			return false
		}
		for _, h := range a.Hosts {
			if h.Phase == "running" || h.Phase == "rolling-back" || h.Host == a.Failure.Host && h.Phase != "rolled-back" {
				return false // the failed host reinstalls v1 too
			}
		}
		return true
	}
	st := f.waitFor(0, 90*time.Second, "the rollout of v2 halted and rolled back, seen by h1", settled)
	failed := helloApp(st).Failure.Host
	fi := slices.IndexFunc(f.agents, func(a *agentProc) bool { return a.name == failed })
	other := (fi + 1) % len(f.agents)
	st = f.waitFor(other, 30*time.Second, "the halt seen by "+f.agents[other].name, settled)
	a := helloApp(st)

	// The failed host's own record of v2 is the deployment status names.
	var hist []daemon.DeploymentSummary
	r := drover(t, nil, "history", fleetApp, "--json", "--socket", f.agents[fi].socket)
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &hist) != nil {
		t.Fatalf("drover history on %s: exit %d\n%s%s", failed, r.code, r.stdout, r.stderr)
	}
	var v2 *daemon.DeploymentSummary
	for i := range hist {
		if hist[i].Revision == "v2" && !hist[i].Rollback {
			v2 = &hist[i]
			break
		}
	}
	if v2 == nil || v2.Status != "failed" || v2.FailedEvent != "ValidateService" {
		t.Fatalf("history of %s has no failed v2 at ValidateService: %+v", failed, hist)
	}
	fl := a.Failure
	if fl.Host != failed || fl.Event != "ValidateService" || fl.Revision != "v2" || fl.Deployment != v2.ID ||
		!strings.Contains(fl.Error, "hook.sh failed with exit code 1") || !slices.Contains(fl.Output, "service check failed") {
		t.Errorf("%s's status of the failure: %+v; want %s, ValidateService, v2, deployment %s, exit code 1 and its output", f.agents[other].name, fl, failed, v2.ID)
	}
	if a.Deployment != v2.ID {
		t.Errorf("the rollout's deployment in status is %q, want %s (the failed host's record)", a.Deployment, v2.ID)
	}
	if len(a.Why) == 0 || !strings.Contains(a.Why[0], "halted: "+failed+" failed at ValidateService") {
		t.Errorf("why: %q, want the halt and who caused it", a.Why)
	}

	// What the operator reads on another host.
	r = drover(t, nil, "status", "--socket", f.agents[other].socket)
	for _, want := range []string{
		"HALTED",
		"failed: " + failed + " on v2 at ValidateService (deployment " + v2.ID + "): ValidateService failed: script at specified location: hook.sh failed with exit code 1\n",
		"    | service check failed\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("drover status on %s lacks %q:\n%s", f.agents[other].name, want, r.stdout)
		}
	}
	t.Logf("$ drover status   # on %s\n%s", f.agents[other].name, r.stdout)

	// The failed host's log, by sequence number, ID prefix and latest.
	for _, which := range []string{fmt.Sprint(v2.Seq), "#" + fmt.Sprint(v2.Seq), v2.ID, v2.ID[:6]} {
		r = drover(t, nil, "logs", fleetApp, which, "--socket", f.agents[fi].socket)
		if r.code != 0 || !strings.Contains(r.stdout, "LifecycleEvent - ValidateService") || !strings.Contains(r.stdout, "[stderr]service check failed") {
			t.Errorf("drover logs %s %s on %s: exit %d\n%s%s", fleetApp, which, failed, r.code, r.stdout, r.stderr)
		}
	}
	t.Logf("$ drover logs hello %d   # on %s\n%s", v2.Seq, failed, r.stdout)
	r = drover(t, nil, "logs", fleetApp, "d-000000000000", "--socket", f.agents[fi].socket)
	if r.code == 0 || !strings.Contains(r.stderr, "no deployment d-000000000000 of hello on this host") {
		t.Errorf("drover logs of an unknown deployment: exit %d\n%s", r.code, r.stderr)
	}
	r = drover(t, nil, "logs", fleetApp, "--host", failed, "--socket", f.agents[other].socket)
	if r.code == 0 || !strings.Contains(r.stderr, "run `drover logs hello` on "+failed) {
		t.Errorf("drover logs --host %s on %s: exit %d, want a pointer to %s\n%s", failed, f.agents[other].name, r.code, failed, r.stderr)
	}
	r = drover(t, nil, "history", fleetApp, "--socket", f.agents[fi].socket)
	if r.code != 0 || !regexp.MustCompile(`(?m)^\d+\s+`+v2.ID+`\s+v2\s+failed\s.*ValidateService: script at specified location`).MatchString(r.stdout) {
		t.Errorf("drover history on %s: exit %d\n%s%s", failed, r.code, r.stdout, r.stderr)
	}
	t.Logf("$ drover history hello   # on %s\n%s", failed, r.stdout)

	// The group's list on the socket is the app's history (the app is the
	// group's only one), and an unknown group says which exist.
	gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer gcancel()
	c := daemon.NewClient(f.agents[fi].socket)
	if group, err := c.GroupHistory(gctx, "web"); err != nil || len(group) != len(hist) || group[0].ID != hist[0].ID {
		t.Errorf("GET /v1/deployments/web on %s: %+v, %v; want the history %+v", failed, group, err, hist)
	}
	if _, err := c.GroupHistory(gctx, "wbe"); err == nil || !strings.Contains(err.Error(), `no deployment group "wbe" on this host (it has web)`) {
		t.Errorf("GET /v1/deployments/wbe: %v", err)
	}

	// The read-only listener serves the history, not the log.
	resp, err := http.Get("http://" + f.agents[fi].metrics + "/v1/apps/hello/history")
	if err != nil {
		t.Fatal(err)
	}
	var remote []daemon.DeploymentSummary
	err = json.NewDecoder(resp.Body).Decode(&remote)
	resp.Body.Close()
	if err != nil || len(remote) != len(hist) || remote[0].ID != hist[0].ID || strings.Contains(remote[0].Error+remote[1].Error, "service check failed") {
		t.Errorf("history on %s's metrics listener: %+v, %v; want the socket's, without output", failed, remote, err)
	}

	// resume on a halted, unpaused app says what restarts it.
	r = drover(t, nil, "resume", fleetApp, "--socket", f.agents[other].socket)
	if r.code != 0 || !strings.Contains(r.stdout, "hello was not paused") || !strings.Contains(r.stdout, "HALTED ("+failed+" failed at ValidateService): resume does not restart it") {
		t.Errorf("drover resume of a halted app: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	checkGolden(t, "status-halted", normalizeStatus(st, failed))
}

// TestFleetStatusWhilePausedMidRollout: a host hangs in AfterInstall and
// the operator pauses the rollout. Every host's status shows the running
// host's event with its deployment and age, PAUSED, and why the others
// wait; resume says it resumed. The status, normalized, is a golden input.
func TestFleetStatusWhilePausedMidRollout(t *testing.T) {
	f := newFleet(t, 3, "one-at-a-time")
	f.waitFor(0, 90*time.Second, "v1 deployed", allOn(3, "v1"))
	f.push("v2", "one-at-a-time", bundleOpts{hangOnce: "AfterInstall"})
	var runner string
	running := func(st *daemon.Status) bool {
		a := helloApp(st)
		if a == nil || a.Desired != "v2" {
			return false
		}
		for _, h := range a.Hosts {
			if h.Phase == "running" && h.Event == "AfterInstall" {
				runner = h.Host
				return true
			}
		}
		return false
	}
	f.waitFor(0, 90*time.Second, "a host running v2's AfterInstall", running)
	r := drover(t, nil, "pause", fleetApp, "--socket", f.agents[0].socket)
	if r.code != 0 || !strings.Contains(r.stdout, "hello paused fleet-wide") {
		t.Fatalf("drover pause: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	other := 2
	if f.agents[other].name == runner {
		other = 1
	}
	st := f.waitFor(other, 30*time.Second, "the pause seen by "+f.agents[other].name, func(st *daemon.Status) bool {
		a := helloApp(st)
		if a == nil || !a.Paused || !running(st) {
			return false
		}
		for _, h := range a.Hosts {
			if h.Target != "v2" {
				return false // its row still tells of v1
			}
		}
		return true
	})
	a := helloApp(st)
	if a.PausedBy != "drover pause" || !slices.ContainsFunc(a.Why, func(w string) bool { return strings.HasPrefix(w, "paused fleet-wide by `drover pause`") }) {
		t.Errorf("paused status: by %q, why %q", a.PausedBy, a.Why)
	}
	for _, h := range a.Hosts {
		if h.Host != runner {
			continue
		}
		if h.Deployment == "" || h.Deployment != a.Deployment || h.Since.IsZero() || h.Since.After(st.Time) {
			t.Errorf("the running host's row: deployment %q (rollout %q), since %v (status at %v)", h.Deployment, a.Deployment, h.Since, st.Time)
		}
	}
	r = drover(t, nil, "status", "--socket", f.agents[other].socket)
	if !strings.Contains(r.stdout, "PAUSED") || !regexp.MustCompile(`(?m)^  `+runner+`\s+v1\s+v2\s+running\s+AfterInstall\s+\d+s\s`).MatchString(r.stdout) {
		t.Errorf("drover status while paused:\n%s", r.stdout)
	}
	t.Logf("$ drover status   # on %s\n%s", f.agents[other].name, r.stdout)
	checkGolden(t, "status-paused", normalizeStatus(st, runner))

	// --watch redraws: on a pipe, frames separated by "---".
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, droverBin, "status", "--watch=200ms", "--socket", f.agents[other].socket)
	wout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	frames, sc := 0, bufio.NewScanner(wout)
	for frames < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "host ") {
			frames++
		}
	}
	watch.Process.Kill()
	watch.Wait()
	if frames < 3 {
		t.Errorf("drover status --watch: %d frames before it ended, want it to go on redrawing", frames)
	}

	r = drover(t, nil, "resume", fleetApp, "--socket", f.agents[other].socket)
	if r.code != 0 || r.stdout != "hello resumed fleet-wide\n" {
		t.Errorf("drover resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func helloApp(st *daemon.Status) *daemon.AppStatus {
	for i := range st.Apps {
		if st.Apps[i].Name == fleetApp {
			return &st.Apps[i]
		}
	}
	return nil
}

// normalizeStatus makes a real agent's status repeatable: the host named
// first becomes h1, the host whose status it is h2, the others h3... in
// order; times count back from a
// fixed instant by whole seconds, IDs and addresses are replaced.
func normalizeStatus(st *daemon.Status, first string) *daemon.Status {
	b, _ := json.Marshal(st)
	var n daemon.Status
	json.Unmarshal(b, &n)
	names := map[string]string{}
	var others []string
	for _, m := range n.Members {
		if m.Name != first && m.Name != n.Host {
			others = append(others, m.Name)
		}
	}
	slices.Sort(others)
	names[first], names[n.Host] = "h1", "h2"
	for i, o := range others {
		names[o] = fmt.Sprintf("h%d", i+3)
	}
	ids := map[string]string{}
	id := func(s string) string {
		if s == "" {
			return ""
		}
		if _, ok := ids[s]; !ok {
			ids[s] = fmt.Sprintf("d-%012d", len(ids)+1)
		}
		return ids[s]
	}
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	n.Host, n.Version, n.ConfigPath = names[n.Host], "1.0.0", "/etc/drover/drover.yaml"
	for i := range n.Members {
		n.Members[i].Name = names[n.Members[i].Name]
		n.Members[i].Addr = fmt.Sprintf("10.0.0.%s:7946", strings.TrimPrefix(n.Members[i].Name, "h"))
	}
	slices.SortFunc(n.Members, func(a, b daemon.Member) int { return strings.Compare(a.Name, b.Name) })
	for i := range n.Apps {
		a := &n.Apps[i]
		a.Source = "git https://git.example/acme/deploy.git branch release path app"
		a.DesiredID = strings.Repeat("5e", 20)
		a.Deployment = id(a.Deployment)
		a.LastPoll = base.Add(-time.Second)
		a.Polls = nil
		if a.Failure != nil {
			a.Failure.Host = names[a.Failure.Host]
			a.Failure.Deployment = id(a.Failure.Deployment)
		}
		var pairs []string
		for real, fake := range names {
			pairs = append(pairs, real+" failed", fake+" failed")
		}
		rename := strings.NewReplacer(pairs...) // all at once: h1→h2 and h2→h1 do not chain
		for j, w := range a.Why {
			a.Why[j] = rename.Replace(w)
		}
		for j := range a.Hosts {
			h := &a.Hosts[j]
			// The AGE of a real run varies by a second or two: every
			// row's is 5s in the golden file.
			h.Host, h.Deployment, h.Since = names[h.Host], id(h.Deployment), base.Add(-5*time.Second)
			if h.Claim != 0 {
				h.Claim = 1<<32 | 1
			}
		}
	}
	n.Time = base
	return &n
}

// checkGolden compares st, rendered plain and wide, with
// testdata/NAME.golden and keeps st as testdata/NAME.json, the input of
// TestStatusGolden (-update rewrites both).
func checkGolden(t *testing.T, name string, st *daemon.Status) {
	t.Helper()
	got := renderGolden(st)
	jpath, gpath := filepath.Join("testdata", name+".json"), filepath.Join("testdata", name+".golden")
	if *update {
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := os.WriteFile(jpath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(gpath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(gpath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("status of a real agent, normalized, differs from %s (go test ./cmd/drover -run %s -update rewrites it):\n%s\nwant:\n%s", gpath, t.Name(), got, want)
	}
}

func renderGolden(st *daemon.Status) string {
	var b strings.Builder
	b.WriteString("$ drover status\n")
	printStatus(&b, st)
	b.WriteString("\n$ drover status --wide\n")
	printStatusOpts(&b, st, statusOpts{wide: true})
	return b.String()
}
