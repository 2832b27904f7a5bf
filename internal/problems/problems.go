// Package problems is how drover reports what is wrong with a YAML file it
// reads (the configuration, a manifest, an appspec): every problem at once,
// each located as FILE:LINE: field: message, in the order of the file.
//
// A parser collects findings in a List while it walks the file and ends
// with Err. What a finding says, and which findings are warnings, stay
// with each parser; this package only holds, orders and prints them.
package problems

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one finding in a file.
type Problem struct {
	File  string // as the reader names the file
	Line  int    // 1-based; 0 when the finding concerns the file as a whole
	Field string // dotted path such as "hooks.AfterInstall[0].timeout"; "" when the message names none
	Msg   string // what is wrong, without the field
}

// String formats the problem as "FILE:LINE: FIELD: MSG", leaving out the
// line when it is 0 and the field when it is empty.
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
	b.WriteString(p.Msg)
	return b.String()
}

// Sort orders problems by line, keeping the order of discovery within a
// line (and the findings about the whole file first). It sorts ps in place
// and returns it.
func Sort(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return ps
}

// Strings formats each problem (String), in order.
func Strings(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Error holds every problem found in one file, and the warnings of the
// parts that could be checked.
type Error struct {
	Problems []Problem
	Warnings []Problem // findings that alone would not have failed the file
}

// Error joins the problems, one a line.
func (e *Error) Error() string { return strings.Join(Strings(e.Problems), "\n") }

// List collects the problems and warnings of one file. The zero value
// with File set is ready to use.
type List struct {
	File     string // given to every finding added without one
	problems []Problem
	warnings []Problem
}

// Add records a problem.
func (l *List) Add(p Problem) { l.problems = append(l.problems, l.located(p)) }

// Addf records a problem at line of field (either may be zero).
func (l *List) Addf(line int, field, format string, args ...any) {
	l.Add(Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Warn records a warning.
func (l *List) Warn(p Problem) { l.warnings = append(l.warnings, l.located(p)) }

// Warnf records a warning at line of field (either may be zero).
func (l *List) Warnf(line int, field, format string, args ...any) {
	l.Warn(Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (l *List) located(p Problem) Problem {
	if p.File == "" {
		p.File = l.File
	}
	return p
}

// Len is how many problems (not warnings) were recorded.
func (l *List) Len() int { return len(l.problems) }

// Problems returns the problems in the order of the file (Sort).
func (l *List) Problems() []Problem { return Sort(l.problems) }

// Warnings returns the warnings in the order of the file (Sort).
func (l *List) Warnings() []Problem { return Sort(l.warnings) }

// Err returns the problems and warnings as an *Error, or nil when no
// problem was recorded (warnings alone are no error).
func (l *List) Err() error {
	if len(l.problems) == 0 {
		return nil
	}
	return &Error{Problems: l.Problems(), Warnings: l.Warnings()}
}
