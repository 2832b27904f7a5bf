package appspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// dump renders a parsed appspec (or its problems) as stable text.
func dump(spec *AppSpec, err error) string {
	var b bytes.Buffer
	if err != nil {
		var perr *Error
		if !errors.As(err, &perr) {
			return "error: " + err.Error() + "\n"
		}
		for _, p := range perr.Problems {
			fmt.Fprintf(&b, "problem: %s\n", p)
		}
		for _, w := range perr.Warnings {
			fmt.Fprintf(&b, "warning: %s\n", w)
		}
		return b.String()
	}
	type hook struct {
		Location string
		Timeout  string
		RunAs    string `json:",omitempty"`
		Line     int
	}
	hooks := map[Event][]hook{}
	for ev, hs := range spec.Hooks {
		for _, h := range hs {
			hooks[ev] = append(hooks[ev], hook{h.Location, h.Timeout.String(), h.RunAs, h.Line})
		}
	}
	type permission struct {
		Permission
		Mode string `json:",omitempty"`
	}
	var perms []permission
	for _, p := range spec.Permissions {
		pp := permission{Permission: p}
		if p.HasMode {
			pp.Mode = p.Mode.String()
		}
		perms = append(perms, pp)
	}
	out := struct {
		Version, OS        string
		FileExistsBehavior FileExistsBehavior
		Files              []File
		Permissions        []permission
		Hooks              map[Event][]hook
	}{spec.Version, spec.OS, spec.FileExistsBehavior, spec.Files, perms, hooks}
	j, _ := json.MarshalIndent(out, "", "  ")
	b.Write(j)
	b.WriteString("\n")
	for _, w := range spec.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

// TestGolden parses the sample appspecs of testdata (from CodeDeploy's
// documentation and agent) and compares the result with the .golden files.
// go test -run TestGolden -update rewrites them.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.y*ml")
	if len(files) < 6 {
		t.Fatalf("found only %d samples", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := Parse(f, data)
			if valid := strings.Contains(f, "/samples/"); valid != (err == nil) {
				t.Errorf("sample in %s: Parse error = %v", filepath.Dir(f), err)
			}
			got := dump(spec, err)
			golden := strings.TrimSuffix(f, filepath.Ext(f)) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s:\n%s", f, golden, got)
			}
		})
	}
}

// FuzzParse checks that Parse never panics, that it fails only with an
// *Error whose problems point into the file, and that what it accepts is
// internally consistent.
func FuzzParse(f *testing.F) {
	for _, tc := range rejectCases {
		f.Add([]byte(tc.in))
	}
	samples, _ := filepath.Glob("testdata/*/*.y*ml")
	for _, s := range samples {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(head + "x: &s {timeout: 30}\nhooks:\n  AfterInstall:\n    - {<<: *s, location: a.sh}\n"))
	f.Add([]byte(head + "permissions:\n  - object: /a\n    mode: 0644\n    acls: [d:u:bob:rw, m::7]\n    context: {type: t, range: s0-s1:c0.c3}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse("f.yml", data)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("error %T without problems: %v", err, err)
			}
			lines := yamlLines(data) + 1 // a scanner error may point just past the end
			for _, p := range perr.Problems {
				if p.File != "f.yml" || p.Line < 0 || p.Line > lines || p.Msg == "" {
					t.Fatalf("bad problem %+v in a file of %d lines", p, lines)
				}
			}
			return
		}
		checkConsistent(t, spec)
		again, err := Parse("f.yml", data)
		if err != nil || dump(again, nil) != dump(spec, nil) {
			t.Fatalf("second Parse differs: %v", err)
		}
	})
}

// yamlLines counts lines as YAML does: CR, LF, CRLF, NEL, LS and PS end one.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}

func checkConsistent(t *testing.T, spec *AppSpec) {
	t.Helper()
	if spec.Version != "0.0" || spec.OS != "linux" {
		t.Fatalf("version %q os %q", spec.Version, spec.OS)
	}
	switch spec.FileExistsBehavior {
	case Disallow, Overwrite, Retain:
	default:
		t.Fatalf("file_exists_behavior %q", spec.FileExistsBehavior)
	}
	for ev, hs := range spec.Hooks {
		if _, ok := knownEvent(string(ev)); !ok || !ev.Scriptable() || len(hs) == 0 {
			t.Fatalf("event %q with %d scripts", ev, len(hs))
		}
		var explicit time.Duration
		for _, h := range hs {
			if h.Timeout <= 0 || h.Timeout > DefaultHookTimeout || h.Timeout%time.Second != 0 {
				t.Fatalf("%s timeout %v", ev, h.Timeout)
			}
			if h.Timeout != DefaultHookTimeout {
				explicit += h.Timeout
			}
			if clean, ok := bundlePath(h.Location); !ok || clean != h.Location || h.Location == "" {
				t.Fatalf("%s location %q", ev, h.Location)
			}
			if !validName(h.RunAs) || strings.TrimSpace(h.RunAs) != h.RunAs {
				t.Fatalf("%s runas %q", ev, h.RunAs)
			}
		}
		if explicit > DefaultHookTimeout {
			t.Fatalf("%s timeouts sum to %v", ev, explicit)
		}
	}
	for _, f := range spec.Files {
		if clean, ok := bundlePath(f.Source); !ok || clean != f.Source {
			t.Fatalf("source %q", f.Source)
		}
		if !strings.HasPrefix(f.Destination, "/") || filepath.Clean(f.Destination) != f.Destination {
			t.Fatalf("destination %q", f.Destination)
		}
	}
	for _, p := range spec.Permissions {
		if !strings.HasPrefix(p.Object, "/") || filepath.Clean(p.Object) != p.Object {
			t.Fatalf("object %q", p.Object)
		}
		if len(p.Types) == 0 || len(p.Types) > 2 || (!p.HasType(TypeFile) && !p.HasType(TypeDirectory)) {
			t.Fatalf("types %v", p.Types)
		}
		if p.Mode != 0 && !p.HasMode {
			t.Fatalf("mode %v without HasMode", p.Mode)
		}
		if p.Mode&^(0o777|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			t.Fatalf("mode %v has other bits", p.Mode)
		}
		for _, a := range p.ACLs {
			if again, msg := parseACE(a); again != a || msg != "" {
				t.Fatalf("ACL %q is not canonical: %q %q", a, again, msg)
			}
		}
		if c := p.Context; c != nil {
			if c.Type == "" || c.Role != "" {
				t.Fatalf("context %+v", c)
			}
			if r := c.Range; r != nil {
				if again, msg := parseRange(r.String()); msg != "" || *again != *r {
					t.Fatalf("range %+v does not read back: %+v %q", r, again, msg)
				}
			}
		}
	}
}
