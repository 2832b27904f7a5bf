package appspec

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// ErrNotFound is wrapped by Find and Load when a bundle has neither
// appspec.yml nor appspec.yaml.
var ErrNotFound = errors.New("appspec not found")

// Problem is one validation finding.
type Problem struct {
	File    string // as given to Parse, or the path Load read
	Line    int    // 1-based; 0 when the finding concerns the file as a whole
	Field   string // dotted path such as "hooks.AfterInstall[0].timeout"; empty for the file as a whole
	Message string // what is wrong, without the field
}

// String formats the problem as "FILE:LINE: FIELD: MESSAGE", leaving out
// the line when it is 0 and the field when it is empty.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error holds every problem found; Parse and Load return it as their error.
type Error struct {
	Problems []Problem
	Warnings []Problem // findings that alone would not have failed the file
}

// Error joins the problems, one a line.
func (e *Error) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// findings collects problems and warnings for one file.
type findings struct {
	file     string
	problems []Problem
	warnings []Problem
}

func (f *findings) errorf(line int, field, format string, args ...any) {
	f.problems = append(f.problems, f.problem(line, field, format, args...))
}

func (f *findings) warnf(line int, field, format string, args ...any) {
	f.warnings = append(f.warnings, f.problem(line, field, format, args...))
}

// problem builds a Problem; fields and messages quote what the file says,
// so both are clipped to keep a hostile file from flooding the logs.
func (f *findings) problem(line int, field, format string, args ...any) Problem {
	return Problem{File: f.file, Line: line, Field: clip(field, 200), Message: clip(fmt.Sprintf(format, args...), 500)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes more)", s[:cut], len(s)-cut)
}

// sorted orders findings by line, keeping the order of discovery within a line.
func sorted(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return ps
}

// err returns the collected problems as an *Error, or nil when there are none.
func (f *findings) err() error {
	if len(f.problems) == 0 {
		return nil
	}
	return &Error{Problems: sorted(f.problems), Warnings: sorted(f.warnings)}
}
