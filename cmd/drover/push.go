package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPushCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "push --source DIR --to s3://BUCKET/PREFIX",
		Short: "Build a reproducible bundle, upload it, then write the manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("push: not implemented yet")
		},
	}
}
