// Package bundlecheck is the static check of a new revision's bundle that
// the Poller runs before it publishes the revision as desired
// (source.PollerConfig.Check): no host claims a slot or stops its
// application for a bundle that would fail at DownloadBundle anyway.
//
// The check fetches the bundle with the source's own Fetch (the one the
// lifecycle's DownloadBundle uses) into a fresh directory, loads it with
// hooks/appspec.Load (the lifecycle's parser and bundle checks: hook
// scripts and files sources exist, permissions fit what is copied), and
// removes the directory. Problems are reported as a *source.BundleError
// whose file names are the source's (source.BundleNamer: a path in the
// repository, an S3 object, a path on disk), never the staging directory.
// A bundle the fetch itself refuses for its content (unsafe paths, special
// files, too large, not an archive) is refused the same way; any other
// fetch failure (network, checksum, cancelled) is returned as is, and the
// Poller counts it as an error and checks again at its next poll.
//
// Cost: one fetch per new revision ID, besides the deployment's own. For
// git and dir that is a copy from the local cache or disk; for S3 it is a
// download of the bundle.
package bundlecheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-dev/drover/hooks/appspec"
	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/internal/safelink"
	"github.com/drover-dev/drover/reconcile/source"
)

// tempPattern names the check's directories, so that New can remove those
// a crash left behind.
const tempPattern = "drover-check-*"

// New returns the check of src's bundles. tempDir is where bundles are
// fetched (the application's directory in the state directory; "" is
// os.TempDir()); log receives the appspec's warnings.
func New(src source.Source, tempDir string, log *slog.Logger) func(context.Context, source.Revision) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if tempDir != "" {
		// Our own leftovers only: a directory named by the pattern in the
		// directory given to us.
		if old, err := filepath.Glob(filepath.Join(tempDir, tempPattern)); err == nil {
			for _, p := range old {
				os.RemoveAll(p)
			}
		}
	}
	return func(ctx context.Context, rev source.Revision) error {
		return check(ctx, src, tempDir, log, rev)
	}
}

func check(ctx context.Context, src source.Source, tempDir string, log *slog.Logger, rev source.Revision) error {
	dir, err := os.MkdirTemp(tempDir, tempPattern)
	if err != nil {
		return fmt.Errorf("check bundle of revision %s: %w", rev.Label, err)
	}
	defer os.RemoveAll(dir)
	name := func(rel string) string {
		if n, ok := src.(source.BundleNamer); ok {
			return n.BundleFile(rev, rel)
		}
		return rel
	}
	// Messages must not show the staging directory: say the bundle instead.
	clean := func(s string) string {
		s = strings.ReplaceAll(s, dir+string(filepath.Separator), name("")+"/")
		return strings.ReplaceAll(s, dir, name(""))
	}
	refuse := func(problems ...string) error {
		return &source.BundleError{ID: rev.ID, Label: rev.Label, Problems: problems}
	}
	if err := src.Fetch(ctx, rev, dir); err != nil {
		if ctx.Err() == nil && staticFetchError(err) {
			return refuse(name("") + ": " + clean(err.Error()))
		}
		return &cleanError{msg: fmt.Sprintf("check bundle of revision %s: fetch: %s", rev.Label, clean(err.Error())), err: err}
	}
	spec, err := appspec.Load(dir)
	var ae *appspec.Error
	switch {
	case errors.As(err, &ae):
		problems := make([]string, len(ae.Problems))
		for i, p := range ae.Problems {
			problems[i] = rename(p, dir, name, clean).String()
		}
		return refuse(problems...)
	case errors.Is(err, appspec.ErrNotFound):
		return refuse(name("appspec.yml") + ": no appspec.yml or appspec.yaml at the root of the bundle")
	case err != nil:
		return &cleanError{msg: fmt.Sprintf("check bundle of revision %s: %s", rev.Label, clean(err.Error())), err: err}
	}
	for _, w := range spec.Warnings {
		log.Warn("appspec: "+rename(w, dir, name, clean).String(), "revision", rev.Label)
	}
	return nil
}

// rename names p's file the way the source does.
func rename(p appspec.Problem, dir string, name func(string) string, clean func(string) string) appspec.Problem {
	if rel, err := filepath.Rel(dir, p.File); err == nil && !strings.HasPrefix(rel, "..") {
		p.File = name(filepath.ToSlash(rel))
	} else {
		p.File = clean(p.File)
	}
	p.Msg = clean(p.Msg)
	return p
}

// staticFetchError reports whether a fetch failed for the bundle's
// content, which no retry changes.
func staticFetchError(err error) bool {
	for _, e := range []error{bundle.ErrUnsafePath, bundle.ErrSpecialFile, bundle.ErrTooLarge, bundle.ErrFormat, safelink.ErrUnsafe} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// cleanError is err with a message that does not name the staging
// directory; errors.Is and errors.As still see err.
type cleanError struct {
	msg string
	err error
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.err }
