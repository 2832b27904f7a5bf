package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/reconcile/manifest"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check DIR/appspec.yml (and DIR/manifest.yaml if present)",
		Long: `Check a bundle directory the way a deployment would: DIR/appspec.yml (or
appspec.yaml) with every hook script it names, and DIR/manifest.yaml when present.
Every problem is printed as FILE:LINE: message; the exit status is 1 when there is any.
DIR defaults to the current directory.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runValidate(cmd.OutOrStdout(), dir)
		},
	}
}

func runValidate(w io.Writer, dir string) error {
	bad := 0
	spec, err := appspec.Load(dir)
	var ae *appspec.Error
	switch {
	case errors.As(err, &ae):
		for _, p := range ae.Problems {
			fmt.Fprintln(w, p)
		}
		printWarnings(w, ae.Warnings)
		bad += len(ae.Problems)
	case err != nil:
		fmt.Fprintln(w, err)
		bad++
	default:
		printWarnings(w, spec.Warnings)
	}

	err = manifest.ValidateDir(dir)
	var me *manifest.Error
	switch {
	case errors.As(err, &me):
		for _, p := range me.Problems {
			fmt.Fprintln(w, p)
		}
		bad += len(me.Problems)
	case err != nil:
		fmt.Fprintln(w, err)
		bad++
	}

	if bad > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %d problem(s)", filepath.Clean(dir), bad)}
	}
	hooks := 0
	for _, hs := range spec.Hooks {
		hooks += len(hs)
	}
	fmt.Fprintf(w, "%s: valid (%d file mapping(s), %d permission rule(s), %d hook script(s))\n",
		spec.Path, len(spec.Files), len(spec.Permissions), hooks)
	return nil
}

func printWarnings(w io.Writer, ws []appspec.Problem) {
	for _, p := range ws {
		fmt.Fprintf(w, "%s (warning)\n", p)
	}
}
