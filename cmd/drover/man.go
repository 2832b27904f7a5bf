package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newManCmd writes the man page; packaging calls it at build time.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man",
		Short:  "Write the drover(1) man page to stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("man: not implemented yet")
		},
	}
}
