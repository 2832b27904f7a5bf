package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployLocalMaliciousBundles feeds hostile archives to deploy-local:
// each must fail DownloadBundle with a message naming the entry, and
// nothing may appear outside the state directory's staging area.
func TestDeployLocalMaliciousBundles(t *testing.T) {
	appspec := "version: 0.0\nos: linux\n"
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		want    string
	}{
		{"dot-dot", []tar.Header{{Name: "../escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, "escape.txt"},
		{"absolute", []tar.Header{{Name: "/tmp/drover-abs-escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}, "drover-abs-escape.txt"},
		{"symlink escape", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../../..", Mode: 0o777},
			{Name: "link/escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		}, "link"},
		{"device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}}, "dev"},
		{"fifo", []tar.Header{{Name: "pipe", Typeflag: tar.TypeFifo, Mode: 0o644}}, "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			state, root := filepath.Join(work, "state"), filepath.Join(work, "root")
			if err := os.MkdirAll(root, 0o755); err != nil { // deploy-local would create it
				t.Fatal(err)
			}
			archivePath := filepath.Join(work, "evil.tar")
			f, err := os.Create(archivePath)
			if err != nil {
				t.Fatal(err)
			}
			tw := tar.NewWriter(f)
			write := func(h tar.Header, body string) {
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
				if _, err := tw.Write([]byte(body)); err != nil {
					t.Fatal(err)
				}
			}
			write(tar.Header{Name: "appspec.yml", Typeflag: tar.TypeReg, Size: int64(len(appspec)), Mode: 0o644}, appspec)
			for _, h := range tc.entries {
				body := ""
				if h.Typeflag == tar.TypeReg {
					body = "x"
				}
				write(h, body)
			}
			tw.Close()
			f.Close()
			before := listTree(t, work)
			os.Remove("/tmp/drover-abs-escape.txt")

			r := deployLocal(t, state, root, archivePath, "evil")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "DownloadBundle") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("message should name DownloadBundle and %q:\n%s", tc.want, r.stderr)
			}
			if _, err := os.Lstat("/tmp/drover-abs-escape.txt"); err == nil {
				t.Error("an absolute entry was written to /tmp")
			}
			// Only the state directory may have changed, and no bundle was kept.
			for p := range listTree(t, work) {
				if !before[p] && !strings.HasPrefix(p, "state") {
					t.Errorf("%s appeared outside the state directory", p)
				}
				if strings.HasSuffix(p, "/bundle") || strings.Contains(p, "/bundle/") || strings.Contains(p, "bundle.staging") {
					t.Errorf("%s: a rejected bundle was kept", p)
				}
			}
		})
	}
}

// listTree returns every path under dir, relative to it.
func listTree(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
