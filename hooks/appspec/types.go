// Package appspec parses and validates AWS CodeDeploy appspec.yml files for
// the EC2/On-Premises compute platform on Linux.
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
	Hooks              map[Event][]Hook
}

// File is one entry of the files section.
type File struct {
	Source      string // relative to the bundle root; "/" or "" means the whole bundle
	Destination string // absolute path on the instance (before any root prefix)
	Line        int
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
	Object  string   // absolute path on the instance
	Pattern string   // glob; "**" when absent (every entry below Object)
	Except  []string // globs excluded from Pattern
	Owner   string
	Group   string
	Mode    fs.FileMode // permission bits incl. setuid/setgid/sticky; valid only when HasMode
	HasMode bool
	ACLs    []string // setfacl entries, e.g. "u:bob:rw"
	Context *SELinuxContext
	Types   []ObjectType // empty means both files and directories
	Line    int
}

// SELinuxContext is a permissions context entry.
type SELinuxContext struct {
	User  string
	Role  string
	Type  string
	Range *SELinuxRange
}

// SELinuxRange is the MLS/MCS range of a context.
type SELinuxRange struct {
	Low  string
	High string
}

// Hook is one script attached to a lifecycle event.
type Hook struct {
	Location string        // relative to the bundle root
	Timeout  time.Duration // DefaultHookTimeout when absent
	RunAs    string        // user name; empty runs as the agent's user
	Line     int
}
