package safelink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/drover-dev/drover/internal/safelink/safelinktest"
)

func TestTarget(t *testing.T) {
	for _, tt := range []struct {
		rel, target string
		ok          bool
	}{
		{"l", "a.txt", true},
		{"d/l", "../a.txt", true},
		{"d/e/l", "../../x/y", true},
		{"t", "s/..", true},           // lexically the root; whether s is a link is Tree's to see
		{"t", "s/../a.txt", true},     // the same
		{"d/l", "missing/file", true}, // dangling, inside
		{"l", "/etc/passwd", false},
		{"d/l", "../../x", false},
		{"l", "..", false},
		{"l", "a/../../x", false},
		{"l", "", false},
		{"l", "a\x00b", false},
	} {
		err := Target(tt.rel, tt.target)
		if (err == nil) != tt.ok {
			t.Errorf("Target(%q, %q) = %v, want ok=%v", tt.rel, tt.target, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafe) {
			t.Errorf("Target(%q, %q) = %v, not ErrUnsafe", tt.rel, tt.target, err)
		}
	}
}

func TestTree(t *testing.T) {
	for _, tc := range safelinktest.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for f, body := range safelinktest.Files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range tc.Links {
				if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
					t.Fatal(err)
				}
			}
			err := Dir(context.Background(), dir)
			if tc.OK {
				if err != nil {
					t.Fatalf("Dir: %v", err)
				}
				return
			}
			var le *Error
			if !errors.As(err, &le) || !errors.Is(err, ErrUnsafe) || le.Link == "" {
				t.Fatalf("Dir = %v, want an *Error naming the link", err)
			}
		})
	}
}
