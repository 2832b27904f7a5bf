package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/drover-dev/drover/hooks/appspec"
)

// fsEnt describes one entry of a test tree: content for a file, "->target"
// for a symbolic link, "/" suffix on the name for a directory.
type fsEnt struct {
	name string
	body string
	mode fs.FileMode
}

func makeTree(t testing.TB, dir string, ents ...fsEnt) {
	t.Helper()
	for _, e := range ents {
		p := filepath.Join(dir, e.name)
		if strings.HasSuffix(e.name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(e.body, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, []byte(e.body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree lists dir as sorted "rel", "rel/" and "rel -> target" lines.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type env struct {
	root    string // --root
	bundle  string
	state   string
	nextID  int
	prevLst string
}

func newEnv(t testing.TB) *env {
	return &env{root: t.TempDir(), bundle: t.TempDir(), state: t.TempDir()}
}

// deploy installs spec from a fresh bundle made of ents, chaining cleanup
// lists from one deploy to the next, as the lifecycle runner does.
func (e *env) deploy(t testing.TB, spec *appspec.AppSpec, ents []fsEnt, tweak func(*installer)) (Result, error) {
	t.Helper()
	e.nextID++
	bundle := filepath.Join(e.bundle, strconv.Itoa(e.nextID))
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, bundle, ents...)
	list := filepath.Join(e.state, fmt.Sprintf("cleanup-%d", e.nextID))
	in, err := newInstaller(Options{Root: e.root, BundleDir: bundle, CleanupFile: list, PrevCleanupFile: e.prevLst})
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(in)
	}
	res, err := in.run(context.Background(), spec)
	if err == nil {
		e.prevLst = list
	}
	return res, err
}

func (e *env) path(p string) string { return filepath.Join(e.root, p) }

func specOf(b appspec.FileExistsBehavior, files ...appspec.File) *appspec.AppSpec {
	return &appspec.AppSpec{Path: "appspec.yml", Version: "0.0", OS: "linux", Files: files, FileExistsBehavior: b}
}

func TestInstallCopiesAsCodeDeploy(t *testing.T) {
	bundle := []fsEnt{
		{name: "appspec.yml", body: "version: 0.0\n"},
		{name: "app/run.sh", body: "#!/bin/sh\n", mode: 0o750},
		{name: "app/lib/x.so", body: "x"},
		{name: "app/current", body: "->run.sh"},
		{name: "app/empty/"},
		{name: "conf/app.conf", body: "c"},
	}
	cases := []struct {
		name  string
		files []appspec.File
		want  []string
	}{
		{
			name:  "whole bundle, appspec.yml included",
			files: []appspec.File{{Source: "/", Destination: "/opt/app"}},
			want: []string{"opt/", "opt/app/", "opt/app/app/", "opt/app/app/current -> run.sh", "opt/app/app/empty/",
				"opt/app/app/lib/", "opt/app/app/lib/x.so", "opt/app/app/run.sh", "opt/app/appspec.yml", "opt/app/conf/", "opt/app/conf/app.conf"},
		},
		{
			name:  "empty source is the whole bundle",
			files: []appspec.File{{Source: "", Destination: "/o"}},
			want: []string{"o/", "o/app/", "o/app/current -> run.sh", "o/app/empty/", "o/app/lib/", "o/app/lib/x.so",
				"o/app/run.sh", "o/appspec.yml", "o/conf/", "o/conf/app.conf"},
		},
		{
			name:  "directory source: its contents into the destination",
			files: []appspec.File{{Source: "app", Destination: "/srv/www"}},
			want:  []string{"srv/", "srv/www/", "srv/www/current -> run.sh", "srv/www/empty/", "srv/www/lib/", "srv/www/lib/x.so", "srv/www/run.sh"},
		},
		{
			name:  "file source: into the destination directory under its name",
			files: []appspec.File{{Source: "conf/app.conf", Destination: "/etc/app"}},
			want:  []string{"etc/", "etc/app/", "etc/app/app.conf"},
		},
		{
			name:  "link source is copied as a link",
			files: []appspec.File{{Source: "app/current", Destination: "/bin"}},
			want:  []string{"bin/", "bin/current -> run.sh"},
		},
		{
			name:  "dot-dot in source stays inside the bundle",
			files: []appspec.File{{Source: "../../conf/app.conf", Destination: "/e"}},
			want:  []string{"e/", "e/app.conf"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			res, err := e.deploy(t, specOf("", tc.files...), bundle, nil)
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			got := listTree(t, e.root)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			files, dirs := 0, 0
			for _, w := range tc.want {
				if strings.HasSuffix(w, "/") {
					dirs++
				} else {
					files++
				}
			}
			if res.Files != files || res.Dirs != dirs {
				t.Errorf("result %+v, want %d files, %d dirs", res, files, dirs)
			}
			// Every created entry is in the cleanup list, parents before children.
			ents := parseCleanupList(readFile(t, e.prevLst))
			if len(ents) != len(tc.want) {
				t.Errorf("cleanup list has %d entries, want %d", len(ents), len(tc.want))
			}
			pos := map[string]int{}
			for i, c := range ents {
				pos[c.path] = i
			}
			for _, w := range tc.want {
				p := e.path(strings.TrimSuffix(strings.SplitN(w, " -> ", 2)[0], "/"))
				i, ok := pos[p]
				if !ok {
					t.Errorf("cleanup list lacks %s", p)
					continue
				}
				if j, ok := pos[filepath.Dir(p)]; ok && j > i {
					t.Errorf("cleanup list names %s before its parent", p)
				}
			}
		})
	}
}

// TestDeferSync: with DeferSync, Install leaves the flush to its caller and
// names one directory per file system it wrote to; without, it flushes and
// names none.
func TestDeferSync(t *testing.T) {
	spec := specOf("", appspec.File{Source: "/", Destination: "/a/b"})
	ents := []fsEnt{{name: "x", body: "x", mode: 0o644}, {name: "d/y", body: "y", mode: 0o644}}
	for _, deferSync := range []bool{false, true} {
		e := newEnv(t)
		res, err := e.deploy(t, spec, ents, func(in *installer) { in.opt.DeferSync = deferSync })
		if err != nil {
			t.Fatal(err)
		}
		if !deferSync {
			if len(res.Unsynced) != 0 {
				t.Errorf("without DeferSync, Unsynced = %v", res.Unsynced)
			}
			continue
		}
		// Everything went to one file system (the test's temp dir).
		if len(res.Unsynced) != 1 || !strings.HasPrefix(res.Unsynced[0], e.root) {
			t.Fatalf("Unsynced = %v, want one directory under %s", res.Unsynced, e.root)
		}
		if err := Sync(res.Unsynced); err != nil {
			t.Fatal(err)
		}
	}
	if err := Sync([]string{filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Sync of a missing directory: %v", err)
	}
}

func TestInstallPreservesModeAndTime(t *testing.T) {
	e := newEnv(t)
	if _, err := e.deploy(t, specOf("", appspec.File{Source: "/", Destination: "/a"}),
		[]fsEnt{{name: "x", body: "x", mode: fs.ModeSetuid | 0o751}}, nil); err != nil {
		t.Fatal(err)
	}
	src, _ := os.Stat(filepath.Join(e.bundle, "1/x"))
	fi, err := os.Stat(e.path("a/x"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != src.Mode() || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("mode %v, want %v", fi.Mode(), src.Mode())
	}
	if !fi.ModTime().Equal(src.ModTime()) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), src.ModTime())
	}
}

func TestFileExistsBehavior(t *testing.T) {
	bundle := []fsEnt{{name: "index.html", body: "new"}, {name: "other.html", body: "other"}}
	files := appspec.File{Source: "/", Destination: "/opt/app"}
	cases := []struct {
		behavior  appspec.FileExistsBehavior
		wantErr   bool
		wantIndex string
		listed    bool // index.html in this deployment's cleanup list
	}{
		{behavior: "", wantErr: true, wantIndex: "old"}, // default DISALLOW
		{behavior: appspec.Disallow, wantErr: true, wantIndex: "old"},
		{behavior: appspec.Overwrite, wantIndex: "new", listed: true},
		{behavior: appspec.Retain, wantIndex: "old"},
	}
	for _, tc := range cases {
		t.Run(string(tc.behavior), func(t *testing.T) {
			e := newEnv(t)
			makeTree(t, e.root, fsEnt{name: "opt/app/index.html", body: "old"})
			_, err := e.deploy(t, specOf(tc.behavior, files), bundle, nil)
			index := e.path("opt/app/index.html")
			if tc.wantErr {
				if !errors.Is(err, ErrFileExists) {
					t.Fatalf("Install error %v, want ErrFileExists", err)
				}
				want := fmt.Sprintf("install: %s exists and file_exists_behavior is DISALLOW", index)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
				// Nothing copied before the check.
				if _, serr := os.Lstat(e.path("opt/app/other.html")); serr == nil {
					t.Error("other.html copied despite the DISALLOW conflict")
				}
				if _, serr := os.Stat(filepath.Join(e.state, "cleanup-1")); serr == nil {
					if s := readFile(t, filepath.Join(e.state, "cleanup-1")); s != "" {
						t.Errorf("cleanup list written despite the conflict: %q", s)
					}
				}
			} else if err != nil {
				t.Fatalf("Install: %v", err)
			}
			if got := readFile(t, index); got != tc.wantIndex {
				t.Errorf("index.html = %q, want %q", got, tc.wantIndex)
			}
			if tc.wantErr {
				return
			}
			if got := readFile(t, e.path("opt/app/other.html")); got != "other" {
				t.Errorf("other.html = %q", got)
			}
			listed := strings.Contains(readFile(t, e.prevLst), index+"\n")
			if listed != tc.listed {
				t.Errorf("index.html in cleanup list: %v, want %v", listed, tc.listed)
			}
		})
	}
}

func TestDisallowIgnoresPreviousDeploymentsFiles(t *testing.T) {
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	if _, err := e.deploy(t, spec, []fsEnt{{name: "a", body: "1"}}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.deploy(t, spec, []fsEnt{{name: "a", body: "2"}}, nil)
	if err != nil {
		t.Fatalf("second Install: %v", err)
	}
	if got := readFile(t, e.path("opt/app/a")); got != "2" {
		t.Errorf("a = %q, want 2", got)
	}
	if res.Removed != 3 { // a, then /opt/app and /opt, empty once a is gone
		t.Errorf("Removed = %d, want 3", res.Removed)
	}
}

func TestDisallowLeavesPreviousDeploymentInPlace(t *testing.T) {
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	if _, err := e.deploy(t, spec, []fsEnt{{name: "a", body: "1"}}, nil); err != nil {
		t.Fatal(err)
	}
	makeTree(t, e.root, fsEnt{name: "opt/app/b", body: "user's"})
	_, err := e.deploy(t, spec, []fsEnt{{name: "a", body: "2"}, {name: "b", body: "2"}}, nil)
	if !errors.Is(err, ErrFileExists) {
		t.Fatalf("Install error %v, want ErrFileExists", err)
	}
	if got := readFile(t, e.path("opt/app/a")); got != "1" {
		t.Errorf("previous deployment's a = %q, want it untouched", got)
	}
}

func TestSuccessiveInstallsRemoveOnlyPreviousFiles(t *testing.T) {
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	first := []fsEnt{
		{name: "a", body: "1"}, {name: "b", body: "1"}, {name: "sub/c", body: "1"},
		{name: "kept/d", body: "1"}, {name: "l", body: "->a"},
	}
	if _, err := e.deploy(t, spec, first, nil); err != nil {
		t.Fatal(err)
	}
	// Files that are not the deployment's: next to its files, and inside a
	// directory it created (which must then stay).
	makeTree(t, e.root, fsEnt{name: "opt/app/user.txt", body: "u"}, fsEnt{name: "opt/app/kept/user.txt", body: "u"},
		fsEnt{name: "opt/other", body: "o"})
	second := []fsEnt{{name: "a", body: "2"}, {name: "e/f", body: "2"}}
	res, err := e.deploy(t, spec, second, nil)
	if err != nil {
		t.Fatalf("second Install: %v", err)
	}
	want := []string{"opt/", "opt/app/", "opt/app/a", "opt/app/e/", "opt/app/e/f", "opt/app/kept/", "opt/app/kept/user.txt", "opt/app/user.txt", "opt/other"}
	if got := listTree(t, e.root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := readFile(t, e.path("opt/app/a")); got != "2" {
		t.Errorf("a = %q", got)
	}
	// a, b, sub/c, sub, kept/d, l removed; kept, /opt/app, /opt not empty.
	if res.Removed != 6 {
		t.Errorf("Removed = %d, want 6", res.Removed)
	}
	// A third install with nothing removes the second's files and the
	// directories they leave empty, and only those.
	if _, err := e.deploy(t, specOf(appspec.Disallow), nil, nil); err != nil {
		t.Fatal(err)
	}
	want = []string{"opt/", "opt/app/", "opt/app/kept/", "opt/app/kept/user.txt", "opt/app/user.txt", "opt/other"}
	if got := listTree(t, e.root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree after third:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCrashMidInstallIsCleanedUpNextTime(t *testing.T) {
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	var bundle []fsEnt
	for i := range 50 {
		bundle = append(bundle, fsEnt{name: fmt.Sprintf("d%d/f%02d", i%3, i), body: "x"})
	}
	calls := 0
	errCrash := errors.New("simulated crash")
	_, err := e.deploy(t, spec, bundle, func(in *installer) {
		in.workers = 1
		in.batch = 8
		in.beforeCopy = func(dst string) error {
			calls++
			if calls == 20 {
				// The list must already name this file, before it exists.
				list := readFile(t, filepath.Join(e.state, "cleanup-1"))
				if !strings.Contains(list, dst+"\n") {
					t.Errorf("cleanup list does not name %s before it is copied", dst)
				}
				return errCrash
			}
			return nil
		}
	})
	if !errors.Is(err, errCrash) {
		t.Fatalf("Install error %v, want the simulated crash", err)
	}
	list := parseCleanupList(readFile(t, filepath.Join(e.state, "cleanup-1")))
	named := map[string]bool{}
	for _, c := range list {
		named[c.path] = true
	}
	copied := 0
	for _, p := range listTree(t, e.root) {
		p = e.path(strings.TrimSuffix(p, "/"))
		if !named[p] {
			t.Errorf("%s exists but the cleanup list does not name it", p)
		}
		if fi, _ := os.Lstat(p); fi != nil && fi.Mode().IsRegular() {
			copied++
		}
	}
	if copied != 19 {
		t.Errorf("%d files copied before the crash, want 19", copied)
	}
	// The next deployment, given the crashed one's list, cleans up after it.
	e.prevLst = filepath.Join(e.state, "cleanup-1")
	if _, err := e.deploy(t, spec, []fsEnt{{name: "only", body: "y"}}, nil); err != nil {
		t.Fatalf("next Install: %v", err)
	}
	want := []string{"opt/", "opt/app/", "opt/app/only"}
	if got := listTree(t, e.root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInstallErrors(t *testing.T) {
	cases := []struct {
		name   string
		files  []appspec.File
		bundle []fsEnt
		pre    []fsEnt // in the root before installing
		want   string
	}{
		{"missing source", []appspec.File{{Source: "nope", Destination: "/a", Line: 4}}, nil, nil, "source \"nope\""},
		{"relative destination", []appspec.File{{Source: "/", Destination: "a", Line: 4}}, nil, nil, "not an absolute path"},
		{"two sources one destination", []appspec.File{{Source: "x/f", Destination: "/a"}, {Source: "y/f", Destination: "/a"}},
			[]fsEnt{{name: "x/f", body: "1"}, {name: "y/f", body: "2"}}, nil, "two sources"},
		{"file where a directory is needed", []appspec.File{{Source: "/", Destination: "/a"}},
			[]fsEnt{{name: "d/f", body: "1"}}, []fsEnt{{name: "a/d", body: "file"}}, "exists and is not a directory"},
		{"newline in a name", []appspec.File{{Source: "/", Destination: "/a"}},
			[]fsEnt{{name: "bad\nname", body: "1"}}, nil, "newline"},
		{"source through a link out of the bundle", []appspec.File{{Source: "out/passwd", Destination: "/a"}},
			[]fsEnt{{name: "out", body: "->/etc"}}, nil, "leaves the bundle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			makeTree(t, e.root, tc.pre...)
			_, err := e.deploy(t, specOf(appspec.Overwrite, tc.files...), tc.bundle, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOverwriteReplacesLinkNotItsTarget(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(t.TempDir(), "victim")
	makeTree(t, filepath.Dir(outside), fsEnt{name: "victim", body: "keep"})
	if err := os.MkdirAll(e.path("opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.path("opt/f")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.deploy(t, specOf(appspec.Overwrite, appspec.File{Source: "f", Destination: "/opt"}), []fsEnt{{name: "f", body: "new"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, outside); got != "keep" {
		t.Errorf("link target overwritten: %q", got)
	}
	if fi, _ := os.Lstat(e.path("opt/f")); fi == nil || !fi.Mode().IsRegular() {
		t.Errorf("opt/f is not a regular file now")
	}
	if got := listTree(t, e.path("opt")); len(got) != 1 {
		t.Errorf("opt holds %q, want only f (no temporary left behind)", got)
	}
}

func TestCleanupListParsing(t *testing.T) {
	got := parseCleanupList("/a\nsemanage:/b\n/c d\n/unfinished")
	want := []cleanupEntry{{path: "/a"}, {path: "/b", semanage: true}, {path: "/c d"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parse = %v, want %v", got, want)
	}
}

func TestRemovePreviousSkipsOutsideRoot(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(t.TempDir(), "precious")
	makeTree(t, filepath.Dir(outside), fsEnt{name: "precious", body: "x"})
	prev := filepath.Join(e.state, "prev")
	if err := os.WriteFile(prev, []byte(outside+"\nrelative\n/\n"+e.path("x/../y")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.prevLst = prev
	res, err := e.deploy(t, specOf(""), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outside); err != nil || res.Removed != 0 {
		t.Errorf("entry outside the root removed (removed=%d, stat %v)", res.Removed, err)
	}
}

func TestSimpleGlob(t *testing.T) {
	cases := []struct {
		name, pattern string
		want          bool
	}{
		{"a.html", "*.html", true},
		{"a.htm", "*.html", false},
		{"a.html", "*", true},
		{"abc", "a*c", true},
		{"ac", "a*c", true},
		{"abcbd", "a*b*d", true},
		{"abcbe", "a*b*d", false},
		{"x", "", false},
		{"sub/a.html", "*.html", false}, // direct children only
		{"a?c", "a?c", true},            // ? is literal
		{"abc", "a?c", false},
		{"[a]", "[a]", true},
	}
	for _, tc := range cases {
		if got := simpleGlob(tc.name, tc.pattern); got != tc.want {
			t.Errorf("simpleGlob(%q, %q) = %v, want %v", tc.name, tc.pattern, got, tc.want)
		}
	}
}

func TestNormalizeACE(t *testing.T) {
	cases := []struct {
		in, want string
		def      bool
		bad      bool
	}{
		{in: "u:bob:rw", want: "user:bob:rw-"},
		{in: "bob:7", want: "user:bob:rwx"},
		{in: "g:staff:r-x", want: "group:staff:r-x"},
		{in: "m::r", want: "mask::r--"},
		{in: "mask:rw", want: "mask::rw-"},
		{in: "d:u:bob:rw", want: "default:user:bob:rw-", def: true},
		{in: "default:group:staff:5", want: "default:group:staff:r-x", def: true},
		{in: "d:bob:r", want: "default:user:bob:r--", def: true},
		{in: "d::rwx", want: "default:user::rwx", def: true},
		{in: "u::rw", bad: true}, // base entries through mode
		{in: "o:bob:r", bad: true},
		{in: "x:bob:r", bad: true},
		{in: "u:bob:rz", bad: true},
		{in: "u:bob,u:eve:rw", bad: true},
		{in: "rw", bad: true},
		{in: "d:d:u:bob:rw", bad: true},
	}
	for _, tc := range cases {
		got, def, err := appspec.CanonicalACE(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("CanonicalACE(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want || def != tc.def {
			t.Errorf("CanonicalACE(%q) = %q, %v, %v; want %q, %v", tc.in, got, def, err, tc.want, tc.def)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to change owners")
	}
}

func TestPermissions(t *testing.T) {
	bundle := []fsEnt{
		{name: "web/a.html", body: "a"}, {name: "web/b.sh", body: "b", mode: 0o755},
		{name: "web/sub/c.html", body: "c"}, {name: "web/link", body: "->a.html"}, {name: "bin/tool", body: "t", mode: 0o755},
	}
	files := []appspec.File{{Source: "web", Destination: "/opt/app/web"}, {Source: "bin/tool", Destination: "/opt/app/bin"}}
	mode := func(m fs.FileMode) appspec.Permission { return appspec.Permission{Mode: m, HasMode: true} }
	with := func(p appspec.Permission, f func(*appspec.Permission)) appspec.Permission { f(&p); return p }
	cases := []struct {
		name  string
		perms []appspec.Permission
		want  map[string]fs.FileMode // path under root -> perm bits
		err   string
	}{
		{
			name: "directory object, default pattern: everything below at any depth",
			perms: []appspec.Permission{with(mode(0o600), func(p *appspec.Permission) {
				p.Object = "/opt/app/web"
				p.Types = []appspec.ObjectType{appspec.TypeFile}
			})},
			want: map[string]fs.FileMode{"opt/app/web/a.html": 0o600, "opt/app/web/b.sh": 0o600, "opt/app/web/sub/c.html": 0o600, "opt/app/web/sub": 0o755, "opt/app/web": 0o755},
		},
		{
			name: "pattern matches direct children only",
			perms: []appspec.Permission{with(mode(0o640), func(p *appspec.Permission) {
				p.Object, p.Pattern = "/opt/app/web", "*.html"
			})},
			want: map[string]fs.FileMode{"opt/app/web/a.html": 0o640, "opt/app/web/sub/c.html": 0o644, "opt/app/web/b.sh": 0o755},
		},
		{
			name: "except excludes direct children",
			perms: []appspec.Permission{with(mode(0o700), func(p *appspec.Permission) {
				p.Object, p.Except = "/opt/app/web", []string{"*.sh"}
				p.Types = []appspec.ObjectType{appspec.TypeFile}
			})},
			want: map[string]fs.FileMode{"opt/app/web/a.html": 0o700, "opt/app/web/sub/c.html": 0o700, "opt/app/web/b.sh": 0o755},
		},
		{
			name: "type directory",
			perms: []appspec.Permission{with(mode(0o750), func(p *appspec.Permission) {
				p.Object = "/opt"
				p.Types = []appspec.ObjectType{appspec.TypeDirectory}
			})},
			want: map[string]fs.FileMode{"opt/app": 0o750, "opt/app/web": 0o750, "opt/app/web/sub": 0o750, "opt/app/bin": 0o750, "opt/app/web/a.html": 0o644},
		},
		{
			name: "file object",
			perms: []appspec.Permission{with(mode(0o4711), func(p *appspec.Permission) {
				p.Object = "/opt/app/bin/tool"
			})},
			want: map[string]fs.FileMode{"opt/app/bin/tool": 0o711 | fs.ModeSetuid},
		},
		{
			name: "raw setuid bits are understood too",
			perms: []appspec.Permission{with(mode(0o4711), func(p *appspec.Permission) {
				p.Object = "/opt/app/bin/tool"
				p.Mode = fs.FileMode(0o4711)
			})},
			want: map[string]fs.FileMode{"opt/app/bin/tool": 0o711 | fs.ModeSetuid},
		},
		{
			name: "file object with pattern is refused",
			perms: []appspec.Permission{with(mode(0o600), func(p *appspec.Permission) {
				p.Object, p.Pattern, p.Line = "/opt/app/bin/tool", "*.x", 12
			})},
			err: "pattern must be",
		},
		{
			name: "object set twice is refused",
			perms: []appspec.Permission{
				with(mode(0o600), func(p *appspec.Permission) { p.Object, p.Line = "/opt/app/web", 10 }),
				with(mode(0o600), func(p *appspec.Permission) { p.Object, p.Pattern, p.Line = "/opt/app/web", "*.html", 20 }),
			},
			err: "more than once (appspec lines 10 and 20)",
		},
		{
			name:  "default acl on a file is refused",
			perms: []appspec.Permission{{Object: "/opt/app/bin/tool", ACLs: []string{"d:u:nobody:rw"}}},
			err:   "directories only",
		},
		{
			name:  "unknown owner",
			perms: []appspec.Permission{{Object: "/opt/app/web", Owner: "no-such-user-drover"}},
			err:   "owner \"no-such-user-drover\"",
		},
		{
			name:  "object not installed by this deployment is left alone",
			perms: []appspec.Permission{with(mode(0o600), func(p *appspec.Permission) { p.Object = "/elsewhere" })},
			want:  map[string]fs.FileMode{"opt/app/web/a.html": 0o644},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			spec := specOf(appspec.Disallow, files...)
			spec.Permissions = tc.perms
			_, err := e.deploy(t, spec, bundle, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Install error %v, want one containing %q", err, tc.err)
				}
				if _, serr := os.Lstat(e.path("opt")); serr == nil {
					t.Error("files copied although permissions were invalid")
				}
				return
			}
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			for p, m := range tc.want {
				fi, err := os.Stat(e.path(p))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != m {
					t.Errorf("%s mode %v, want %v", p, got, m)
				}
			}
		})
	}
}

func TestPermissionsOwner(t *testing.T) {
	needRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	grp, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skipf("no group %s: %v", nobody.Gid, err)
	}
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	spec.Permissions = []appspec.Permission{{
		Object: "/opt/app", Owner: "nobody", Group: grp.Name, Mode: 0o750 | fs.ModeSetgid, HasMode: true,
		Types: []appspec.ObjectType{appspec.TypeFile},
	}}
	if _, err := e.deploy(t, spec, []fsEnt{{name: "f", body: "x"}, {name: "l", body: "->f"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"opt/app/f", "opt/app/l"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(e.path(p), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != uid || int(st.Gid) != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	fi, _ := os.Stat(e.path("opt/app/f"))
	if fi.Mode()&fs.ModeSetgid != 0 || fi.Mode().Perm() != 0o750 {
		t.Errorf("mode %v, want 0750: CodeDeploy sets the mode, then the owner, and chown clears setgid", fi.Mode())
	}
	// The owner of /opt/app itself is not changed: only what lies below.
	var st syscall.Stat_t
	if err := syscall.Stat(e.path("opt/app"), &st); err != nil || st.Uid != 0 {
		t.Errorf("/opt/app owner %d (err %v), want 0", st.Uid, err)
	}
}

// TestPermissionsSetuidWithOwner: "mode: 4755" with "owner:" ends 0755 on
// a file, as under CodeDeploy (chmod, then chown, which clears setuid), and
// a directory keeps its setgid bit (chown leaves directories' bits alone).
func TestPermissionsSetuidWithOwner(t *testing.T) {
	needRoot(t)
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	spec.Permissions = []appspec.Permission{
		{Object: "/opt/app", Owner: "nobody", Mode: 0o755 | fs.ModeSetuid, HasMode: true, Types: []appspec.ObjectType{appspec.TypeFile}, Line: 7},
		{Object: "/opt/app", Mode: 0o755 | fs.ModeSetgid, HasMode: true, Owner: "nobody", Types: []appspec.ObjectType{appspec.TypeDirectory}, Line: 12},
	}
	if _, err := e.deploy(t, spec, []fsEnt{{name: "bin/tool", body: "x"}}, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(e.path("opt/app/bin/tool")); err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != 0o755 {
		t.Errorf("tool mode %v (%v), want 0755 without setuid", fi.Mode(), err)
	}
	if fi, err := os.Stat(e.path("opt/app/bin")); err != nil || fi.Mode()&fs.ModeSetgid == 0 {
		t.Errorf("bin mode %v (%v), want setgid kept on a directory", fi.Mode(), err)
	}
}

func TestPermissionsACL(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("getfacl"); err != nil {
		t.Skip("needs setfacl/getfacl (package acl)")
	}
	e := newEnv(t)
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	spec.Permissions = []appspec.Permission{
		{Object: "/opt/app", ACLs: []string{"u:nobody:rw", "d:u:nobody:r"}, Types: []appspec.ObjectType{appspec.TypeDirectory}},
		{Object: "/opt/app", ACLs: []string{"u:nobody:rw"}, Types: []appspec.ObjectType{appspec.TypeFile}},
	}
	if _, err := e.deploy(t, spec, []fsEnt{{name: "d/f", body: "x"}, {name: "g", body: "y"}}, nil); err != nil {
		// Both entries select different objects (files vs directories).
		t.Fatal(err)
	}
	for p, want := range map[string][]string{
		"opt/app/d/f": {"user:nobody:rw-"},
		"opt/app/g":   {"user:nobody:rw-"},
		"opt/app/d":   {"user:nobody:rw-", "default:user:nobody:r--"},
	} {
		out, err := exec.Command("getfacl", "-cp", e.path(p)).CombinedOutput()
		if err != nil {
			t.Fatalf("getfacl: %v: %s", err, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s acl:\n%s\nlacks %s", p, out, w)
			}
		}
	}
}

func TestSELinuxContextNeedsSELinux(t *testing.T) {
	cases := []struct {
		name    string
		fsMount bool
		tools   bool
		want    string
	}{
		{"selinux disabled", false, true, "SELinux is not enabled on this host"},
		{"semanage missing", true, false, "semanage was not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			selinuxFS := t.TempDir()
			if tc.fsMount {
				makeTree(t, selinuxFS, fsEnt{name: "enforce", body: "1"})
			}
			spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
			spec.Permissions = []appspec.Permission{{Object: "/opt/app", Context: &appspec.SELinuxContext{Type: "httpd_sys_content_t"}}}
			_, err := e.deploy(t, spec, []fsEnt{{name: "f", body: "x"}}, func(in *installer) {
				in.selinuxFS = selinuxFS
				in.lookPath = func(name string) (string, error) {
					if !tc.tools {
						return "", exec.ErrNotFound
					}
					return "/usr/sbin/" + name, nil
				}
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), e.path("opt/app/f")) {
				t.Fatalf("Install error %v, want one naming the file and %q", err, tc.want)
			}
		})
	}
}

func TestSELinuxContextCommands(t *testing.T) {
	e := newEnv(t)
	selinuxFS := t.TempDir()
	makeTree(t, selinuxFS, fsEnt{name: "enforce", body: "1"})
	var calls []string
	tweak := func(in *installer) {
		in.selinuxFS = selinuxFS
		in.lookPath = func(name string) (string, error) { return "/usr/sbin/" + name, nil }
		in.runCmd = func(_ context.Context, name string, args ...string) ([]byte, error) {
			calls = append(calls, name+" "+strings.Join(args, " "))
			return nil, nil
		}
	}
	spec := specOf(appspec.Disallow, appspec.File{Source: "/", Destination: "/opt/app"})
	spec.Permissions = []appspec.Permission{{Object: "/opt/app", Context: &appspec.SELinuxContext{
		User: "system_u", Type: "httpd_sys_content_t", Range: &appspec.SELinuxRange{Low: "s0", High: "s0:c0.c5"}}}}
	if _, err := e.deploy(t, spec, []fsEnt{{name: "f.html", body: "x"}}, tweak); err != nil {
		t.Fatal(err)
	}
	f := e.path("opt/app/f.html")
	rule := strings.ReplaceAll(f, ".", `\.`)
	want := []string{
		"semanage fcontext -a -s system_u -t httpd_sys_content_t -r s0-s0:c0.c5 -- " + rule,
		"restorecon -v -- " + f,
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(readFile(t, e.prevLst), "semanage:"+f+"\n") {
		t.Error("cleanup list does not record the SELinux rule")
	}
	calls = nil
	if _, err := e.deploy(t, specOf(appspec.Disallow), nil, tweak); err != nil {
		t.Fatal(err)
	}
	if want := "semanage fcontext -d -- " + rule; len(calls) != 1 || calls[0] != want {
		t.Errorf("cleanup commands %q, want %q", calls, want)
	}
}

func TestCopyFileAcrossFileSystems(t *testing.T) {
	shm := "/dev/shm"
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(t.TempDir(), &b) != nil || a.Dev == b.Dev {
		t.Skip("needs /dev/shm on a file system other than the temporary directory's")
	}
	srcDir, err := os.MkdirTemp(shm, "drover-install-test-")
	if err != nil {
		t.Skipf("cannot use /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(srcDir) })
	body := strings.Repeat("0123456789", 50_000)
	makeTree(t, srcDir, fsEnt{name: "f", body: body, mode: 0o640})
	dst := filepath.Join(t.TempDir(), "f")
	n, err := copyFile(filepath.Join(srcDir, "f"), dst, 0o022)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(body)) || readFile(t, dst) != body {
		t.Errorf("copied %d bytes, content equal: %v", n, readFile(t, dst) == body)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}
