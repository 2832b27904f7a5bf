package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/dirsrc"
	"github.com/drover-dev/drover/reconcile/source/gitsrc"
	"github.com/drover-dev/drover/reconcile/source/s3src"
)

// newSource builds the source an application's config names. Caches and
// downloads live under STATE/sources/APP.
func newSource(ctx context.Context, ac AppConfig, stateDir string, log *slog.Logger) (source.Source, error) {
	base := filepath.Join(stateDir, "sources", ac.Name)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("source cache directory: %w", err)
	}
	switch {
	case ac.Source.Git != nil:
		g := ac.Source.Git
		return gitsrc.New(gitsrc.Config{
			URL: g.URL, Branch: g.Branch, Path: g.Path,
			Auth:     gitsrc.Auth{TokenFile: g.Auth.TokenFile, SSHKeyFile: g.Auth.SSHKeyFile, KnownHostsFile: g.Auth.KnownHostsFile},
			CacheDir: filepath.Join(base, "git"),
			Logger:   log,
		})
	case ac.Source.S3 != nil:
		s := ac.Source.S3
		client, err := s3src.NewClient(ctx, s3src.ClientConfig{Region: s.Region, Endpoint: s.Endpoint})
		if err != nil {
			return nil, err
		}
		return s3src.New(s3src.Config{Bucket: s.Bucket, Prefix: s.Prefix, Client: client, TempDir: base, Logger: log})
	case ac.Source.Dir != "":
		return dirsrc.New(dirsrc.Config{Dir: ac.Source.Dir, Logger: log})
	}
	return nil, fmt.Errorf("no source configured")
}

// listenTCP opens the metrics listener.
func listenTCP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	return ln, nil
}

func goVersion() string { return runtime.Version() }
