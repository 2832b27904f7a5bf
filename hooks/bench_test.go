package hooks

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/drover-dev/drover/hooks/proc"
	"github.com/drover-dev/drover/internal/testenv/systemdtest"
)

// BenchmarkDeployNoopFiveHooks measures the wall time of a whole
// deployment whose five hook scripts do nothing: the overhead drover adds
// to every host's lifecycle, per process runner.
func BenchmarkDeployNoopFiveHooks(b *testing.B) {
	for _, mode := range []string{"off", "user"} {
		b.Run("systemd="+mode, func(b *testing.B) {
			ctx := context.Background()
			if mode == "user" {
				for _, kv := range systemdtest.Start(b) {
					k, v, _ := strings.Cut(kv, "=")
					b.Setenv(k, v)
				}
			}
			runner, err := proc.New(ctx, mode, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer runner.Close()
			st, err := OpenStore(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			e, err := NewEngine(Config{Store: st, Runner: runner, Root: b.TempDir(), Host: "h"})
			if err != nil {
				b.Fatal(err)
			}
			src := b.TempDir()
			files := map[string]string{"noop.sh": "#!/bin/sh\nexit 0\n"}
			spec := "version: 0.0\nos: linux\nhooks:\n"
			for _, ev := range []string{"BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic"} {
				spec += "  " + ev + ":\n    - location: noop.sh\n"
			}
			files["appspec.yml"] = spec
			writeFilesB(b, src, files)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := e.Deploy(ctx, Request{Application: "a", Group: "g", Revision: fmt.Sprint(i), Fetch: dirFetch(src)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
