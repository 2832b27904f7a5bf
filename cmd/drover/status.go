package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

func newStatusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the fleet as the local agent sees it: per app, per host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sock, err := g.socketPath()
			if err != nil {
				return err
			}
			st, err := daemon.NewClient(sock).Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON, for scripts")
	return cmd
}

// printStatus renders the fleet table of `drover status`.
func printStatus(w io.Writer, st *daemon.Status) {
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
		fmt.Fprintf(w, "  desired %s  %s\n", desired, strings.Join(flags, ", "))
		if a.SourceError != "" {
			fmt.Fprintf(w, "  source error: %s\n", a.SourceError)
		}
		if a.Active && a.Roster.Epoch == 0 && a.Roster.Why != "" {
			fmt.Fprintf(w, "  %s\n", a.Roster.Why) // no host of the group can take a slot
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tREVISION\tDESIRED\tPHASE\tEVENT\tRESULT\tAGE")
		hosts := append([]daemon.HostStatus(nil), a.Hosts...)
		sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
		for _, h := range hosts {
			phase := h.Phase
			if !h.Reachable {
				phase += " (unreachable)"
			}
			target := h.Target
			if target == "" {
				target = desired
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, dash(h.Revision), dash(target), dash(phase),
				dash(h.Event), dash(oneLine(h.Result, 40)), age(st.Time, h.Updated))
		}
		tw.Flush()
	}
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
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sock, err := g.socketPath()
			if err != nil {
				return err
			}
			if err := daemon.NewClient(sock).SetPaused(cmd.Context(), args[0], paused); err != nil {
				return err
			}
			if paused {
				fmt.Fprintf(cmd.OutOrStdout(), "%s paused fleet-wide: no new host starts; running lifecycles finish\n", args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s resumed fleet-wide\n", args[0])
			}
			return nil
		},
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
