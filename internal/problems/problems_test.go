package problems

import (
	"errors"
	"testing"
)

func TestString(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "appspec.yml", Line: 3, Field: "hooks.AfterInstall[0].timeout", Msg: "must be a whole number"}, "appspec.yml:3: hooks.AfterInstall[0].timeout: must be a whole number"},
		{Problem{File: "manifest.yaml", Line: 2, Msg: "revision: missing"}, "manifest.yaml:2: revision: missing"},
		{Problem{File: "m.yaml", Msg: "manifest is empty"}, "m.yaml: manifest is empty"},
		{Problem{File: "f", Field: "node", Msg: "x"}, "f: node: x"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestListOrderAndErr(t *testing.T) {
	l := List{File: "f.yaml"}
	if l.Err() != nil {
		t.Fatal("an empty list is an error")
	}
	l.Warnf(2, "a", "only a warning")
	if l.Err() != nil || l.Len() != 0 {
		t.Fatal("a warning alone is an error")
	}
	l.Addf(5, "b", "five")
	l.Addf(1, "", "one %d", 1)
	l.Addf(5, "c", "five again")
	l.Add(Problem{Msg: "whole file"})
	l.Add(Problem{File: "other.yaml", Line: 3, Msg: "named"})
	err := l.Err()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Err() = %v, want an *Error", err)
	}
	want := "f.yaml: whole file\nf.yaml:1: one 1\nother.yaml:3: named\nf.yaml:5: b: five\nf.yaml:5: c: five again"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	if len(pe.Warnings) != 1 || pe.Warnings[0].String() != "f.yaml:2: a: only a warning" {
		t.Errorf("warnings = %v", pe.Warnings)
	}
}
