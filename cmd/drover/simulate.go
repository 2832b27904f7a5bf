package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newSimulateCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "simulate --hosts N --strategy S",
		Short: "Run the rollout protocol over a simulated network with faults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("simulate: not implemented yet")
		},
	}
}
