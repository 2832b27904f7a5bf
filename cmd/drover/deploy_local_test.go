package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path -> content) under dir; names ending in .sh
// are made executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// traceScript appends "EVENT REVISION" to $DROVER_ROOT/trace, so tests can
// see which revision's scripts ran for which event, in order.
const traceScript = `#!/bin/sh
set -e
echo "$LIFECYCLE_EVENT $DROVER_REVISION" >> "$DROVER_ROOT/trace"
`

// appBundle is a bundle installing files under /opt/app, with a tracing
// script on every scriptable event.
func appBundle(t *testing.T, behavior string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	spec := "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/app\n"
	if behavior != "" {
		spec += "file_exists_behavior: " + behavior + "\n"
	}
	spec += "hooks:\n"
	for _, ev := range []string{"BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic", "AfterAllowTraffic"} {
		spec += "  " + ev + ":\n    - location: scripts/trace.sh\n      timeout: 60\n"
	}
	tree := map[string]string{"appspec.yml": spec, "scripts/trace.sh": traceScript}
	for name, content := range files {
		tree["app/"+name] = content
	}
	writeTree(t, dir, tree)
	return dir
}

// archive packs dir as kind (tar, tgz, zip) under a top-level directory
// named "bundle", which deploy-local must strip.
func archive(t *testing.T, dir, kind string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle."+kind)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	walk := func(add func(rel string, fi fs.FileInfo, content []byte)) {
		err := filepath.Walk(dir, func(p string, fi fs.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if rel == "." {
				return nil
			}
			var content []byte
			if fi.Mode().IsRegular() {
				if content, err = os.ReadFile(p); err != nil {
					return err
				}
			}
			add("bundle/"+filepath.ToSlash(rel), fi, content)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	switch kind {
	case "tar", "tgz":
		var w io.Writer = f
		var gz *gzip.Writer
		if kind == "tgz" {
			gz = gzip.NewWriter(f)
			w = gz
		}
		tw := tar.NewWriter(w)
		walk(func(rel string, fi fs.FileInfo, content []byte) {
			hdr, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				t.Fatal(err)
			}
			hdr.Name = rel
			if fi.IsDir() {
				hdr.Name += "/"
			}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(content); err != nil {
				t.Fatal(err)
			}
		})
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if gz != nil {
			if err := gz.Close(); err != nil {
				t.Fatal(err)
			}
		}
	case "zip":
		zw := zip.NewWriter(f)
		walk(func(rel string, fi fs.FileInfo, content []byte) {
			hdr, err := zip.FileInfoHeader(fi)
			if err != nil {
				t.Fatal(err)
			}
			hdr.Name = rel
			if fi.IsDir() {
				hdr.Name += "/"
			}
			w, err := zw.CreateHeader(hdr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(content); err != nil {
				t.Fatal(err)
			}
		})
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown archive kind %q", kind)
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deployLocal(t *testing.T, stateDir, root, bundle, rev string, extra ...string) result {
	t.Helper()
	args := append([]string{"deploy-local", "--bundle", bundle, "--state-dir", stateDir, "--root", root,
		"--app", "hello", "--group", "test", "--revision", rev, "--systemd", "off"}, extra...)
	return drover(t, nil, args...)
}

func TestDeployLocalBundleFormats(t *testing.T) {
	for _, kind := range []string{"dir", "tar", "tgz", "zip"} {
		t.Run(kind, func(t *testing.T) {
			src := appBundle(t, "", map[string]string{"index.html": "hello " + kind, "sub/data.txt": "data"})
			b := src
			if kind != "dir" {
				b = archive(t, src, kind)
			}
			state, root := t.TempDir(), t.TempDir()
			r := deployLocal(t, state, root, b, "v1")
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if got := readFile(t, filepath.Join(root, "opt/app/index.html")); got != "hello "+kind {
				t.Errorf("installed index.html = %q", got)
			}
			if got := readFile(t, filepath.Join(root, "opt/app/sub/data.txt")); got != "data" {
				t.Errorf("installed sub/data.txt = %q", got)
			}
			// First deployment: the previous-revision events are skipped.
			want := "BeforeInstall v1\nAfterInstall v1\nApplicationStart v1\nValidateService v1\nBeforeAllowTraffic v1\nAfterAllowTraffic v1\n"
			if got := readFile(t, filepath.Join(root, "trace")); got != want {
				t.Errorf("trace:\n%s\nwant:\n%s", got, want)
			}
			if !strings.Contains(r.stdout, "succeeded") {
				t.Errorf("stdout does not say succeeded:\n%s", r.stdout)
			}
		})
	}
}

func TestDeployLocalSuccessiveDeployments(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	v1 := appBundle(t, "", map[string]string{"a.txt": "a1", "b.txt": "b1", "only1/x.txt": "x"})
	v2 := appBundle(t, "", map[string]string{"b.txt": "b2", "c.txt": "c2"})
	if r := deployLocal(t, state, root, v1, "v1"); r.code != 0 {
		t.Fatalf("v1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A file nobody installed must survive both deployments.
	writeTree(t, filepath.Join(root, "opt/app"), map[string]string{"local.conf": "mine"})
	if err := os.Remove(filepath.Join(root, "trace")); err != nil {
		t.Fatal(err)
	}
	if r := deployLocal(t, state, root, v2, "v2"); r.code != 0 {
		t.Fatalf("v2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := "BeforeBlockTraffic v2\nAfterBlockTraffic v2\nApplicationStop v2\nBeforeInstall v2\nAfterInstall v2\nApplicationStart v2\nValidateService v2\nBeforeAllowTraffic v2\nAfterAllowTraffic v2\n"
	if got := readFile(t, filepath.Join(root, "trace")); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
	for _, gone := range []string{"opt/app/a.txt", "opt/app/only1/x.txt", "opt/app/only1"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after v2 (err %v); only v1 installed it", gone, err)
		}
	}
	if got := readFile(t, filepath.Join(root, "opt/app/b.txt")); got != "b2" {
		t.Errorf("b.txt = %q, want v2's", got)
	}
	if got := readFile(t, filepath.Join(root, "opt/app/c.txt")); got != "c2" {
		t.Errorf("c.txt = %q, want v2's", got)
	}
	if got := readFile(t, filepath.Join(root, "opt/app/local.conf")); got != "mine" {
		t.Errorf("local.conf = %q: a file no deployment installed was touched", got)
	}
}

// TestDeployLocalStopRunsPreviousScripts checks that ApplicationStop runs
// the last successful revision's script, not the new one's.
func TestDeployLocalStopRunsPreviousScripts(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	mk := func(tag string) string {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{
			"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  ApplicationStop:\n    - location: stop.sh\n  BeforeInstall:\n    - location: before.sh\n",
			"stop.sh":     "#!/bin/sh\necho stop-from-" + tag + " >> \"$DROVER_ROOT/order\"\n",
			"before.sh":   "#!/bin/sh\necho before-install-" + tag + " >> \"$DROVER_ROOT/order\"\n",
		})
		return dir
	}
	for _, tag := range []string{"one", "two"} {
		if r := deployLocal(t, state, root, mk(tag), tag); r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", tag, r.code, r.stdout, r.stderr)
		}
	}
	want := "before-install-one\nstop-from-one\nbefore-install-two\n"
	if got := readFile(t, filepath.Join(root, "order")); got != want {
		t.Errorf("order:\n%s\nwant:\n%s", got, want)
	}
}

func TestDeployLocalFileExistsBehavior(t *testing.T) {
	for _, tc := range []struct {
		behavior string
		wantCode int
		want     string
	}{
		{"", 1, "existing"}, // DISALLOW is the default
		{"DISALLOW", 1, "existing"},
		{"OVERWRITE", 0, "from bundle"},
		{"RETAIN", 0, "existing"},
	} {
		t.Run("behavior="+tc.behavior, func(t *testing.T) {
			state, root := t.TempDir(), t.TempDir()
			writeTree(t, filepath.Join(root, "opt/app"), map[string]string{"index.html": "existing"})
			b := appBundle(t, tc.behavior, map[string]string{"index.html": "from bundle"})
			r := deployLocal(t, state, root, b, "v1")
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			if tc.wantCode != 0 && !(strings.Contains(r.stderr, "Install") && strings.Contains(r.stderr, "index.html")) {
				t.Errorf("failure message should name the Install event and the file:\n%s", r.stderr)
			}
			if got := readFile(t, filepath.Join(root, "opt/app/index.html")); got != tc.want {
				t.Errorf("index.html = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDeployLocalFailingHook(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: check.sh\n      timeout: 30\n",
		"check.sh":    "#!/bin/sh\necho checking the service\necho 'service is down' >&2\nexit 3\n",
	})
	r := deployLocal(t, state, root, dir, "bad")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"ValidateService", "check.sh", "exit code 3", "service is down"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestDeployLocalScriptEnvironment(t *testing.T) {
	state, root := t.TempDir(), t.TempDir()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: scripts/env.sh\n",
		"scripts/env.sh": "#!/bin/sh\nfor v in LIFECYCLE_EVENT DEPLOYMENT_ID APPLICATION_NAME DEPLOYMENT_GROUP_NAME DEPLOYMENT_GROUP_ID DROVER_HOST DROVER_REVISION DROVER_ROOT; do\n" +
			"  eval \"echo $v=\\$$v\"\ndone > \"$DROVER_ROOT/env\"\npwd > \"$DROVER_ROOT/pwd\"\n",
	})
	r := deployLocal(t, state, root, dir, "rev-7", "--host", "web-3")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(root, "env"))), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{
		"LIFECYCLE_EVENT": "AfterInstall", "APPLICATION_NAME": "hello", "DEPLOYMENT_GROUP_NAME": "test",
		"DROVER_HOST": "web-3", "DROVER_REVISION": "rev-7", "DROVER_ROOT": root,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["DEPLOYMENT_ID"], "d-") || len(env["DEPLOYMENT_ID"]) != 14 {
		t.Errorf("DEPLOYMENT_ID = %q, want d- and 12 hex digits", env["DEPLOYMENT_ID"])
	}
	if len(env["DEPLOYMENT_GROUP_ID"]) != 36 {
		t.Errorf("DEPLOYMENT_GROUP_ID = %q, want a UUID", env["DEPLOYMENT_GROUP_ID"])
	}
	// Scripts run in the bundle root: the revision archive in the state dir.
	pwd := strings.TrimSpace(readFile(t, filepath.Join(root, "pwd")))
	if !strings.HasPrefix(pwd, state) || filepath.Base(pwd) != "bundle" {
		t.Errorf("script ran in %q, want the bundle root under %s", pwd, state)
	}
}
