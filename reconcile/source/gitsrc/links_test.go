package gitsrc

import (
	"context"
	"errors"
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
			switch {
			case tc.OK && err != nil:
				t.Fatalf("Fetch: %v", err)
			case !tc.OK && !errors.Is(err, safelink.ErrUnsafe):
				t.Fatalf("Fetch = %v, want safelink.ErrUnsafe", err)
			case tc.OK:
				for _, l := range tc.Links {
					if got, err := os.Readlink(filepath.Join(dst, l[0])); err != nil || got != l[1] {
						t.Errorf("link %s = %q, %v; want it kept, to %q", l[0], got, err, l[1])
					}
				}
			}
		})
	}
}
