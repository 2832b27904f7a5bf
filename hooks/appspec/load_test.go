package appspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBundle creates a bundle in a temp dir. A value starting with "->"
// makes a symlink to the rest; a key ending in "/" makes a directory.
func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, "/"):
			err := os.MkdirAll(p, 0o755)
			if err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(content, "->"):
			if err := os.Symlink(content[2:], p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestFind(t *testing.T) {
	t.Run("yml", func(t *testing.T) {
		dir := writeBundle(t, map[string]string{"appspec.yml": head, "appspec.yaml": "broken: ["})
		got, err := Find(dir)
		if err != nil || got != filepath.Join(dir, "appspec.yml") {
			t.Fatalf("Find = %q, %v", got, err)
		}
		if _, err := Load(dir); err != nil {
			t.Fatalf("Load read appspec.yaml instead of appspec.yml: %v", err)
		}
	})
	t.Run("yaml fallback", func(t *testing.T) {
		dir := writeBundle(t, map[string]string{"appspec.yaml": head + "hooks:\n  AfterInstall:\n    - location: run.sh\n", "run.sh": "#!/bin/sh\n"})
		spec, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Path != filepath.Join(dir, "appspec.yaml") || spec.Hooks[AfterInstall][0].Location != "run.sh" {
			t.Errorf("spec = %+v", spec)
		}
	})
	t.Run("neither", func(t *testing.T) {
		dir := writeBundle(t, map[string]string{"AppSpec.yml": head})
		_, err := Find(dir)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no appspec.yml or appspec.yaml") {
			t.Fatalf("Find = %v, want ErrNotFound", err)
		}
		if _, err := Load(dir); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load = %v, want ErrNotFound", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := writeBundle(t, map[string]string{"appspec.yml/": ""})
		_, err := Find(dir)
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Find = %v", err)
		}
	})
}

// filesSpec installs config/app.conf as /etc/app/app.conf and the web
// directory below /srv/web.
const filesSpec = head + `files:
  - source: config/app.conf
    destination: /etc/app
  - source: web
    destination: /srv/web
`

func TestLoadBundleProblems(t *testing.T) {
	base := map[string]string{
		"config/app.conf": "x", "web/index.html": "x", "web/css/site.css": "x",
		"scripts/run.sh": "#!/bin/sh\n", "scripts/dir/": "",
		"scripts/inside.sh": "->run.sh", "scripts/outside.sh": "->/etc/passwd", "scripts/up.sh": "->../..",
		"linked": "->web",
	}
	cases := []struct {
		name, spec  string
		line        int
		field, want string // want "" means the bundle is valid
	}{
		{"valid", filesSpec + "hooks:\n  AfterInstall:\n    - location: scripts/run.sh\n    - location: /scripts/inside.sh\n", 0, "", ""},
		{"script missing", head + "hooks:\n  AfterInstall:\n    - location: scripts/run.sh\n    - location: scripts/start.sh\n", 6, "hooks.AfterInstall[1].location", `script "scripts/start.sh" is not in the bundle`},
		{"script below a file", head + "hooks:\n  AfterInstall:\n    - location: scripts/run.sh/x\n", 5, "hooks.AfterInstall[0].location", "is not in the bundle"},
		{"script is a directory", head + "hooks:\n  ApplicationStop:\n    -   timeout: 10\n        location: scripts/dir\n", 6, "hooks.ApplicationStop[0].location", "is a directory, not a script"},
		{"script symlink escapes", head + "hooks:\n  BeforeInstall:\n    - location: scripts/outside.sh\n", 5, "hooks.BeforeInstall[0].location", "symlink that leads outside the bundle"},
		{"script relative symlink escapes", head + "hooks:\n  BeforeInstall:\n    - location: scripts/up.sh\n", 5, "hooks.BeforeInstall[0].location", "leads outside the bundle"},
		{"source missing", head + "files:\n  - destination: /srv\n    source: config/missing.conf\n", 5, "files[0].source", `"config/missing.conf" is not in the bundle`},
		{"source symlink inside", head + "files:\n  - source: linked\n    destination: /srv\n", 0, "", ""},
		{"file object with pattern", filesSpec + "permissions:\n  - object: /etc/app/app.conf\n    mode: 600\n    pattern: \"*.conf\"\n", 11, "permissions[0].pattern", "a pattern only applies below a directory"},
		{"file object with except", filesSpec + "permissions:\n  - object: /etc/app/app.conf/\n    except: [a]\n", 10, "permissions[0].except", "except only applies below a directory"},
		{"file object in a directory source", filesSpec + "permissions:\n  - object: /srv/web/css/site.css\n    except: [a]\n", 10, "permissions[0].except", "except only applies below a directory"},
		{"file object with default acl", filesSpec + "permissions:\n  - object: /etc/app/app.conf\n    acls:\n      - u:bob:rw\n      - d:u:bob:rw\n", 10, "permissions[0].acls", "default ACL entries (default:user:bob:rw-) apply to directories only"},
		{"file object, directory type only", filesSpec + "permissions:\n  - object: /etc/app/app.conf\n    pattern: \"*.conf\"\n    type: [directory]\n", 0, "", ""},
		{"directory object with pattern", filesSpec + "permissions:\n  - object: /srv/web\n    pattern: \"*.html\"\n    except: [x.html]\n    acls: [\"d:u:bob:rwx\"]\n", 0, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"appspec.yml": tc.spec}
			for k, v := range base {
				files[k] = v
			}
			dir := writeBundle(t, files)
			spec, err := Load(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Load = %+v, %v; want an *Error", spec, err)
			}
			if len(perr.Problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(perr.Problems), err)
			}
			p := perr.Problems[0]
			if p.File != filepath.Join(dir, "appspec.yml") || p.Line != tc.line || p.Field != tc.field || !strings.Contains(p.Msg, tc.want) {
				t.Errorf("got %s\nwant appspec.yml:%d: %s: ...%s...", p, tc.line, tc.field, tc.want)
			}
		})
	}
}

func TestLoadReportsAllStages(t *testing.T) {
	dir := writeBundle(t, map[string]string{"appspec.yml": `version: 0.0
os: linux
files:
  - source: app
    destination: /srv/app
hooks:
  BeforeInstall:
    - location: scripts/before.sh
      timeout: soon
  AfterInstall:
    - location: scripts/after.sh
`})
	_, err := Load(dir)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("want *Error, got %v", err)
	}
	name := filepath.Join(dir, "appspec.yml")
	want := strings.Join([]string{
		name + `:4: files[0].source: "app" is not in the bundle`,
		name + `:9: hooks.BeforeInstall[0].timeout: must be a positive number of seconds, got "soon"`,
		name + `:11: hooks.AfterInstall[0].location: script "scripts/after.sh" is not in the bundle`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", err, want)
	}
}
