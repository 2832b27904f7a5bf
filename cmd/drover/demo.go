package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
	examples "github.com/drover-dev/drover/deploy-examples"
	"github.com/drover-dev/drover/hooks"
)

type demoFlags struct {
	hosts    int
	strategy string
	keep     bool
	timeout  time.Duration
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Roll out a new revision across a fleet of agents on this machine",
		Long: `Run N drover agents in this process on 127.0.0.1, each with its own state
directory and root, watching a temporary git repository made from the embedded
hello-web example. All hosts install the first revision; then a second revision
is committed to the release branch and rolled out with the chosen strategy,
with a live table, and a summary at the end. Everything is removed afterwards.
hello-web needs python3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, f, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&f.hosts, "hosts", 5, "number of agents")
	cmd.Flags().StringVar(&f.strategy, "strategy", "one-at-a-time", "all-at-once, one-at-a-time, rolling or canary")
	cmd.RegisterFlagCompletionFunc("strategy", completeStrategies)
	cmd.Flags().BoolVar(&f.keep, "keep", false, "keep the temporary directory (logs, state) for a look afterwards")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

// demoHost is one agent of the demo fleet.
type demoHost struct {
	name, dir, root, cfg string
	webPort              int
	agent                *daemon.Agent
}

func runDemo(ctx context.Context, g *globalFlags, f *demoFlags, out io.Writer) (err error) {
	if f.hosts < 1 || f.hosts > 50 {
		return fmt.Errorf("--hosts %d: want 1 to 50", f.hosts)
	}
	deployment, err := demoDeployment(f.strategy, f.hosts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "drover-demo-")
	if err != nil {
		return err
	}
	hosts := []*demoHost{}
	defer func() {
		cerr := demoCleanup(hosts)
		if f.keep {
			fmt.Fprintf(out, "kept %s\n", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && cerr == nil {
			cerr = rerr
		}
		if err == nil {
			err = cerr
		}
	}()
	logf, err := os.Create(filepath.Join(dir, "agents.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The release branch, as a developer would have it: the app and its manifest.
	repo := filepath.Join(dir, "repo")
	fmt.Fprintf(out, "drover demo: %d hosts on 127.0.0.1, strategy %s, git repository %s\n", f.hosts, f.strategy, repo)
	if err := demoCommit(repo, "hello-web-1", deployment, "Hello from revision 1"); err != nil {
		return err
	}
	secret, err := demoKey()
	if err != nil {
		return err
	}
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	var seed string
	for i := 0; i < f.hosts; i++ {
		h := &demoHost{name: fmt.Sprintf("host-%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("host-%d", i+1))}
		h.root = filepath.Join(h.dir, "root")
		if h.webPort, err = freeTCPPort(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(h.root, "etc", "hello-web"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(h.root, "etc", "hello-web", "port"), []byte(strconv.Itoa(h.webPort)+"\n"), 0o644); err != nil {
			return err
		}
		h.cfg = filepath.Join(h.dir, "drover.yaml")
		join := ""
		if seed != "" {
			join = seed
		}
		cfg := fmt.Sprintf(`node:
  name: %s
  groups: [demo]
  state_dir: %s
  root: %s
cluster:
  bind: 127.0.0.1:0
  join: [%s]
  encrypt_key_file: %s
  profile: local
api:
  socket: %s
  metrics_listen: ""
systemd: off
applications:
  - name: hello-web
    group: demo
    poll_interval: 1s
    source:
      git: {url: %q, branch: release, path: hello-web}
`, h.name, filepath.Join(h.dir, "state"), h.root, join, key, filepath.Join(h.dir, "drover.sock"), "file://"+repo)
		if err := os.WriteFile(h.cfg, []byte(cfg), 0o644); err != nil {
			return err
		}
		h.agent, err = daemon.New(ctx, daemon.Options{
			ConfigPath: h.cfg, Version: version, Logger: log.With("host", h.name),
			Notifier: nopNotifier{}, ShutdownGrace: 10 * time.Second,
			HookEnv: []string{"HELLO_WEB_SYSTEMD=off"},
		})
		if err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		hosts = append(hosts, h)
		if err := h.agent.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		if seed == "" {
			seed = h.agent.ClusterAddr()
		}
	}

	fmt.Fprintf(out, "\n[1/2] every host installs hello-web-1 (a fresh host deploys at once, without waiting for a slot)\n")
	t0 := time.Now()
	if err := demoWatch(ctx, out, hosts, "hello-web-1"); err != nil {
		return err
	}
	fmt.Fprintf(out, "installed on %d hosts in %s\n", len(hosts), time.Since(t0).Round(10*time.Millisecond))

	fmt.Fprintf(out, "\n[2/2] a developer merges hello-web-2 to the release branch; rolling out %s\n", f.strategy)
	if err := demoCommit(repo, "hello-web-2", deployment, "Hello from revision 2"); err != nil {
		return err
	}
	t1 := time.Now()
	if err := demoWatch(ctx, out, hosts, "hello-web-2"); err != nil {
		return err
	}
	total := time.Since(t1)
	demoSummary(out, hosts, "hello-web-2", total)
	return nil
}

// demoDeployment is the manifest's deployment section for a strategy.
func demoDeployment(strategy string, n int) (string, error) {
	switch strategy {
	case "all-at-once", "one-at-a-time":
		return "  strategy: " + strategy + "\n", nil
	case "rolling":
		return "  strategy: rolling\n  batch: 40%\n", nil
	case "canary":
		return "  strategy: canary\n  canary: 1\n  bake: 2s\n  batch: 50%\n", nil
	}
	return "", fmt.Errorf("--strategy %q: want all-at-once, one-at-a-time, rolling or canary", strategy)
}

// demoCommit writes the embedded hello-web bundle and a manifest for rev
// into the repository's worktree and commits it on the release branch.
func demoCommit(repoDir, rev, deployment, greeting string) error {
	app := filepath.Join(repoDir, "hello-web")
	err := fs.WalkDir(examples.HelloWeb, "hello-web", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(repoDir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := examples.HelloWeb.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".py") {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
	if err != nil {
		return fmt.Errorf("write hello-web: %w", err)
	}
	index := fmt.Sprintf("<!doctype html>\n<title>hello-web</title>\n<h1>%s</h1>\n", greeting)
	if err := os.WriteFile(filepath.Join(app, "app", "public", "index.html"), []byte(index), 0o644); err != nil {
		return err
	}
	manifest := fmt.Sprintf("version: 1\napplication: hello-web\nrevision: %q\nbundle:\n  path: .\ndeployment:\n%s  rollback: on-failure\n", rev, deployment)
	if err := os.WriteFile(filepath.Join(app, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	r, err := git.PlainOpen(repoDir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = git.PlainInitWithOptions(repoDir, &git.PlainInitOptions{
			InitOptions: git.InitOptions{DefaultBranch: "refs/heads/release"},
		})
	}
	if err != nil {
		return fmt.Errorf("git repository: %w", err)
	}
	wt, err := r.Worktree()
	if err != nil {
		return err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return fmt.Errorf("git add: %w", err)
	}
	sig := &object.Signature{Name: "Demo Developer", Email: "dev@example.invalid", When: time.Now()}
	if _, err := wt.Commit("release "+rev, &git.CommitOptions{Author: sig}); err != nil {
		return fmt.Errorf("git commit: %w", err)
	}
	return nil
}

// demoWatch redraws the fleet table until every host runs rev.
func demoWatch(ctx context.Context, out io.Writer, hosts []*demoHost, rev string) error {
	tty := isTerminal(out)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastTable, lines := "", 0
	for {
		st := hosts[0].agent.Status()
		table, done, failed := demoTable(st, rev, len(hosts))
		if table != lastTable {
			if tty && lines > 0 {
				fmt.Fprintf(out, "\033[%dA\033[J", lines) // redraw in place
			}
			fmt.Fprint(out, table)
			lastTable, lines = table, strings.Count(table, "\n")
		}
		if done {
			return nil
		}
		if failed != "" {
			return fmt.Errorf("rollout of %s halted: %s", rev, failed)
		}
		select {
		case <-ctx.Done():
			if b, err := json.Marshal(st.Apps); err == nil {
				slog.Debug("fleet at timeout", "apps", string(b))
				fmt.Fprintf(os.Stderr, "fleet as %s sees it: %s\n", st.Host, b)
			}
			return fmt.Errorf("rollout of %s did not finish: %w", rev, ctx.Err())
		case <-tick.C:
		}
	}
}

// demoTable renders the fleet as the first host sees it.
func demoTable(st daemon.Status, rev string, n int) (table string, done bool, failed string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tREVISION\tPHASE\tEVENT")
	on := 0
	for _, a := range st.Apps {
		hs := append([]daemon.HostStatus(nil), a.Hosts...)
		sort.Slice(hs, func(i, j int) bool { return hs[i].Host < hs[j].Host })
		for _, h := range hs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", h.Host, dash(h.Revision), h.Phase, dash(h.Event))
			if h.Revision == rev && h.Phase != "running" {
				on++
			}
			if h.Phase == "failed" && h.Target == rev && failed == "" {
				failed = h.Host + ": " + oneLine(h.Result, 200)
			}
		}
	}
	tw.Flush()
	return b.String(), on == n, failed
}

// demoSummary prints each host's lifecycle time and the handoff gaps,
// from the deployment records the agents kept.
func demoSummary(out io.Writer, hosts []*demoHost, rev string, total time.Duration) {
	type lc struct {
		host          string
		start, finish time.Time
	}
	var lcs []lc
	for _, h := range hosts {
		st, err := hooks.OpenStore(filepath.Join(h.dir, "state"))
		if err != nil {
			continue
		}
		rs, _ := st.List("demo")
		for _, r := range rs {
			if r.Revision == rev && r.Status == hooks.StatusSucceeded {
				lcs = append(lcs, lc{h.name, r.Started, r.Finished})
			}
		}
	}
	sort.Slice(lcs, func(i, j int) bool { return lcs[i].start.Before(lcs[j].start) })
	fmt.Fprintf(out, "\nrolled out %s to %d hosts in %s\n", rev, len(lcs), total.Round(10*time.Millisecond))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tLIFECYCLE\tSTARTED AFTER PREVIOUS ENDED")
	var sum time.Duration
	overlap := false
	for i, l := range lcs {
		gap := "-"
		if i > 0 {
			g := l.start.Sub(lcs[i-1].finish)
			overlap = overlap || g < 0
			gap = g.Round(time.Millisecond).String()
		}
		d := l.finish.Sub(l.start)
		sum += d
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.host, d.Round(time.Millisecond), gap)
	}
	tw.Flush()
	if len(lcs) > 0 {
		fmt.Fprintf(out, "sum of host lifecycles %s; rollout took %.2f× that\n",
			sum.Round(time.Millisecond), total.Seconds()/sum.Seconds())
	}
	if overlap {
		fmt.Fprintln(out, "(a negative gap: that host started before the previous one ended, as the strategy allows)")
	}
}

// demoCleanup stops the agents, then the hello-web servers the hooks left
// running, so that the demo leaves no process behind.
func demoCleanup(hosts []*demoHost) error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, h := range hosts {
		if h.agent != nil {
			if err := h.agent.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
			}
		}
		b, err := os.ReadFile(filepath.Join(h.root, "var", "run", "hello-web", "server.pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	return errors.Join(errs...)
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// demoKey is a fresh gossip key, as `drover keygen` makes.
func demoKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// nopNotifier: the demo's agents are not systemd services.
type nopNotifier struct{}

func (nopNotifier) Ready(string)                    {}
func (nopNotifier) Reloading()                      {}
func (nopNotifier) Status(string)                   {}
func (nopNotifier) Watchdog()                       {}
func (nopNotifier) Stopping()                       {}
func (nopNotifier) WatchdogInterval() time.Duration { return 0 }
