package appspec

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/drover-dev/drover/internal/problems"
)

// ErrNotFound is wrapped by Find and Load when a bundle has neither
// appspec.yml nor appspec.yaml.
var ErrNotFound = errors.New("appspec not found")

// Problem is one validation finding: FILE:LINE: field: message, File as
// given to Parse or the path Load read, Field a dotted path such as
// "hooks.AfterInstall[0].timeout".
type Problem = problems.Problem

// Error holds every problem found; Parse and Load return it as their error.
// Warnings are the findings that alone would not have failed the file.
type Error problems.Error

// Error joins the problems, one a line.
func (e *Error) Error() string { return (*problems.Error)(e).Error() }

// findings collects problems and warnings for one file.
type findings struct {
	problems.List
}

func (f *findings) errorf(line int, field, format string, args ...any) {
	f.Add(problem(line, field, format, args...))
}

func (f *findings) warnf(line int, field, format string, args ...any) {
	f.Warn(problem(line, field, format, args...))
}

// problem builds a Problem; fields and messages quote what the file says,
// so both are clipped to keep a hostile file from flooding the logs.
func problem(line int, field, format string, args ...any) Problem {
	return Problem{Line: line, Field: clip(field, 200), Msg: clip(fmt.Sprintf(format, args...), 500)}
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

// err returns the collected problems as an *Error, or nil when there are none.
func (f *findings) err() error {
	if f.Len() == 0 {
		return nil
	}
	return &Error{Problems: f.Problems(), Warnings: f.Warnings()}
}
