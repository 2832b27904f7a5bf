package gitsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/drover-dev/drover/internal/safelink"
	"github.com/drover-dev/drover/internal/safelink/safelinktest"
	"github.com/drover-dev/drover/internal/testenv/gittest"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

// TestFetchLinksOneRule: a committed bundle's symbolic links pass or fail
// by internal/safelink's rule, as they do in hooks/bundle and the
// directory source (the same cases).
func TestFetchLinksOneRule(t *testing.T) {
	for _, tc := range safelinktest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			repo := gittest.NewRepo(t, "release")
			publish(t, repo, sourcetest.Release{Label: "one", Files: safelinktest.Files})
			for _, l := range tc.Links {
				if err := os.Symlink(l[1], filepath.Join(repo.Work, appPath, "bundle", l[0])); err != nil {
					t.Fatal(err)
				}
			}
			repo.Commit(t, "links", nil)
			s := newSource(t, repo.FileURL())
			rev := desired(t, s)
			dst := t.TempDir()
			err := s.Fetch(context.Background(), rev, dst)
			tc.Check(t, "Fetch", dst, err, safelink.ErrUnsafe)
		})
	}
}
