package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

func newLogsCmd(g *globalFlags) *cobra.Command {
	var (
		follow bool
		host   string
	)
	cmd := &cobra.Command{
		Use:   "logs APP [DEPLOYMENT]",
		Short: "Print the hook log of one of APP's deployments on this host",
		Long: `Print the hook log of one of APP's deployments on this host: every
lifecycle event, every script and what it printed, timestamped, as
CodeDeploy's agent writes it.

DEPLOYMENT is a deployment ID (d-…), a unique prefix of one, a sequence
number from 'drover history' (7 or #7), or latest (the default).
-f follows a running deployment until it ends.

Logs stay on the host that ran the scripts (they may hold what scripts
print) and are read over the root-only API socket: for another host's log,
run drover logs there (e.g. ssh web-2 sudo drover logs APP). 'drover
status' shows every host's last failure and the end of its output.`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeApps(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			sock := g.socketPath()
			c := daemon.NewClient(sock)
			if host != "" {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				if host != st.Host {
					return fmt.Errorf("--host %s: logs are kept on the host that ran the scripts and read over its root-only socket; this is %s: run `drover logs %s` on %s", host, st.Host, args[0], host)
				}
			}
			which := "latest"
			if len(args) == 2 {
				which = args[1]
			}
			out := cmd.OutOrStdout()
			if follow {
				rec, err := c.AppDeployment(cmd.Context(), args[0], which)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deployment %s (#%d) of %s, revision %s: %s\n", rec.ID, rec.Seq, rec.Application, rec.Revision, rec.Status)
				which = rec.ID
			}
			_, err := c.AppDeploymentLog(cmd.Context(), args[0], which, follow, out)
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow a running deployment's log until it ends")
	cmd.Flags().StringVar(&host, "host", "", "the host whose log to print: only this host's are readable here")
	return cmd
}

func newHistoryCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List APP's deployments on this host, newest first",
		Long: `List APP's deployments on this host, newest first: sequence number,
deployment ID, revision, status, start, duration and, for a failure, the
event and error. 'drover logs APP DEPLOYMENT' prints one's hook log.
The same list is served read-only as GET /v1/apps/APP/history on the
metrics listener, so another host's history can be fetched from it.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeApps(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			sock := g.socketPath()
			hs, err := daemon.NewClient(sock).History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if limit > 0 && len(hs) > limit {
				hs = hs[:limit]
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(hs)
			}
			printHistory(cmd.OutOrStdout(), args[0], hs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON, for scripts")
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "show at most `N` deployments (0: all)")
	return cmd
}

// printHistory renders `drover history`.
func printHistory(w io.Writer, app string, hs []daemon.DeploymentSummary) {
	if len(hs) == 0 {
		fmt.Fprintf(w, "no deployment of %s on this host yet\n", app)
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEPLOYMENT\tREVISION\tSTATUS\tSTARTED\tDURATION\tFAILED AT")
	for _, h := range hs {
		status := string(h.Status)
		if h.Rollback {
			status += " (rollback)"
		}
		failed := "-"
		if h.FailedEvent != "" || h.Error != "" {
			msg := strings.TrimPrefix(h.Error, h.FailedEvent+" failed: ")
			failed = strings.TrimPrefix(h.FailedEvent+": "+oneLine(msg, 72), ": ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Seq, h.ID, shortRev(h.Revision), status,
			h.Started.Local().Format("2006-01-02 15:04:05"), h.Duration.Round(100*time.Millisecond), failed)
	}
	tw.Flush()
}

// completeApps offers the application names of the config file.
func completeApps(g *globalFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		data, err := daemon.ReadConfigFile(g.config)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return daemon.RawAppNames(data), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeStrategies offers the rollout strategies.
func completeStrategies(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"all-at-once", "one-at-a-time", "rolling", "canary"}, cobra.ShellCompDirectiveNoFileComp
}
