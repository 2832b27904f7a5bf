package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var (
		asJSON bool
		o      statusOpts
		watch  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the fleet as the local agent sees it: per app, per host",
		Long: `Show the fleet as the local agent sees it: per application its source,
desired revision, strategy and flags (PAUSED, HALTED), why a rollout does
not go on, the failure that halted it, and per host:

  HOST        the host
  REVISION    revision installed now (last successful)
  DESIRED     revision the host is deploying or last attempted
  PHASE       idle, waiting, running, succeeded, failed, rolling-back,
              rolled-back, rollback-failed; "(unreachable)" when gossip
              cannot reach it
  EVENT       lifecycle event while running
  AGE         since this agent saw the host's phase or event change
  RESULT      the last result (a failure: the error)

--wide adds DEPLOYMENT (the DEPLOYMENT_ID of the host's hooks), VOTER
(a member of the group's roster, at its epoch), CLAIM (the slot claim
while running), full revision IDs and full results. --watch redraws.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sock := g.socketPath()
			c := daemon.NewClient(sock)
			out := cmd.OutOrStdout()
			if watch <= 0 {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				printStatusOpts(out, st, o)
				return nil
			}
			if asJSON {
				return fmt.Errorf("--watch and --json do not go together: poll /v1/status (or drover status --json) instead")
			}
			return watchStatus(cmd.Context(), c, out, o, watch)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON, for scripts")
	cmd.Flags().BoolVar(&o.wide, "wide", false, "more columns (deployment, voter, claim), full revision IDs and results")
	cmd.Flags().DurationVarP(&watch, "watch", "w", 0, "redraw every `INTERVAL` (e.g. 2s) until interrupted")
	cmd.Flags().Lookup("watch").NoOptDefVal = "2s"
	return cmd
}

// statusOpts are the display options of `drover status`.
type statusOpts struct {
	wide bool
}

// watchStatus redraws the status every interval until ctx ends. On a
// terminal it clears the screen; otherwise it separates the tables.
func watchStatus(ctx context.Context, c *daemon.Client, out io.Writer, o statusOpts, interval time.Duration) error {
	tty := false
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		var b strings.Builder
		st, err := c.Status(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			fmt.Fprintf(&b, "%s  %v\n", time.Now().Format(time.TimeOnly), err)
		default:
			printStatusOpts(&b, st, o)
		}
		switch {
		case tty:
			io.WriteString(out, "\x1b[H\x1b[2J")
		case !first:
			io.WriteString(out, "\n---\n")
		}
		io.WriteString(out, b.String())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// printStatus renders the fleet table of `drover status`.
func printStatus(w io.Writer, st *daemon.Status) { printStatusOpts(w, st, statusOpts{}) }

// gateLine is one health gate in status: "gate error-rate (bake, step 0):
// passed, value 0.002 after 3 samples, evaluated by web-1", then the reason
// of a failed or inconclusive verdict.
func gateLine(g daemon.GateStatus) string {
	l := fmt.Sprintf("gate %s (%s, step %d): %s", g.Name, g.When, g.Step, g.Verdict)
	if g.Samples > 0 {
		v := "no data"
		if g.Value != nil {
			v = strconv.FormatFloat(*g.Value, 'g', 4, 64)
		}
		l += fmt.Sprintf(", value %s after %d sample(s)", v, g.Samples)
	}
	if g.Evaluator != "" {
		l += ", evaluated by " + g.Evaluator
	}
	if g.Reason != "" && g.Verdict != "passed" {
		l += ": " + g.Reason
	}
	return l
}

func printStatusOpts(w io.Writer, st *daemon.Status, o statusOpts) {
	rev := shortRev
	res := func(s string) string { return oneLine(strings.Replace(s, "; last output:\n", "\n", 1), 48) }
	if o.wide {
		rev = func(s string) string { return s }
		res = func(s string) string {
			s, _, _ = strings.Cut(s, "\n")
			return strings.TrimSuffix(s, "; last output:")
		}
	}
	fmt.Fprintf(w, "host %s, drover %s, %d/%d members alive\n", st.Host, st.Version, aliveMembers(st), len(st.Members))
	if st.ConfigError != "" {
		fmt.Fprintf(w, "CONFIG RELOAD REJECTED (the previous configuration is in force):\n  %s\n", strings.ReplaceAll(st.ConfigError, "\n", "\n  "))
	}
	for _, a := range st.Apps {
		fmt.Fprintf(w, "\n%s (group %s) from %s\n", a.Name, a.Group, a.Source)
		desired := a.Desired
		if desired == "" {
			desired = "-"
		}
		desired = rev(desired)
		var flags []string
		if a.Strategy != "" {
			flags = append(flags, a.Strategy)
		}
		if a.Paused {
			flags = append(flags, "PAUSED")
		}
		if a.Halted {
			flags = append(flags, "HALTED")
		}
		if !a.Active {
			flags = append(flags, "this host is not in the group")
		}
		line := "  desired " + desired
		if a.DesiredID != "" && a.DesiredID != a.Desired {
			line += " (" + rev(a.DesiredID) + ")"
		}
		if a.Deployment != "" {
			line += ", deployment " + a.Deployment
		}
		fmt.Fprintf(w, "%s  %s\n", line, strings.Join(flags, ", "))
		if a.SourceError != "" {
			what := "source error"
			if a.ManifestInvalid {
				what = "ignored (the previous desired revision stands)"
			}
			fmt.Fprintf(w, "  %s: %s\n", what, strings.ReplaceAll(a.SourceError, "\n", "\n    "))
		}
		if a.StartError != "" {
			fmt.Fprintf(w, "  NOT RUNNING on this host (the next reload retries it): %s\n", strings.ReplaceAll(a.StartError, "\n", "\n    "))
		}
		why := a.Why
		if len(why) == 0 && a.Active && a.Roster.Epoch == 0 && a.Roster.Why != "" {
			why = []string{a.Roster.Why} // no host of the group can take a slot
		}
		for _, y := range why {
			fmt.Fprintf(w, "  %s\n", y)
		}
		for _, g := range a.Gates {
			fmt.Fprintf(w, "  %s\n", gateLine(g))
		}
		if f := a.Failure; f != nil {
			where := ""
			if f.Event != "" {
				where = " at " + f.Event
			}
			fmt.Fprintf(w, "  failed: %s on %s%s", f.Host, rev(f.Revision), where)
			if f.Deployment != "" {
				fmt.Fprintf(w, " (deployment %s)", f.Deployment)
			}
			fmt.Fprintf(w, ": %s\n", f.Error)
			for _, l := range f.Output {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		if o.wide {
			fmt.Fprintln(tw, "  HOST\tREVISION\tDESIRED\tPHASE\tEVENT\tAGE\tDEPLOYMENT\tVOTER\tCLAIM\tRESULT")
		} else {
			fmt.Fprintln(tw, "  HOST\tREVISION\tDESIRED\tPHASE\tEVENT\tAGE\tRESULT")
		}
		hosts := append([]daemon.HostStatus(nil), a.Hosts...)
		sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
		for _, h := range hosts {
			phase := h.Phase
			if !h.Reachable {
				phase += " (unreachable)"
			}
			target := h.Target
			if target == "" {
				target = a.Desired
			}
			cols := []string{h.Host, dash(rev(h.Revision)), dash(rev(target)), dash(phase), dash(h.Event), age(st.Time, h.Since)}
			if o.wide {
				voter := "-"
				if h.Voter {
					voter = fmt.Sprintf("yes (epoch %d)", h.Epoch)
				}
				claim := "-"
				if h.Claim != 0 {
					claim = strconv.FormatUint(h.Claim, 10)
				}
				cols = append(cols, dash(h.Deployment), voter, claim)
			}
			cols = append(cols, dash(res(h.Result)))
			fmt.Fprintf(tw, "  %s\n", strings.Join(cols, "\t"))
		}
		tw.Flush()
	}
}

// shortRev shortens a revision shown by its content ID (a 40-hex commit, a
// 64-hex sha256) to 12 characters, as git does; labels stay.
func shortRev(s string) string {
	if len(s) > 12 && isHex(s) {
		return s[:12]
	}
	return s
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func newPauseCmd(g *globalFlags, paused bool) *cobra.Command {
	use, short := "pause APP", "Stop new hosts from starting APP's rollout, fleet-wide"
	if !paused {
		use, short = "resume APP", "Let APP's rollout go on, fleet-wide"
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			sock := g.socketPath()
			c := daemon.NewClient(sock)
			var before *daemon.AppStatus // what the agent said before, to explain the effect
			if st, err := c.Status(cmd.Context()); err == nil {
				for i := range st.Apps {
					if st.Apps[i].Name == args[0] {
						before = &st.Apps[i]
					}
				}
			}
			if err := c.SetPaused(cmd.Context(), args[0], paused); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if paused {
				fmt.Fprintf(out, "%s paused fleet-wide: no new host starts; running lifecycles finish\n", args[0])
				return nil
			}
			explainResume(out, args[0], before)
			return nil
		},
	}
}

// explainResume says what `drover resume` did, given the app's status
// before it (nil: unknown).
func explainResume(w io.Writer, app string, a *daemon.AppStatus) {
	switch {
	case a == nil || a.PausedBy == "drover pause":
		fmt.Fprintf(w, "%s resumed fleet-wide\n", app)
	case a.PausedBy == "manifest":
		fmt.Fprintf(w, "%s: the fleet-wide flag is cleared, but the manifest pauses the rollout (deployment.paused: true): publish the manifest without it to go on\n", app)
	default:
		fmt.Fprintf(w, "%s was not paused: nothing to resume\n", app)
	}
	if a != nil && a.Halted {
		what := "the rollout of " + dash(a.Desired) + " is HALTED"
		if f := a.Failure; f != nil {
			what += " (" + f.Host + " failed"
			if f.Event != "" {
				what += " at " + f.Event
			}
			what += ")"
		}
		fmt.Fprintf(w, "%s: resume does not restart it; a new revision or a changed manifest does (push a fix, or revert the release branch)\n", what)
	}
}

// aliveMembers counts the gossip members the agent sees alive.
func aliveMembers(st *daemon.Status) int {
	n := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}
