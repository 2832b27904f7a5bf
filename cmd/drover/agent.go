package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/daemon"
)

func newAgentCmd(g *globalFlags) *cobra.Command {
	var root string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the drover agent (the daemon)",
		Long: `Run the drover agent: watch each application's source, agree with the
other hosts over gossip who deploys when, run the lifecycle hooks, serve the
local API and metrics. SIGHUP or a change to the config file reloads it;
SIGTERM lets running hooks finish (up to --shutdown-grace), a second one stops
them at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.newLogger(os.Stderr)
			if err != nil {
				return err
			}
			// Signals are ours from here: the first TERM is a graceful stop.
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer signal.Stop(sigs)

			ctx := context.Background()
			a, err := daemon.New(ctx, daemon.Options{
				ConfigPath: g.config, Root: root, Version: version, Commit: commitOrVCS(),
				Logger: log, ShutdownGrace: grace,
			})
			if err != nil {
				return err
			}
			if err := a.Start(ctx); err != nil {
				a.Close(ctx)
				return err
			}
			for sig := range sigs {
				if sig == syscall.SIGHUP {
					log.Info("SIGHUP: reloading the configuration", "path", g.config)
					_ = a.Reload() // Reload logs, counts and shows its own result
					continue
				}
				log.Info("stopping", "signal", sig.String(), "grace", grace)
				force, cancel := context.WithCancel(ctx)
				go func() {
					if s, ok := <-sigs; ok {
						log.Warn("second signal: stopping running hooks now", "signal", s.String())
						cancel()
					}
				}()
				err := a.Close(force)
				cancel()
				if err != nil {
					return fmt.Errorf("stop: %w", err)
				}
				return nil
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "prefix for every appspec destination (overrides node.root)")
	cmd.Flags().DurationVar(&grace, "shutdown-grace", 60*time.Second, "how long a stop lets running hooks finish")
	return cmd
}

func commitOrVCS() string {
	if commit != "" {
		return commit
	}
	return vcsRevision()
}
