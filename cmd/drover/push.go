package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source/s3src"
)

func newPushCmd(g *globalFlags) *cobra.Command {
	var src, to, label, region, endpoint string
	cmd := &cobra.Command{
		Use:   "push --source DIR --to s3://BUCKET/PREFIX",
		Short: "Build a reproducible bundle, upload it, then write the manifest",
		Long: `Push validates DIR/appspec.yml (and DIR/manifest.yaml when present), builds a
reproducible tar.gz of DIR (the same input always gives the same sha256), uploads it
to PREFIX/bundles/SHA256.tar.gz, then writes PREFIX/manifest.yaml last.

Application and deployment settings come from DIR/manifest.yaml when present;
otherwise the application is named after the last element of PREFIX and rolls out
one at a time. AWS credentials, region and endpoint come from the default AWS
configuration (environment, shared config, instance roles), as for the agent;
AWS_ENDPOINT_URL_S3 or --endpoint select an S3-compatible server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.newLogger(os.Stderr)
			if err != nil {
				return err
			}
			if src == "" || to == "" {
				return errors.New("push: --source and --to are required")
			}
			bucket, prefix, err := parseS3URL(to)
			if err != nil {
				return err
			}
			if _, err := appspec.Load(src); err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			tmpl, err := manifest.Load(filepath.Join(src, manifest.FileName))
			switch {
			case errors.Is(err, manifest.ErrNotFound):
				tmpl = nil
			case err != nil:
				return &exitError{code: 1, msg: err.Error()}
			}
			ctx := cmd.Context()
			client, err := s3src.NewClient(ctx, s3src.ClientConfig{Region: region, Endpoint: endpoint})
			if err != nil {
				return err
			}
			log.Debug("pushing", "source", src, "bucket", bucket, "prefix", prefix)
			res, err := s3src.Push(ctx, client, s3src.PushOptions{
				Bucket: bucket, Prefix: prefix, Dir: src, Label: label, Template: tmpl,
				Progress: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			state := "uploaded"
			if !res.Uploaded {
				state = "already present"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle   s3://%s/%s (%d bytes, %s)\nsha256   %s\nmanifest s3://%s/%s\nrevision %s\n",
				bucket, res.BundleKey, res.Size, state, res.SHA256, bucket, res.ManifestKey, res.Manifest.Revision)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&src, "source", "", "bundle directory (appspec.yml at its root)")
	f.StringVar(&to, "to", "", "destination, s3://BUCKET/PREFIX")
	f.StringVar(&label, "revision", "", "revision label for the manifest (default: from DIR/manifest.yaml, else the sha256's first 12 digits)")
	f.StringVar(&region, "region", "", "AWS region (default: from the AWS configuration)")
	f.StringVar(&endpoint, "endpoint", "", "S3-compatible endpoint URL (path-style addressing)")
	return cmd
}

// parseS3URL splits s3://BUCKET/PREFIX.
func parseS3URL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("push: --to %q: want s3://BUCKET/PREFIX", raw)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
