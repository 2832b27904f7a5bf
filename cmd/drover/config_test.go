package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheck runs `drover config check` on each testdata/config-check
// file and compares its exit status and output with the .golden file next
// to it (go test ./cmd/drover -run TestConfigCheck -update rewrites them).
func TestConfigCheck(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "config-check", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test configs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			r := drover(t, nil, "config", "check", file)
			got := fmt.Sprintf("$ drover config check %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", file, r.code, r.stdout, r.stderr)
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if wantOK := name == "ok"; (r.code == 0) != wantOK {
				t.Errorf("exit %d", r.code)
			}
		})
	}
}

// TestConfigCheckDefaultsToConfigFlag: without FILE, config check reads
// the --config file.
func TestConfigCheckDefaultsToConfigFlag(t *testing.T) {
	file := filepath.Join("testdata", "config-check", "ok.yaml")
	r := drover(t, nil, "config", "check", "--config", file)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\n"+file+": ok (2 applications)\n") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = drover(t, nil, "config", "check", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
