package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `version: 1
application: hello-web
revision: "2026.11.26-1"
bundle:
  path: .
deployment:
  strategy: canary
  batch: 25%
  canary: 1
  bake: 2m
  minimum_healthy: 75%
  rollback: never
  ignore_application_stop_failures: true
  paused: false
`

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Manifest
	}{
		{"full", full, Manifest{
			Version: 1, Application: "hello-web", Revision: "2026.11.26-1",
			Bundle: Bundle{Path: "."},
			Deployment: Deployment{
				Strategy: Canary, Batch: Quantity{true, true, 25}, Canary: Quantity{true, false, 1},
				Bake: 2 * time.Minute, MinimumHealthy: Quantity{true, true, 75},
				Rollback: RollbackNever, IgnoreApplicationStopFailures: true,
			},
		}},
		{"defaults", "version: 1\napplication: a\n", Manifest{
			Version: 1, Application: "a", Bundle: Bundle{Path: "."},
			Deployment: Deployment{Strategy: OneAtATime, Rollback: RollbackOnFailure},
		}},
		{"s3", "version: 1\napplication: a\nrevision: 42\nbundle:\n  key: bundles/x.tar.gz\n  sha256: " + strings.Repeat("ab", 32) + "\n", Manifest{
			Version: 1, Application: "a", Revision: "42",
			Bundle:     Bundle{Key: "bundles/x.tar.gz", SHA256: strings.Repeat("ab", 32)},
			Deployment: Deployment{Strategy: OneAtATime, Rollback: RollbackOnFailure},
		}},
		{"rolling count, path cleaned", "version: 1\napplication: a\nbundle: {path: ./app/}\ndeployment: {strategy: rolling, batch: 3, minimum_healthy: 0}\n", Manifest{
			Version: 1, Application: "a", Bundle: Bundle{Path: "app"},
			Deployment: Deployment{Strategy: Rolling, Batch: Quantity{true, false, 3}, MinimumHealthy: Quantity{true, false, 0}, Rollback: RollbackOnFailure},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("m.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(*m, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *m, tt.want)
			}
			// Format round-trips.
			m2, err := Parse("formatted", Format(m))
			if err != nil {
				t.Fatalf("Parse(Format): %v\n%s", err, Format(m))
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip: got %+v want %+v", m2, m)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each a FILE:LINE: prefix + fragment, in order
	}{
		{"empty", "", []string{"m.yaml: manifest is empty"}},
		{"not yaml", "version: [1\n", []string{"m.yaml:1: invalid YAML"}},
		{"not a mapping", "- 1\n", []string{"m.yaml:1: manifest must be a mapping"}},
		{"unknown key and missing", "versoin: 1\napplication: a\n", []string{
			`m.yaml:1: manifest: unknown key "versoin"`, "m.yaml:1: version is required"}},
		{"duplicate key", "version: 1\napplication: a\napplication: b\n", []string{`m.yaml:3: manifest: duplicate key "application"`}},
		{"bad version", "version: 2\napplication: a\n", []string{`m.yaml:1: version "2" is not supported`}},
		{"bad app", "version: 1\napplication: ../x\n", []string{`m.yaml:2: application "../x"`}},
		{"two docs", "version: 1\napplication: a\n---\nx: 1\n", []string{"m.yaml:3: only one YAML document"}},
		{"escaping path", "version: 1\napplication: a\nbundle: {path: ../other}\n", []string{`m.yaml:3: bundle.path "../other": must not leave`}},
		{"absolute key", "version: 1\napplication: a\nbundle:\n  key: /x\n  sha256: " + strings.Repeat("0", 64) + "\n", []string{`m.yaml:4: bundle.key "/x": must be relative`}},
		{"key without sum", "version: 1\napplication: a\nbundle:\n  key: x.tgz\n", []string{"m.yaml:4: bundle.sha256 is required"}},
		{"bad sum", "version: 1\napplication: a\nbundle:\n  key: x.tgz\n  sha256: ABC\n", []string{"m.yaml:5: bundle.sha256 must be 64 lowercase hex"}},
		{"path and key", "version: 1\napplication: a\nbundle:\n  path: .\n  key: x.tgz\n  sha256: " + strings.Repeat("0", 64) + "\n", []string{"m.yaml:5: bundle: give either path"}},
		{"rolling without batch", "version: 1\napplication: a\ndeployment:\n  strategy: rolling\n", []string{"m.yaml:3: deployment.batch is required"}},
		{"canary without canary", "version: 1\napplication: a\ndeployment:\n  strategy: canary\n", []string{"m.yaml:3: deployment.canary is required"}},
		{"bad strategy and quantities", "version: 1\napplication: a\ndeployment:\n  strategy: blue-green\n  minimum_healthy: 101%\n  rollback: maybe\n  paused: yes\n", []string{
			`m.yaml:4: strategy "blue-green"`, "m.yaml:5: minimum_healthy: \"101%\": a percentage must be at most 100%",
			`m.yaml:6: rollback "maybe"`, `m.yaml:7: paused must be true or false, not "yes"`}},
		{"batch zero", "version: 1\napplication: a\ndeployment: {strategy: rolling, batch: 0}\n", []string{`m.yaml:3: batch "0": must be at least 1`}},
		{"batch junk", "version: 1\napplication: a\ndeployment: {strategy: rolling, batch: 1.5}\n", []string{`m.yaml:3: batch: "1.5": want a host count`}},
		{"bake on rolling", "version: 1\napplication: a\ndeployment: {strategy: rolling, batch: 1, bake: 1m}\n", []string{"m.yaml:3: bake applies only to the canary"}},
		{"bad bake", "version: 1\napplication: a\ndeployment: {strategy: canary, canary: 1, bake: soon}\n", []string{`m.yaml:3: bake "soon"`}},
		{"deployment list", "version: 1\napplication: a\ndeployment: [1]\n", []string{"m.yaml:3: deployment must be a mapping"}},
		{"null value", "version: 1\napplication:\n", []string{"m.yaml:2: application must be a value, not empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tt.in))
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("Parse: got %v, want *Error", err)
			}
			if len(me.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(me.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := me.Problems[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d: got %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("m.yaml", []byte("version: 1\n#"+strings.Repeat("x", MaxSize)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v, want a size error", err)
	}
}

func TestValidateDir(t *testing.T) {
	dir := t.TempDir()
	if err := ValidateDir(dir); err != nil {
		t.Fatalf("no manifest: got %v, want nil", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := ValidateDir(dir)
	want := filepath.Join(dir, FileName) + ":1: application is required"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestQuantityOf(t *testing.T) {
	tests := []struct {
		q    string
		n    int
		want int
	}{{"25%", 10, 2}, {"100%", 7, 7}, {"3", 10, 3}, {"0%", 5, 0}}
	for _, tt := range tests {
		q, err := ParseQuantity(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Of(tt.n); got != tt.want {
			t.Errorf("%s of %d = %d, want %d", tt.q, tt.n, got, tt.want)
		}
		if q.String() != tt.q {
			t.Errorf("String() = %q, want %q", q.String(), tt.q)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("version: 1\napplication: a\nbundle: {key: k, sha256: " + strings.Repeat("0", 64) + "}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("version: 1\napplication: &a b\nrevision: *a\n"))
	f.Add([]byte(gatesFull))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) || len(me.Problems) == 0 {
				t.Fatalf("error is not a non-empty *Error: %v", err)
			}
			for _, p := range me.Problems {
				if p.Line < 0 || !strings.HasPrefix(p.String(), "f.yaml:") {
					t.Fatalf("malformed problem %q", p.String())
				}
			}
			return
		}
		if m.Version != 1 || m.Application == "" {
			t.Fatalf("accepted manifest without version or application: %+v", m)
		}
		if (m.Bundle.Key == "") == (m.Bundle.Path == "") {
			t.Fatalf("accepted manifest with both or neither of path and key: %+v", m.Bundle)
		}
		m2, err := Parse("formatted", Format(m))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, Format(m))
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs: %+v vs %+v", m, m2)
		}
	})
}
