package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

func newConfigCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the configuration file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file, reporting every problem at once",
		Long: `Read FILE (default: the --config file) as the agent would, and report every
problem in it at once, one FILE:LINE: field: message per problem, with "did you
mean" for a misspelt key; then warnings, each marked (warning). The exit status
is 0 when the agent would load the file, 1 otherwise. The agent itself is not
asked: check a file before saving it over the one in use.`,
		Example: `  drover config check
  drover config check /tmp/drover.yaml.new && mv /tmp/drover.yaml.new /etc/drover/drover.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.config
			if len(args) == 1 {
				path = args[0]
			}
			return runConfigCheck(cmd.OutOrStdout(), path)
		},
	})
	return cmd
}

// runConfigCheck prints the problems and warnings of the config file at
// path, or that it is ok; it returns an *exitError when there are problems.
func runConfigCheck(w io.Writer, path string) error {
	cfg, err := daemon.LoadConfig(path)
	var ce *daemon.ConfigError
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			fmt.Fprintln(w, p)
		}
		for _, p := range ce.Warnings {
			fmt.Fprintf(w, "%s (warning)\n", p)
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %d problem(s)", path, len(ce.Problems))}
	case err != nil:
		return err
	}
	for _, p := range cfg.Warnings {
		fmt.Fprintf(w, "%s (warning)\n", p)
	}
	apps := "applications"
	if len(cfg.Applications) == 1 {
		apps = "application"
	}
	fmt.Fprintf(w, "%s: ok (%d %s)\n", path, len(cfg.Applications), apps)
	return nil
}
