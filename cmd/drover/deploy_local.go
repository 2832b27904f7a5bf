package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDeployLocalCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy-local --bundle PATH",
		Short: "Run one full in-place lifecycle of a bundle on this host",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("deploy-local: not implemented yet")
		},
	}
}
