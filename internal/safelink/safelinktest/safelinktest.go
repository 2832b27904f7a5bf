// Package safelinktest holds the cases of internal/safelink's rule that
// every writer of a bundle tree (hooks/bundle, the git and directory
// sources) is tested with, so that one bundle passes or fails alike
// whichever way it arrives.
package safelinktest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Files are the plain files of every case's tree ("d/f" makes the
// directory d).
var Files = map[string]string{"appspec.yml": "version: 0.0\nos: linux\n", "run.sh": "#!/bin/sh\n", "d/f": "f"}

// Case is a tree: Files and these links (name, target), in order.
type Case struct {
	Name  string
	Links [][2]string
	OK    bool // the rule lets the tree pass
}

// Cases cover what the rule allows (as CodeDeploy keeps such links) and
// the escapes it refuses, single links and chains.
var Cases = []Case{
	{"inside", [][2]string{{"current", "run.sh"}, {"d/l", "../run.sh"}}, true},
	{"dot-dot after a real directory", [][2]string{{"t", "d/../run.sh"}}, true},
	{"dangling inside", [][2]string{{"l", "not/yet"}}, true},
	{"absolute", [][2]string{{"l", "/etc/passwd"}}, false},
	{"leaves the root", [][2]string{{"d/l", "../../x"}}, false},
	{"chain leaves", [][2]string{{"s", "."}, {"t", "s/.."}}, false},
	{"chain via subdirectory", [][2]string{{"d/up", ".."}, {"x", "d/up/d/up/.."}}, false},
	{"chain to absolute", [][2]string{{"d/abs", "/etc"}, {"x", "d/abs/passwd"}}, false},
	{"loop", [][2]string{{"a", "b"}, {"b", "a"}}, false},
}

// Check reports on t whether a writer's outcome for the case is right:
// err (from writing the tree to dst) is nil when the rule lets the tree
// pass, and then every link is kept as it was; else err is unsafe (the
// writer's own sentinel). what names the writer in the messages.
func (c Case) Check(t testing.TB, what, dst string, err, unsafe error) {
	t.Helper()
	switch {
	case c.OK && err != nil:
		t.Errorf("%s: %v, want the tree written", what, err)
	case !c.OK && !errors.Is(err, unsafe):
		t.Errorf("%s: %v, want %v", what, err, unsafe)
	case c.OK:
		for _, l := range c.Links {
			if got, err := os.Readlink(filepath.Join(dst, l[0])); err != nil || got != l[1] {
				t.Errorf("%s: link %s = %q, %v; want it kept, to %q", what, l[0], got, err, l[1])
			}
		}
	}
}
