package main

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		wantCode int
		want     []string
	}{
		{
			name: "valid bundle",
			files: map[string]string{
				"appspec.yml":   "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: go.sh\n",
				"go.sh":         "#!/bin/sh\n",
				"manifest.yaml": "version: 1\napplication: hello\nbundle: {path: .}\ndeployment: {strategy: one-at-a-time}\n",
			},
			wantCode: 0,
			want:     []string{"appspec.yml: valid", "1 hook script"},
		},
		{
			name:     "bad appspec",
			files:    map[string]string{"appspec.yml": "version: 0.0\nos: windows\n"},
			wantCode: 1,
			want:     []string{"appspec.yml:2: os:"},
		},
		{
			name: "bad manifest next to a good appspec",
			files: map[string]string{
				"appspec.yml":   "version: 0.0\nos: linux\n",
				"manifest.yaml": "version: 1\napplication: hello\ndeployment:\n  strategy: sideways\n",
			},
			wantCode: 1,
			want:     []string{"manifest.yaml:4:", "sideways"},
		},
		{
			name:     "no appspec",
			files:    map[string]string{"README": "x"},
			wantCode: 1,
			want:     []string{"appspec"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			r := drover(t, nil, "validate", dir)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}
