package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

// globalFlags are the flags every subcommand accepts.
type globalFlags struct {
	config    string
	logLevel  string
	logFormat string
	socket    string
	// root is the command these flags belong to: socketPath warns on its
	// stderr and asks it whether --config was given.
	root *cobra.Command
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Leaderless, CodeDeploy-compatible deployment daemon",
		Long:          "drover watches a Git branch or S3 prefix for a desired revision, agrees with its peers over gossip who may deploy when, and runs CodeDeploy appspec.yml lifecycle hooks locally.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetVersionTemplate(versionText())
	g.root = root
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", "/etc/drover/drover.yaml", "configuration file")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.socket, "socket", "", "agent API socket (default: api.socket of the config, else "+daemon.DefaultSocket+")")
	root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("config", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	})

	root.AddCommand(
		newVersionCmd(),
		newAgentCmd(g),
		newDemoCmd(g),
		newValidateCmd(),
		newConfigCmd(g),
		newDeployLocalCmd(g),
		newPushCmd(g),
		newSimulateCmd(g),
		newManCmd(),
		newKeygenCmd(),
		newStatusCmd(g),
		newMembersCmd(g),
		newPauseCmd(g, true),
		newPauseCmd(g, false),
		newLogsCmd(g),
		newHistoryCmd(g),
	)
	return root
}

// newLogger builds the process logger from the global flags. Logs go to
// stderr so that journald keeps them and stdout stays for command output.
func (g *globalFlags) newLogger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var mk func(io.Writer) slog.Handler
	switch strings.ToLower(g.logFormat) {
	case "text":
		mk = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, opts) }
	case "json":
		mk = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, opts) }
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	// Under systemd, each line carries its priority for the journal.
	if f, ok := w.(*os.File); ok && underJournal(f, os.Getenv("JOURNAL_STREAM")) {
		return slog.New(newJournalHandler(w, mk)), nil
	}
	return slog.New(mk(w)), nil
}
