package dirsrc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/drover-dev/drover/internal/safelink"
	"github.com/drover-dev/drover/internal/safelink/safelinktest"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

// TestFetchLinksOneRule: a bundle directory's symbolic links pass or fail
// by internal/safelink's rule, as they do in hooks/bundle and the git
// source (the same cases).
func TestFetchLinksOneRule(t *testing.T) {
	for _, tc := range safelinktest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			publish(t, dir, sourcetest.Release{Label: "one", Files: safelinktest.Files})
			for _, l := range tc.Links {
				if err := os.Symlink(l[1], filepath.Join(dir, "bundle", l[0])); err != nil {
					t.Fatal(err)
				}
			}
			s, err := New(Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			rev, err := s.Desired(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			err = s.Fetch(context.Background(), rev, dst)
			tc.Check(t, "Fetch", dst, err, safelink.ErrUnsafe)
		})
	}
}
