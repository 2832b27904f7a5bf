package packaging

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// built is the result of one packaging/build.sh run.
type built struct {
	version string
	deb     string
	rpm     string
}

// buildPackages runs build.sh into a temporary directory with the default
// (git) version, as CI and a release would.
func buildPackages(t *testing.T) built {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: building packages takes a minute")
	}
	needTool(t, "bash", "build.sh is a bash script")
	needTool(t, "git", "build.sh takes the version from git")
	needTool(t, "go", "build.sh builds drover and runs nfpm with go run")
	needTool(t, "gzip", "man page and changelog")
	root := repoRoot(t)
	if run(t, time.Minute, root, nil, "git", "rev-parse", "HEAD").err != nil {
		t.Skip("not in a git checkout: build.sh takes the version from git")
	}
	version := strings.TrimSpace(mustRun(t, time.Minute, root, nil, "bash", "packaging/build.sh", "--print-version"))
	dist := t.TempDir()
	start := time.Now()
	out := mustRun(t, 10*time.Minute, root, []string{"DIST=" + dist}, "bash", "packaging/build.sh")
	t.Logf("build.sh (%s):\n%s", time.Since(start).Round(time.Second), out)
	b := built{
		version: version,
		deb:     filepath.Join(dist, "drover_"+version+"_amd64.deb"),
		rpm:     filepath.Join(dist, "drover-"+version+"-1.x86_64.rpm"),
	}
	for _, p := range []string{b.deb, b.rpm} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("build.sh did not write %s: %v", p, err)
		}
		t.Logf("%s: %d bytes (%.1f MiB)", filepath.Base(p), st.Size(), float64(st.Size())/(1<<20))
	}
	return b
}

// TestPackages builds the .deb and .rpm once and checks them: contents,
// conffiles, maintainer scripts, dependencies, lintian, and (as root) a
// real install, upgrade, remove and purge of the .deb.
func TestPackages(t *testing.T) {
	b := buildPackages(t)
	want := expectedFiles(t)
	t.Run("deb", func(t *testing.T) { checkDeb(t, b, want) })
	t.Run("rpm", func(t *testing.T) { checkRPM(t, b, want) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, b) })
	t.Run("install", func(t *testing.T) { checkInstall(t, b) })
}

// fileSpec is a path the packages must hold, with its mode, for both
// formats unless deb/rpm say otherwise.
type fileSpec struct {
	path string
	mode string // ls -l style, e.g. -rwxr-xr-x
	deb  bool
	rpm  bool
}

// expectedFiles lists every regular file both packages must have.
func expectedFiles(t *testing.T) []fileSpec {
	t.Helper()
	specs := []fileSpec{
		{"/usr/bin/drover", "-rwxr-xr-x", true, true},
		{"/lib/systemd/system/drover.service", "-rw-r--r--", true, false},
		{"/usr/lib/systemd/system/drover.service", "-rw-r--r--", false, true},
		{"/etc/drover/drover.yaml", "-rw-r--r--", true, true},
		{"/usr/share/man/man1/drover.1.gz", "-rw-r--r--", true, true},
		{"/usr/share/bash-completion/completions/drover", "-rw-r--r--", true, true},
		{"/usr/share/zsh/vendor-completions/_drover", "-rw-r--r--", true, false},
		{"/usr/share/zsh/site-functions/_drover", "-rw-r--r--", false, true},
		{"/usr/share/fish/vendor_completions.d/drover.fish", "-rw-r--r--", true, true},
		{"/usr/share/doc/drover/README.packaging.md", "-rw-r--r--", true, true},
		{"/usr/share/doc/drover/copyright", "-rw-r--r--", true, false},
		{"/usr/share/doc/drover/changelog.gz", "-rw-r--r--", true, false},
		{"/usr/share/lintian/overrides/drover", "-rw-r--r--", true, false},
		{"/usr/share/licenses/drover/LICENSE", "-rw-r--r--", false, true},
	}
	// Every file of deploy-examples/ but Go sources, with its executable bit.
	root := filepath.Join(repoRoot(t), "deploy-examples")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := "-rw-r--r--"
		if info.Mode().Perm()&0o111 != 0 {
			mode = "-rwxr-xr-x"
		}
		specs = append(specs, fileSpec{"/usr/share/doc/drover/examples/" + filepath.ToSlash(rel), mode, true, true})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "hello-web", "appspec.yml")); err == nil {
		found := false
		for _, f := range specs {
			found = found || f.path == "/usr/share/doc/drover/examples/hello-web/appspec.yml"
		}
		if !found {
			t.Fatal("hello-web/appspec.yml missing from the expected files")
		}
	}
	return specs
}

var debListRE = regexp.MustCompile(`^([-dlrwxst]{10}) (\S+)/(\S+)\s+\d+ \S+ \S+ \.(/\S*)`)

func checkDeb(t *testing.T, b built, want []fileSpec) {
	needTool(t, "dpkg-deb", "Debian package dpkg")
	// Contents: exactly the expected files, with their modes and root owner.
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, time.Minute, "", nil, "dpkg-deb", "-c", b.deb)), "\n") {
		m := debListRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		if m[2] != "root" || m[3] != "root" {
			t.Errorf("%s is owned by %s/%s, want root/root", m[4], m[2], m[3])
		}
		got[strings.TrimSuffix(m[4], "/")] = m[1]
	}
	wantSet := map[string]bool{}
	for _, f := range want {
		if !f.deb {
			continue
		}
		wantSet[f.path] = true
		if got[f.path] != f.mode {
			t.Errorf("deb: %s: mode %q, want %q", f.path, got[f.path], f.mode)
		}
	}
	if got["/var/lib/drover"] != "drwx------" {
		t.Errorf("deb: /var/lib/drover: %q, want drwx------", got["/var/lib/drover"])
	}
	for p, mode := range got {
		if mode[0] != 'd' && !wantSet[p] {
			t.Errorf("deb: unexpected file %s", p)
		}
	}

	// Control: fields, conffiles, maintainer scripts.
	info := mustRun(t, time.Minute, "", nil, "dpkg-deb", "-I", b.deb)
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^ ` + name + `: (.*)$`).FindStringSubmatch(info)
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, c := range []struct{ name, want string }{
		{"Package", "drover"}, {"Version", b.version}, {"Architecture", "amd64"},
		{"Section", "admin"}, {"Priority", "optional"}, {"Recommends", "acl, systemd"},
		// Static binary: no library dependency, nothing else to install.
		{"Depends", ""}, {"Pre-Depends", ""}, {"Conflicts", ""},
	} {
		if got := field(c.name); got != c.want {
			t.Errorf("deb: %s: %q, want %q", c.name, got, c.want)
		}
	}
	ctl := t.TempDir()
	mustRun(t, time.Minute, "", nil, "dpkg-deb", "-e", b.deb, ctl)
	conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/drover/drover.yaml" {
		t.Errorf("deb: conffiles %q (%v), want /etc/drover/drover.yaml", conffiles, err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		gotS, err := os.ReadFile(filepath.Join(ctl, s))
		if err != nil {
			t.Errorf("deb: no %s: %v", s, err)
			continue
		}
		if !bytes.Equal(gotS, readFile(t, "packaging/deb/"+s)) {
			t.Errorf("deb: %s differs from packaging/deb/%s", s, s)
		}
		if st, err := os.Stat(filepath.Join(ctl, s)); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("deb: %s mode %v, want 0755", s, st.Mode())
		}
	}
	if _, err := os.Stat(filepath.Join(ctl, "preinst")); err == nil {
		t.Error("deb: unexpected preinst")
	}

	// Data: the files are the right ones, and the generated ones work.
	data := t.TempDir()
	mustRun(t, time.Minute, "", nil, "dpkg-deb", "-x", b.deb, data)
	for src, dst := range map[string]string{
		"packaging/drover.yaml":    "etc/drover/drover.yaml",
		"packaging/drover.service": "lib/systemd/system/drover.service",
	} {
		gotF, err := os.ReadFile(filepath.Join(data, dst))
		if err != nil || !bytes.Equal(gotF, readFile(t, src)) {
			t.Errorf("deb: /%s is not %s (%v)", dst, src, err)
		}
	}
	ver := mustRun(t, time.Minute, "", nil, filepath.Join(data, "usr/bin/drover"), "version")
	if !strings.Contains(ver, "drover "+b.version+"\n") {
		t.Errorf("deb: drover version says %q, want version %s", ver, b.version)
	}
	head := strings.TrimSpace(mustRun(t, time.Minute, "", nil, "git", "-C", repoRoot(t), "rev-parse", "HEAD"))
	if !strings.Contains(ver, "commit "+head) {
		t.Errorf("deb: drover version says %q, want commit %s", ver, head)
	}
	if f := mustRun(t, time.Minute, "", nil, "file", "-b", filepath.Join(data, "usr/bin/drover")); !strings.Contains(f, "statically linked") || strings.Contains(f, "not stripped") {
		t.Errorf("deb: /usr/bin/drover is %q, want a stripped static binary", f)
	}
	man := gunzip(t, filepath.Join(data, "usr/share/man/man1/drover.1.gz"))
	for _, w := range []string{`.TH "DROVER" 1`, `.SH SYNOPSIS`, `drover deploy\-local`, `\fB\-\-config\fR`} {
		if !strings.Contains(man, w) {
			t.Errorf("deb: man page lacks %q", w)
		}
	}
	if _, err := exec.LookPath("man"); err == nil {
		r := run(t, time.Minute, "", []string{"MANWIDTH=80", "LC_ALL=C.UTF-8"}, "man", "--warnings", "-l", filepath.Join(data, "usr/share/man/man1/drover.1.gz"))
		if r.err != nil || strings.TrimSpace(r.stderr) != "" {
			t.Errorf("deb: man --warnings: %v\n%s", r.err, r.stderr)
		}
	}
	for p, w := range map[string]string{
		"usr/share/bash-completion/completions/drover":    "__start_drover",
		"usr/share/zsh/vendor-completions/_drover":        "#compdef drover",
		"usr/share/fish/vendor_completions.d/drover.fish": "complete -c drover",
	} {
		c, err := os.ReadFile(filepath.Join(data, p))
		if err != nil || !strings.Contains(string(c), w) {
			t.Errorf("deb: /%s lacks %q (%v)", p, w, err)
		}
	}
	// The scripts ask the binary for candidates (cobra's __complete).
	if c := mustRun(t, time.Minute, "", nil, filepath.Join(data, "usr/bin/drover"), "__complete", "vers"); !strings.HasPrefix(c, "version") {
		t.Errorf("deb: drover __complete vers: %q, want version", c)
	}
	cl := gunzip(t, filepath.Join(data, "usr/share/doc/drover/changelog.gz"))
	if !strings.HasPrefix(cl, "drover ("+b.version+") ") {
		t.Errorf("deb: changelog starts %q", strings.SplitN(cl, "\n", 2)[0])
	}
}

func gunzip(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return string(b)
}

func checkRPM(t *testing.T, b built, want []fileSpec) {
	rpm := needTool(t, "rpm", "Debian package rpm; .ci/run installs it")
	q := func(args ...string) string {
		return mustRun(t, time.Minute, "", nil, rpm, append([]string{"-qp"}, append(args, b.rpm)...)...)
	}
	if got := q("--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}"); got != "drover "+b.version+" 1 x86_64" {
		t.Errorf("rpm: %q, want drover %s 1 x86_64", got, b.version)
	}
	// -qpl: exactly the expected files (directories rpm lists are the
	// examples' and /var/lib/drover).
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(q("--queryformat", `[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]`)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("rpm line %q", l)
		}
		if f[1] != "root:root" {
			t.Errorf("rpm: %s is owned by %s", f[2], f[1])
		}
		got[f[2]] = f[0]
	}
	list := strings.Fields(q("-l"))
	if len(list) != len(got) {
		t.Errorf("rpm -qpl lists %d paths, the file modes %d", len(list), len(got))
	}
	wantSet := map[string]bool{}
	for _, f := range want {
		if !f.rpm {
			continue
		}
		wantSet[f.path] = true
		if got[f.path] != f.mode {
			t.Errorf("rpm: %s: mode %q, want %q", f.path, got[f.path], f.mode)
		}
	}
	if got["/var/lib/drover"] != "drwx------" {
		t.Errorf("rpm: /var/lib/drover: %q, want drwx------", got["/var/lib/drover"])
	}
	for p, mode := range got {
		if mode[0] != 'd' && !wantSet[p] {
			t.Errorf("rpm: unexpected file %s", p)
		}
	}
	// -qpc: the config file, noreplace.
	if c := strings.TrimSpace(q("-c")); c != "/etc/drover/drover.yaml" {
		t.Errorf("rpm -qpc: %q, want /etc/drover/drover.yaml", c)
	}
	flags := q("--queryformat", `[%{FILEFLAGS:fflags} %{FILENAMES}\n]`)
	if !regexp.MustCompile(`(?m)^cn /etc/drover/drover.yaml$`).MatchString(flags) {
		t.Errorf("rpm: drover.yaml is not %%config(noreplace):\n%s", flags)
	}
	// Scripts: the three of packaging/rpm, nothing else.
	scripts := q("--scripts")
	for _, s := range []struct{ name, file string }{
		{"postinstall scriptlet", "post.sh"}, {"preuninstall scriptlet", "preun.sh"}, {"postuninstall scriptlet", "postun.sh"},
	} {
		body := strings.TrimSpace(string(readFile(t, "packaging/rpm/"+s.file)))
		if !strings.Contains(scripts, s.name) || !strings.Contains(scripts, body) {
			t.Errorf("rpm: %s is not packaging/rpm/%s", s.name, s.file)
		}
	}
	for _, s := range []string{"preinstall scriptlet", "pretrans scriptlet", "posttrans scriptlet"} {
		if strings.Contains(scripts, s) {
			t.Errorf("rpm: unexpected %s", s)
		}
	}
	// Dependencies: none but rpm's own features; acl and systemd recommended.
	for _, r := range strings.Split(strings.TrimSpace(q("-R")), "\n") {
		if r != "" && !strings.HasPrefix(r, "rpmlib(") && r != "/bin/sh" {
			t.Errorf("rpm: unexpected requirement %q", r)
		}
	}
	if rec := strings.Fields(q("--recommends")); strings.Join(rec, " ") != "acl systemd" {
		t.Errorf("rpm: recommends %q, want acl systemd", rec)
	}
}

func checkLintian(t *testing.T, b built) {
	lintian := needTool(t, "lintian", "Debian package lintian; .ci/run installs it")
	// Overridden tags (see packaging/deb/lintian-overrides) are not shown:
	// with --show-overrides lintian counts them towards its exit status.
	r := run(t, 5*time.Minute, "", nil, lintian, "--pedantic", "--display-info", b.deb)
	out := strings.TrimSpace(r.stdout + r.stderr)
	t.Logf("lintian --pedantic --display-info:\n%s", out)
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") {
			errs = append(errs, l)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("lintian errors:\n%s", strings.Join(errs, "\n"))
	}
	var ee *exec.ExitError
	if r.err != nil && !errors.As(r.err, &ee) {
		t.Fatalf("lintian: %v", r.err)
	}
	if r.err != nil {
		// 1: lintian itself failed; 2: an error-level tag (--fail-on error).
		t.Fatalf("lintian: %v", r.err)
	}
}

// installPaths are the paths the install test creates or must leave alone.
var installPaths = []string{"/usr/bin/drover", "/etc/drover", "/var/lib/drover", "/lib/systemd/system/drover.service"}

// checkInstall installs the .deb on this machine, upgrades it over itself,
// removes and purges it, and checks that nothing is left. It changes the
// machine, so it runs only as root, only where no drover is installed, and
// it purges what it installed even when it fails.
func checkInstall(t *testing.T, b built) {
	needRoot(t, "dpkg -i installs the package on this machine")
	needTool(t, "dpkg", "Debian package dpkg")
	needTool(t, "dpkg-query", "Debian package dpkg")
	needTool(t, "systemctl", "Debian package systemd; the test disables the unit as an administrator would")
	if st := dpkgStatus(t); st != "" {
		t.Skipf("a drover package is already known to dpkg here (%q); not touching it", st)
	}
	for _, p := range installPaths {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists and belongs to no drover package; installing would overwrite it and purging delete it", p)
		}
	}
	// Directories of the package that exist already (/usr/bin, ...) must
	// still exist after the purge; the others must be gone.
	preexisting := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, time.Minute, "", nil, "dpkg-deb", "-c", b.deb)), "\n") {
		if m := debListRE.FindStringSubmatch(l); m != nil {
			p := strings.TrimSuffix(m[4], "/")
			if _, err := os.Lstat(p); err == nil {
				preexisting[p] = true
			}
		}
	}
	t.Cleanup(func() {
		if dpkgStatus(t) != "" {
			r := run(t, 5*time.Minute, "", nil, "dpkg", "--purge", "drover")
			t.Logf("cleanup: dpkg --purge drover: %v\n%s", r.err, r)
		}
	})

	r := run(t, 5*time.Minute, "", nil, "dpkg", "-i", b.deb)
	t.Logf("dpkg -i:\n%s", r)
	if r.err != nil {
		t.Fatalf("dpkg -i: %v", r.err)
	}
	if st := dpkgStatus(t); st != "install ok installed "+b.version {
		t.Fatalf("after dpkg -i: status %q", st)
	}
	ver := mustRun(t, time.Minute, "/", nil, "/usr/bin/drover", "version")
	if !strings.HasPrefix(ver, "drover "+b.version+"\n") {
		t.Errorf("/usr/bin/drover version: %q", ver)
	}
	if st, err := os.Stat("/var/lib/drover"); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("/var/lib/drover: %v %v, want a 0700 directory", st, err)
	}
	// Enabled even without a running systemd: the symlink exists.
	const wants = "/etc/systemd/system/multi-user.target.wants/drover.service"
	if dst, err := os.Readlink(wants); err != nil || dst != "/lib/systemd/system/drover.service" {
		t.Errorf("not enabled: %s -> %q (%v)", wants, dst, err)
	}
	if c := mustRun(t, time.Minute, "", nil, "dpkg-query", "-W", "-f=${Conffiles}", "drover"); !strings.Contains(c, "/etc/drover/drover.yaml ") {
		t.Errorf("dpkg does not know /etc/drover/drover.yaml as a conffile: %q", c)
	}

	// Upgrade (the same package again: postinst configure <old version>).
	// The administrator's edit of the config and `disable` survive it.
	const edit = "\n# edited by the administrator\n"
	appendFile(t, "/etc/drover/drover.yaml", edit)
	// --root: offline, whatever /run/systemd/system says (see README).
	mustRun(t, time.Minute, "", nil, "systemctl", "--root=/", "disable", "drover.service")
	r = run(t, 5*time.Minute, "", nil, "dpkg", "-i", b.deb)
	t.Logf("dpkg -i (upgrade):\n%s", r)
	if r.err != nil {
		t.Fatalf("dpkg -i again: %v", r.err)
	}
	if c, err := os.ReadFile("/etc/drover/drover.yaml"); err != nil || !strings.HasSuffix(string(c), edit) {
		t.Errorf("upgrade lost the edit of /etc/drover/drover.yaml (%v)", err)
	}
	if _, err := os.Lstat(wants); err == nil {
		t.Errorf("upgrade enabled the unit again after the administrator disabled it")
	}

	// State written by the agent survives remove and goes with purge.
	if err := os.WriteFile("/var/lib/drover/state.json", []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	listed := strings.Split(strings.TrimSpace(mustRun(t, time.Minute, "", nil, "dpkg", "-L", "drover")), "\n")
	if len(listed) < 10 {
		t.Fatalf("dpkg -L drover lists only %d paths", len(listed))
	}

	r = run(t, 5*time.Minute, "", nil, "dpkg", "-r", "drover")
	t.Logf("dpkg -r:\n%s", r)
	if r.err != nil {
		t.Fatalf("dpkg -r: %v", r.err)
	}
	if st := dpkgStatus(t); !strings.HasPrefix(st, "deinstall ok config-files") {
		t.Errorf("after dpkg -r: status %q, want deinstall ok config-files", st)
	}
	for _, p := range []string{"/usr/bin/drover", "/lib/systemd/system/drover.service"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after dpkg -r: %s is still there", p)
		}
	}
	for _, p := range []string{"/etc/drover/drover.yaml", "/var/lib/drover/state.json"} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("after dpkg -r: %s is gone (%v); remove keeps configuration and state", p, err)
		}
	}

	r = run(t, 5*time.Minute, "", nil, "dpkg", "--purge", "drover")
	t.Logf("dpkg --purge:\n%s", r)
	if r.err != nil {
		t.Fatalf("dpkg --purge: %v", r.err)
	}
	if st := dpkgStatus(t); st != "" {
		t.Errorf("after dpkg --purge: status %q, want unknown to dpkg", st)
	}
	left := []string{}
	for _, p := range listed {
		if p == "/." || preexisting[p] {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	for _, p := range append(installPaths, "/etc/drover", "/var/lib/drover") {
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	// Enablement, masks and deb-systemd-helper's records.
	for _, dir := range []string{"/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "drover") {
				left = append(left, p)
			}
			return nil
		})
	}
	sort.Strings(left)
	if len(left) > 0 {
		t.Errorf("after dpkg --purge these are left:\n%s", strings.Join(left, "\n"))
	}
}

// dpkgStatus is dpkg's "Status Version" of drover, "" when dpkg does not
// know the package.
func dpkgStatus(t *testing.T) string {
	t.Helper()
	r := run(t, time.Minute, "", nil, "dpkg-query", "-W", "-f=${Status} ${Version}", "drover")
	st := strings.TrimSpace(r.stdout)
	if r.err != nil || strings.HasPrefix(st, "unknown ok not-installed") || strings.HasSuffix(st, "not-installed") {
		return ""
	}
	return st
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
