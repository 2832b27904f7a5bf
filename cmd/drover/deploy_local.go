package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/hooks"
	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/hooks/proc"
)

type deployLocalFlags struct {
	bundle       string
	app          string
	group        string
	revision     string
	stateDir     string
	root         string
	host         string
	systemd      string
	ignoreStop   bool
	killGrace    time.Duration
	drainTimeout time.Duration
}

func newDeployLocalCmd(g *globalFlags) *cobra.Command {
	f := &deployLocalFlags{}
	cmd := &cobra.Command{
		Use:   "deploy-local --bundle PATH",
		Short: "Run one full in-place lifecycle of a bundle on this host",
		Long: `Run one full in-place CodeDeploy lifecycle of a bundle on this host, like
codedeploy-local. PATH is a directory or a .tar, .tar.gz, .tgz or .zip archive with
appspec.yml at its root. Successive runs with one --state-dir are successive
deployments of the group: the second runs the first revision's ApplicationStop and
removes the files only the first installed.`,
		Example: `  drover deploy-local --bundle ./hello-web --state-dir /tmp/drover --root /tmp/drover/root`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDeployLocal(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bundle, "bundle", "", "bundle directory or archive (.tar, .tar.gz, .tgz, .zip)")
	fl.StringVar(&f.app, "app", "local", "application name")
	fl.StringVar(&f.group, "group", "local", "deployment group name")
	fl.StringVar(&f.revision, "revision", "", "revision label (default: the bundle's file name)")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "state directory: deployment records, revision archives, hook logs")
	fl.StringVar(&f.root, "root", "/", "prefix for every appspec destination")
	fl.StringVar(&f.host, "host", "", "host name given to scripts as DROVER_HOST (default: hostname)")
	fl.StringVar(&f.systemd, "systemd", "auto", "how hooks run: auto, system, user or off (process groups)")
	fl.BoolVar(&f.ignoreStop, "ignore-application-stop-failures", false, "go on when ApplicationStop, BeforeBlockTraffic or AfterBlockTraffic fail")
	fl.DurationVar(&f.killGrace, "kill-grace", 10*time.Second, "time between TERM and KILL when a hook times out")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 2*time.Second, "how long to read output a script's leftover processes still write")
	_ = cmd.MarkFlagRequired("bundle")
	return cmd
}

// defaultStateDir is /var/lib/drover for root and a per-user directory for
// everyone else, so that trying deploy-local needs no privileges.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/drover"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "drover")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "drover")
	}
	return filepath.Join(os.TempDir(), "drover-state")
}

func runDeployLocal(ctx context.Context, g *globalFlags, f *deployLocalFlags, stdout, stderr io.Writer) error {
	log, err := g.newLogger(stderr)
	if err != nil {
		return err
	}
	src, err := filepath.Abs(f.bundle)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	root, err := filepath.Abs(f.root)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	// A root prefix for trying things out may not exist yet.
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	host := f.host
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w", err)
		}
	}
	rev := f.revision
	if rev == "" {
		rev = revisionFromPath(src)
	}
	store, err := hooks.OpenStore(f.stateDir)
	if err != nil {
		return err
	}
	if recovered, err := store.Recover(time.Now()); err != nil {
		return err
	} else {
		for _, r := range recovered {
			fmt.Fprintf(stdout, "recorded interrupted deployment %s (%s/%s) as failed\n", r.ID, r.Application, r.Group)
		}
	}
	runner, err := proc.New(ctx, f.systemd, log)
	if err != nil {
		return fmt.Errorf("--systemd %s: %w", f.systemd, err)
	}
	defer runner.Close()
	eng, err := hooks.NewEngine(hooks.Config{
		Store: store, Runner: runner, Logger: log, Root: root, Host: host,
		KillGrace: f.killGrace, DrainTimeout: f.drainTimeout,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deploying %s to %s/%s (bundle %s, root %s)\n", rev, f.app, f.group, src, root)
	rec, err := eng.Deploy(ctx, hooks.Request{
		Application:                   f.app,
		Group:                         f.group,
		Revision:                      rev,
		IgnoreApplicationStopFailures: f.ignoreStop,
		Fetch: func(ctx context.Context, dst string) error {
			return bundle.Unpack(ctx, src, dst, bundle.DefaultLimits)
		},
		Progress: func(ev hooks.EventRecord) { printEvent(stdout, ev) },
	})
	if rec == nil {
		return err
	}
	logPath := store.LogPath(rec.Group, rec.ID)
	if err != nil {
		var ee *hooks.EventError
		event := "deployment"
		if errors.As(err, &ee) {
			event = string(ee.Event)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("deployment %s failed at %s: %s\nhook log: %s",
			rec.ID, event, strings.TrimPrefix(err.Error(), event+" failed: "), logPath)}
	}
	fmt.Fprintf(stdout, "deployment %s succeeded in %s\nhook log: %s\n", rec.ID, rec.Duration(rec.Finished).Round(time.Millisecond), logPath)
	return nil
}

// printEvent prints one line per finished (or skipped) event.
func printEvent(w io.Writer, ev hooks.EventRecord) {
	switch ev.Status {
	case hooks.EventRunning:
		return
	case hooks.EventSkipped:
		fmt.Fprintf(w, "  %-20s skipped  (%s)\n", ev.Name, ev.Error)
	default:
		d := ev.Finished.Sub(ev.Started).Round(time.Millisecond)
		fmt.Fprintf(w, "  %-20s %-8s %8s\n", ev.Name, ev.Status, d)
	}
}

// revisionFromPath labels a revision after its bundle's file name.
func revisionFromPath(p string) string {
	base := filepath.Base(p)
	for _, ext := range []string{".tar.gz", ".tgz", ".tar", ".zip"} {
		if strings.HasSuffix(base, ext) {
			return strings.TrimSuffix(base, ext)
		}
	}
	return base
}
