package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDefaultVersion checks the version build.sh derives from git, in
// throwaway repositories with and without tags.
func TestDefaultVersion(t *testing.T) {
	git := needTool(t, "git", "Debian package git")
	needTool(t, "bash", "build.sh is a bash script")
	script := readFile(t, "packaging/build.sh")
	env := []string{
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost",
		"GIT_AUTHOR_DATE=2026-03-04T05:06:07Z", "GIT_COMMITTER_DATE=2026-03-04T05:06:07Z",
		"GIT_CONFIG_NOSYSTEM=1", "HOME=" + t.TempDir(),
	}
	tests := []struct {
		name string
		tags []string // tags on the first commit
		more int      // commits after the first
		want string   // regexp; SHA stands for the short commit
	}{
		{name: "no tag", want: `^0\.0\.0~git20260304\.SHA$`},
		{name: "tag on HEAD", tags: []string{"v1.2.0"}, want: `^1\.2\.0$`},
		{name: "commits after tag", tags: []string{"v1.2.0"}, more: 3, want: `^1\.2\.0\+git3\.SHA$`},
		{name: "pre-release tag", tags: []string{"v2.0.0-rc1"}, want: `^2\.0\.0~rc1$`},
		{name: "commits after pre-release", tags: []string{"v2.0.0-rc.1"}, more: 2, want: `^2\.0\.0~rc\.1\+git2\.SHA$`},
		{name: "other tags ignored", tags: []string{"release-7"}, want: `^0\.0\.0~git20260304\.SHA$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "packaging"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "packaging", "build.sh"), script, 0o755); err != nil {
				t.Fatal(err)
			}
			mustRun(t, time.Minute, dir, env, git, "init", "-q")
			mustRun(t, time.Minute, dir, env, git, "add", "-A")
			mustRun(t, time.Minute, dir, env, git, "commit", "-q", "-m", "first")
			for _, tag := range tc.tags {
				mustRun(t, time.Minute, dir, env, git, "tag", tag)
			}
			for i := 0; i < tc.more; i++ {
				mustRun(t, time.Minute, dir, env, git, "commit", "-q", "--allow-empty", "-m", "more")
			}
			sha := strings.TrimSpace(mustRun(t, time.Minute, dir, env, git, "rev-parse", "--short=7", "HEAD"))
			got := strings.TrimSpace(mustRun(t, time.Minute, dir, env, "bash", "packaging/build.sh", "--print-version"))
			// git describe abbreviates to at least 7 characters.
			re := regexp.MustCompile(strings.ReplaceAll(tc.want, "SHA", regexp.QuoteMeta(sha)+"[0-9a-f]*"))
			if !re.MatchString(got) {
				t.Fatalf("version %q, want %s", got, re)
			}
		})
	}
	t.Run("rejected", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "packaging"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "packaging", "build.sh"), script, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"1.0-1", "v1.0", "1:2.0", "1.0 beta"} {
			r := run(t, time.Minute, dir, env, "bash", "packaging/build.sh", "--print-version", v)
			if r.err == nil {
				t.Errorf("build.sh accepted version %q (printed %q)", v, r.stdout)
			}
		}
	})
}
