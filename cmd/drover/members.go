package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/drover-dev/drover/daemon"
)

func newMembersCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the gossip members and the voters of each application's roster",
		Long: "List the gossip members as the local agent sees them (alive, suspect, dead, left), whether each is a voter of " +
			"each application's roster as this host holds it, and the roster epoch each host reports.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sock := g.socketPath()
			m, err := daemon.NewClient(sock).Members(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(m)
			}
			printMembers(cmd.OutOrStdout(), m)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the membership as JSON, for scripts")
	cmd.AddCommand(newMembersRemoveCmd(g))
	return cmd
}

// removeWarning is printed before every removal. What it says is
// reconcile/rollout/PROTOCOL.md §4.2 ("Operator removal").
const removeWarning = `WARNING: this removes %s from the roster (the voters) of %s.
  It is for a host that is gone for good, so that its group need not wait
  for the automatic removal of a dead voter (at least 10 minutes dead).
  * It is a roster change like any other: it takes effect only once a
    majority of the current voters, reachable from this host, has accepted
    it and finished its running lifecycles. It cannot recover a group whose
    majority of voters is lost for good: a removal needs that majority.
  * The window stays safe even if %s is alive behind a partition: it cannot
    gather a majority of the old roster once the new one is in force, and
    when it is back it is re-admitted as a new voter when the group is quiet.
  * Fewer voters tolerate fewer failures: a majority of what is left must
    stay up (two voters: both). A host removed while only cut off loses its
    vote until it is back and re-admitted.
`

func newMembersRemoveCmd(g *globalFlags) *cobra.Command {
	var (
		app  string
		yes  bool
		wait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "remove HOST",
		Short: "Remove a dead voter from the roster of every application (or of --app)",
		Long: "Ask the local agent to propose, for every application whose roster has HOST as a voter (or for --app only), " +
			"a roster without it, as the automatic removal of a dead voter would. Prints a warning and needs --yes, or a " +
			"confirmation on a terminal. Waits up to --wait for the new roster to be in force.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := args[0]
			sock := g.socketPath()
			c := daemon.NewClient(sock)
			m, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			apps, err := removalApps(m, host, app)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			fmt.Fprintf(errw, removeWarning, host, strings.Join(apps, ", "), host)
			fmt.Fprintf(errw, "  %s\n", hostState(m, host))
			for _, ar := range m.Apps {
				if slices.Contains(apps, ar.App) {
					rest := slices.DeleteFunc(slices.Clone(ar.Voters), func(v string) bool { return v == host })
					fmt.Fprintf(errw, "  %s: roster epoch %d, %d voters -> %d (%s), majority %d\n",
						ar.App, ar.Epoch, len(ar.Voters), len(rest), strings.Join(rest, ", "), len(rest)/2+1)
				}
			}
			if !yes {
				ok, err := confirm(cmd.InOrStdin(), errw, readerIsTerminal(cmd.InOrStdin()), fmt.Sprintf("Remove %s? [y/N] ", host))
				if err != nil {
					return err
				}
				if !ok {
					return &exitError{code: 1, msg: "not removed"}
				}
			}
			before, err := c.RemoveMember(cmd.Context(), host, app)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "asked: %s out of the roster of %s\n", host, appNames(before))
			if wait <= 0 {
				return nil
			}
			return waitRemoved(cmd.Context(), c, out, host, before, wait)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only this application's roster")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "wait this long for the new roster to be in force (0: do not wait)")
	return cmd
}

// removalApps checks host against the rosters the agent holds and returns
// the applications it would be removed from; an unknown host is an error
// that lists the voters and the members.
func removalApps(m *daemon.Members, host, app string) ([]string, error) {
	var apps, rosters []string
	found := false
	for _, ar := range m.Apps {
		if app != "" && ar.App != app {
			continue
		}
		found = true
		if ar.Epoch == 0 {
			rosters = append(rosters, ar.App+": no roster yet")
		} else {
			rosters = append(rosters, fmt.Sprintf("%s: epoch %d, voters %s", ar.App, ar.Epoch, strings.Join(ar.Voters, ", ")))
		}
		if slices.Contains(ar.Voters, host) {
			apps = append(apps, ar.App)
		}
	}
	if app != "" && !found {
		var names []string
		for _, ar := range m.Apps {
			names = append(names, ar.App)
		}
		return nil, fmt.Errorf("application %q is not deployed by %s (it deploys: %s)", app, m.Host, dash(strings.Join(names, ", ")))
	}
	if len(apps) == 0 {
		var members []string
		for _, mb := range m.Members {
			members = append(members, mb.Name+" ("+mb.State+")")
		}
		return nil, fmt.Errorf("%s is not a voter of any roster %s holds (%s); members: %s",
			host, m.Host, dash(strings.Join(rosters, "; ")), dash(strings.Join(members, ", ")))
	}
	return apps, nil
}

// hostState says what memberlist on this host says of host.
func hostState(m *daemon.Members, host string) string {
	for _, mb := range m.Members {
		if mb.Name == host {
			if mb.State == "alive" {
				return fmt.Sprintf("%s is ALIVE as %s sees it: a live voter removed is re-admitted when the group is quiet", host, m.Host)
			}
			return fmt.Sprintf("%s is %s as %s sees it", host, mb.State, m.Host)
		}
	}
	return fmt.Sprintf("%s is not a gossip member %s knows", host, m.Host)
}

func appNames(rs []daemon.AppRoster) string {
	var names []string
	for _, r := range rs {
		names = append(names, r.App)
	}
	return strings.Join(names, ", ")
}

// confirm asks q on a terminal; without one it refuses, naming --yes.
func confirm(in io.Reader, out io.Writer, tty bool, q string) (bool, error) {
	if !tty {
		return false, &exitError{code: 1, msg: "refusing to remove a voter without --yes (standard input is not a terminal to confirm on)"}
	}
	fmt.Fprint(out, q)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// readerIsTerminal reports whether r is a terminal (a tty answers TCGETS;
// /dev/null, also a character device, does not).
func readerIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// waitRemoved polls the agent until every roster in before has moved to a
// later epoch without host, or fails after d.
func waitRemoved(ctx context.Context, c *daemon.Client, out io.Writer, host string, before []daemon.AppRoster, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	pending := map[string]uint64{}
	for _, r := range before {
		pending[r.App] = r.Epoch
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last *daemon.Members
	for {
		if m, err := c.Members(ctx); err == nil {
			last = m
			for _, ar := range m.Apps {
				if e, ok := pending[ar.App]; ok && ar.Epoch > e && !slices.Contains(ar.Voters, host) {
					fmt.Fprintf(out, "%s: roster epoch %d in force: %s\n", ar.App, ar.Epoch, strings.Join(ar.Voters, ", "))
					delete(pending, ar.App)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			var left []string
			for app, e := range pending {
				r := app + " (still epoch " + strconv.FormatUint(e, 10)
				if last != nil {
					for _, ar := range last.Apps {
						if ar.App == app {
							r = fmt.Sprintf("%s (epoch %d: %s", app, ar.Epoch, strings.Join(ar.Voters, ", "))
						}
					}
				}
				left = append(left, r+")")
			}
			sort.Strings(left)
			return &exitError{code: 1, msg: fmt.Sprintf("asked, but not in force after %s: %s. The agent keeps at it while it runs; "+
				"a majority of the voters must be reachable from this host (see drover members)", d, strings.Join(left, "; "))}
		case <-tick.C:
		}
	}
}

// printMembers renders the table of `drover members`.
func printMembers(w io.Writer, m *daemon.Members) {
	alive := 0
	state := map[string]daemon.Member{}
	hosts := map[string]bool{}
	for _, mb := range m.Members {
		state[mb.Name] = mb
		hosts[mb.Name] = true
		if mb.State == "alive" {
			alive++
		}
	}
	type cell struct {
		voter bool
		epoch uint64
		row   bool
	}
	cells := make([]map[string]cell, len(m.Apps))
	for i, ar := range m.Apps {
		cells[i] = map[string]cell{}
		for _, v := range ar.Voters {
			hosts[v] = true
			cells[i][v] = cell{voter: true}
		}
		for _, h := range ar.Hosts {
			hosts[h.Host] = true
			c := cells[i][h.Host]
			c.epoch, c.row = h.Epoch, true
			cells[i][h.Host] = c
		}
	}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "members as %s sees them: %d, %d alive\n", m.Host, len(m.Members), alive)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	head := "HOST\tSTATE\tADDR"
	for _, ar := range m.Apps {
		if len(m.Apps) == 1 {
			head += "\tVOTER\tEPOCH"
		} else {
			head += "\t" + ar.App + " VOTER\t" + ar.App + " EPOCH"
		}
	}
	fmt.Fprintln(tw, head)
	for _, h := range names {
		mb, ok := state[h]
		st, addr := mb.State, mb.Addr
		if !ok {
			st = "unknown"
		}
		line := h + "\t" + dash(st) + "\t" + dash(addr)
		for i := range m.Apps {
			c := cells[i][h]
			voter, epoch := "no", "-"
			if c.voter {
				voter = "yes"
			}
			if c.row {
				epoch = strconv.FormatUint(c.epoch, 10)
			}
			line += "\t" + voter + "\t" + epoch
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	for _, ar := range m.Apps {
		if ar.Epoch == 0 {
			fmt.Fprintf(w, "%s (group %s): %s holds no roster yet\n", ar.App, ar.Group, m.Host)
			continue
		}
		fmt.Fprintf(w, "%s (group %s): %s holds roster epoch %d, %d voters, majority %d: %s\n",
			ar.App, ar.Group, m.Host, ar.Epoch, len(ar.Voters), len(ar.Voters)/2+1, strings.Join(ar.Voters, ", "))
	}
}
