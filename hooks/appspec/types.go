package appspec

import (
	"io/fs"
	"time"
)

// Event is a lifecycle event name as written in appspec.yml.
type Event string

// Lifecycle events in the order an in-place deployment runs them.
const (
	BeforeBlockTraffic Event = "BeforeBlockTraffic"
	AfterBlockTraffic  Event = "AfterBlockTraffic"
	ApplicationStop    Event = "ApplicationStop"
	DownloadBundle     Event = "DownloadBundle"
	BeforeInstall      Event = "BeforeInstall"
	Install            Event = "Install"
	AfterInstall       Event = "AfterInstall"
	ApplicationStart   Event = "ApplicationStart"
	ValidateService    Event = "ValidateService"
	BeforeAllowTraffic Event = "BeforeAllowTraffic"
	AfterAllowTraffic  Event = "AfterAllowTraffic"
)

// Events lists every lifecycle event in run order.
var Events = [...]Event{
	BeforeBlockTraffic, AfterBlockTraffic, ApplicationStop, DownloadBundle,
	BeforeInstall, Install, AfterInstall, ApplicationStart, ValidateService,
	BeforeAllowTraffic, AfterAllowTraffic,
}

// FromPreviousRevision reports whether the event runs the scripts of the last
// successfully installed revision rather than the new one.
func (e Event) FromPreviousRevision() bool {
	return e == BeforeBlockTraffic || e == AfterBlockTraffic || e == ApplicationStop
}

// Scriptable reports whether appspec.yml may attach scripts to the event.
func (e Event) Scriptable() bool { return e != DownloadBundle && e != Install }

// FileExistsBehavior says what Install does when a destination file exists
// and was not installed by the previous deployment.
type FileExistsBehavior string

// The three behaviours CodeDeploy knows.
const (
	Disallow  FileExistsBehavior = "DISALLOW"
	Overwrite FileExistsBehavior = "OVERWRITE"
	Retain    FileExistsBehavior = "RETAIN"
)

// DefaultHookTimeout is CodeDeploy's default, and the maximum total per event.
const DefaultHookTimeout = 3600 * time.Second

// AppSpec is a validated appspec file.
type AppSpec struct {
	Path               string // file name used in messages, e.g. "bundle/appspec.yml"
	Version            string // always "0.0"
	OS                 string // always "linux"
	Files              []File
	FileExistsBehavior FileExistsBehavior // DISALLOW when absent
	Permissions        []Permission
	Hooks              map[Event][]Hook // only scriptable events; absent events have no scripts

	// Warnings are findings that do not stop a deployment: keys CodeDeploy
	// ignores (typos such as "runAs"), relative paths, events without
	// scripts. Callers should log them.
	Warnings []Problem

	lines map[string]int // field path -> line, for the bundle checks of Load
}

// File is one entry of the files section.
type File struct {
	// Source is cleaned and relative to the bundle root, without a leading
	// slash; "" means the whole bundle (written "/" in appspec.yml).
	Source      string
	Destination string // absolute and cleaned, on the instance (before any root prefix)
	Line        int    // line of the entry
}

// ObjectType is a permissions type filter.
type ObjectType string

// Permission object types.
const (
	TypeFile      ObjectType = "file"
	TypeDirectory ObjectType = "directory"
)

// Permission is one entry of the permissions section.
type Permission struct {
	Object  string   // absolute and cleaned path on the instance
	Pattern string   // glob; "**" when absent (every entry below Object)
	Except  []string // globs excluded from Pattern
	Owner   string   // user name; empty leaves the owner alone
	Group   string   // group name; empty leaves the group alone
	// Mode holds the permission bits and fs.ModeSetuid, fs.ModeSetgid,
	// fs.ModeSticky (as os.Chmod takes them); valid only when HasMode.
	Mode    fs.FileMode
	HasMode bool
	// ACLs are setfacl entries in canonical long form, e.g.
	// "user:bob:rw-" or "default:group:dev:r-x". Nil when acls is absent;
	// empty but non-nil for "acls: []" (CodeDeploy then sets the base
	// entries only, removing any other).
	ACLs    []string
	Context *SELinuxContext
	// Types is never empty after Parse: [file directory] when absent.
	Types []ObjectType
	Line  int // line of the entry
}

// HasType reports whether the entry applies to objects of type t.
func (p Permission) HasType(t ObjectType) bool {
	for _, x := range p.Types {
		if x == t {
			return true
		}
	}
	return false
}

// SELinuxContext is a permissions context entry.
type SELinuxContext struct {
	User  string // SELinux user; from "name" (what CodeDeploy's agent reads) or "user" (what its docs say)
	Role  string // always empty: CodeDeploy does not support roles
	Type  string // required
	Range *SELinuxRange
}

// SELinuxRange is the MLS/MCS range of a context, split the way SELinux
// reads "low-high": categories belong to High, and to Low as well when the
// two sensitivities are equal. String gives back the form CodeDeploy passes
// to semanage.
type SELinuxRange struct {
	Low  string // e.g. "s0", or "s0:c0.c5" when Low == High
	High string // e.g. "s3:c0.c7,c13"
}

// String returns the range as "Low" when Low == High, else "Low-High".
func (r SELinuxRange) String() string {
	if r.Low == r.High {
		return r.Low
	}
	return r.Low + "-" + r.High
}

// Hook is one script attached to a lifecycle event.
type Hook struct {
	Location string        // cleaned, relative to the bundle root, never empty
	Timeout  time.Duration // in (0, DefaultHookTimeout]; DefaultHookTimeout when absent
	RunAs    string        // user name; empty runs as the agent's user
	Line     int           // line of the entry
}
