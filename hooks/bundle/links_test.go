package bundle

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/drover-dev/drover/internal/safelink/safelinktest"
)

// TestUnpackLinksOneRule: a bundle's symbolic links pass or fail by
// internal/safelink's rule, from an archive and from a directory, as they
// do when the git or directory source writes the bundle (their tests run
// the same cases).
func TestUnpackLinksOneRule(t *testing.T) {
	for _, tc := range safelinktest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			ents := []ent{dirEnt("d")}
			dir := t.TempDir()
			for _, name := range slices.Sorted(maps.Keys(safelinktest.Files)) {
				ents = append(ents, file(name, safelinktest.Files[name]))
				mustWrite(t, filepath.Join(dir, name), safelinktest.Files[name], 0o644)
			}
			for _, l := range tc.Links {
				ents = append(ents, symlinkEnt(l[0], l[1]))
				mustSymlink(t, l[1], filepath.Join(dir, l[0]))
			}
			for what, src := range map[string]string{"tar": writeTemp(t, "b.tar", tarBytes(t, ents)), "directory": dir} {
				dst, check := sandbox(t)
				err := Unpack(context.Background(), src, dst, Limits{})
				check()
				tc.Check(t, what+": Unpack", dst, err, ErrUnsafePath)
			}
		})
	}
}
