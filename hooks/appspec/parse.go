package appspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/problems"
)

// MaxSize is the largest appspec file Parse accepts.
const MaxSize = 1 << 20

// Keys known in each mapping; anything else draws a warning.
var (
	topKeys        = []string{"version", "os", "files", "file_exists_behavior", "permissions", "hooks"}
	fileKeys       = []string{"source", "destination"}
	hookKeys       = []string{"location", "timeout", "runas", "sudo"}
	permissionKeys = []string{"object", "pattern", "except", "owner", "group", "mode", "acls", "context", "type"}
	contextKeys    = []string{"name", "user", "type", "range", "role"}
)

// reservedEvents exist in CodeDeploy's lifecycle but belong to the agent.
var reservedEvents = map[string]bool{"BlockTraffic": true, "AllowTraffic": true}

// legacyEvents are the names CodeDeploy's agent once used for the traffic
// events; its service no longer runs them.
var legacyEvents = map[string]Event{
	"BeforeELBRemove": BeforeBlockTraffic,
	"AfterELBRemove":  AfterBlockTraffic,
	"BeforeELBAdd":    BeforeAllowTraffic,
	"AfterELBAdd":     AfterAllowTraffic,
}

// Parse reads and validates an appspec file. name is used in messages only;
// Parse does not touch the file system. On failure the error is an *Error
// listing every problem found.
func Parse(name string, data []byte) (*AppSpec, error) {
	p := newParser(name)
	spec := p.parse(data)
	if err := p.err(); err != nil {
		return nil, err
	}
	spec.Warnings = p.Warnings()
	return spec, nil
}

type parser struct {
	walker
	spec *AppSpec
}

func newParser(name string) *parser {
	return &parser{walker: walker{findings: findings{problems.List{File: name}}}}
}

// line records the line of a field for the bundle checks.
func (p *parser) line(field string, line int) { p.spec.lines[field] = line }

var yamlErrLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yaml.v3 numbers the lines of its parser errors (as opposed to its
// scanner errors) from 0: it prints the 0-based line where the enclosing
// block starts. These are the parser's messages.
var yamlParserErrors = []string{
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found duplicate %TAG directive",
	"found incompatible YAML document",
}

// yamlError turns a yaml.v3 error into a line and a message.
func yamlError(err error) (int, string) {
	m := yamlErrLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, err.Error()
	}
	line, _ := strconv.Atoi(m[1])
	for _, pe := range yamlParserErrors {
		if strings.HasPrefix(m[2], pe) {
			line++
			break
		}
	}
	return line, m[2]
}

// decode parses the first YAML document of data. It never panics: a panic
// inside the YAML library becomes a problem.
func (p *parser) decode(data []byte) (root *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			p.errorf(0, "", "invalid YAML: the YAML reader failed: %v", r)
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(1, "", "file is empty: an appspec needs at least version: 0.0 and os: linux")
			return nil, false
		}
		line, msg := yamlError(err)
		p.errorf(line, "", "invalid YAML: %s", msg)
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		p.warnf(next.Line, "", "only the first YAML document is read; everything after the first \"---\" separator is ignored")
	}
	if len(doc.Content) == 0 {
		p.errorf(1, "", "file is empty: an appspec needs at least version: 0.0 and os: linux")
		return nil, false
	}
	return resolve(doc.Content[0]), true
}

func (p *parser) parse(data []byte) *AppSpec {
	p.spec = &AppSpec{Path: p.File, FileExistsBehavior: Disallow, Hooks: map[Event][]Hook{}, lines: map[string]int{}}
	if len(data) > MaxSize {
		p.errorf(0, "", "file is %d bytes, more than the %d allowed", len(data), MaxSize)
		return p.spec
	}
	root, ok := p.decode(data)
	if !ok {
		return p.spec
	}
	if isNull(root) {
		p.errorf(max(root.Line, 1), "", "file is empty: an appspec needs at least version: 0.0 and os: linux")
		return p.spec
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "", "must be a mapping with keys such as version, os, files and hooks, got %s", describe(root))
		return p.spec
	}
	entries := p.mapping(root, "")
	got := map[string]entry{}
	for _, e := range entries {
		got[e.key] = e
	}
	// version and os first: CodeDeploy checks them first, and a missing
	// one is reported at the top of the file.
	p.version(got, root)
	p.os(got, root)
	for _, e := range entries {
		switch e.key {
		case "version", "os":
		case "file_exists_behavior":
			p.fileExistsBehavior(e)
		case "files":
			p.files(e)
		case "permissions":
			p.permissions(e)
		case "hooks":
			p.hooks(e)
		default:
			p.unknownKey(e, "", topKeys)
		}
	}
	return p.spec
}

// version accepts what CodeDeploy's agent accepts: the number 0 (0.0, 0,
// 0.00). A quoted "0.0" is a string, which the agent rejects.
func (p *parser) version(got map[string]entry, root *yaml.Node) {
	e, ok := got["version"]
	if !ok || isNull(e.value) {
		line := root.Line
		if ok {
			line = e.line
		}
		p.errorf(line, "version", "missing: the first line of an appspec is version: 0.0")
		return
	}
	v := e.value
	if v.Kind == yaml.ScalarNode && !isQuoted(v) && (v.Tag == "!!int" || v.Tag == "!!float") {
		if f, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64); err == nil && f == 0 {
			p.spec.Version = "0.0"
			return
		}
	}
	if v.Kind == yaml.ScalarNode && isQuoted(v) && v.Value == "0.0" {
		p.errorf(v.Line, "version", `must be the number 0.0, got the quoted string "0.0"; CodeDeploy's agent rejects it, remove the quotes`)
		return
	}
	p.errorf(v.Line, "version", "must be 0.0 (the only AppSpec version), got %s", describe(v))
}

func (p *parser) os(got map[string]entry, root *yaml.Node) {
	e, ok := got["os"]
	if !ok || isNull(e.value) {
		line := root.Line
		if ok {
			line = e.line
		}
		p.errorf(line, "os", `missing: drover deploys to Linux, write os: linux`)
		return
	}
	v := e.value
	switch {
	case v.Kind == yaml.ScalarNode && v.Value == "linux":
		p.spec.OS = "linux"
	case v.Kind == yaml.ScalarNode && v.Value == "windows":
		p.errorf(v.Line, "os", `"windows" is not supported, want linux`)
	case v.Kind == yaml.ScalarNode && strings.EqualFold(v.Value, "linux"):
		p.errorf(v.Line, "os", `must be "linux" in lower case, got %q`, v.Value)
	default:
		p.errorf(v.Line, "os", `must be "linux", got %s`, describe(v))
	}
}

func (p *parser) fileExistsBehavior(e entry) {
	v := e.value
	if isNull(v) {
		return // CodeDeploy treats a null as absent: DISALLOW
	}
	if v.Kind == yaml.ScalarNode {
		switch b := FileExistsBehavior(v.Value); b {
		case Disallow, Overwrite, Retain:
			p.spec.FileExistsBehavior = b
			return
		}
		if b := FileExistsBehavior(strings.ToUpper(v.Value)); b == Disallow || b == Overwrite || b == Retain {
			p.errorf(v.Line, e.key, "must be DISALLOW, OVERWRITE or RETAIN in upper case, got %q", v.Value)
			return
		}
	}
	p.errorf(v.Line, e.key, "must be DISALLOW, OVERWRITE or RETAIN, got %s", describe(v))
}

// text returns the text of a scalar field, or reports that it must be one.
// Nulls must be handled by the caller.
func (p *parser) text(v *yaml.Node, field, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v.Line, field, "must be %s, got %s", what, describe(v))
		return "", false
	}
	return v.Value, true
}

// bundlePath cleans a path relative to the bundle root: a leading "/" means
// the bundle root, as in CodeDeploy. It fails when the path leaves the bundle.
func bundlePath(s string) (string, bool) {
	c := path.Clean(strings.TrimLeft(s, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	if c == "." {
		c = ""
	}
	return c, true
}

// instancePath cleans a path on the instance. CodeDeploy's agent expands a
// relative path against its working directory, which is "/" for the
// daemon; drover does the same and warns.
func (p *parser) instancePath(s string, line int, field string) (string, bool) {
	if strings.HasPrefix(s, "~") {
		p.errorf(line, field, "%q starts with ~, which depends on the agent's home directory; write the absolute path", s)
		return "", false
	}
	if !strings.HasPrefix(s, "/") {
		p.warnf(line, field, "%q is relative; it is read from / (as CodeDeploy's agent does), write %q", s, path.Clean("/"+s))
	}
	return path.Clean("/" + s), true
}

// required returns the value of a required key, or reports it missing.
func (p *parser) required(got map[string]entry, key string, line int, field, why string) (*yaml.Node, bool) {
	e, ok := got[key]
	if !ok || isNull(e.value) {
		if ok {
			line = e.line
		}
		p.errorf(line, join(field, key), "missing: %s", why)
		return nil, false
	}
	return e.value, true
}

func (p *parser) files(e entry) {
	v := e.value
	if isNull(v) {
		return
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "files", "must be a list of source/destination pairs, got %s", describe(v))
		return
	}
	for i, item := range p.items(v) {
		field := index("files", i)
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, field, "must be a mapping with source and destination, got %s", describe(item))
			continue
		}
		got := map[string]entry{}
		for _, k := range p.mapping(item, field) {
			got[k.key] = k
			switch k.key {
			case "source", "destination":
			case "file_exists_behavior":
				p.warnf(k.line, join(field, k.key), "ignored here (as CodeDeploy does); file_exists_behavior belongs at the top level, next to files")
			default:
				p.unknownKey(k, field, fileKeys)
			}
		}
		f := File{Line: item.Line}
		ok := true
		if src, found := p.required(got, "source", item.Line, field, `a file or directory of the bundle to copy ("/" for the whole bundle)`); found {
			s, isText := p.text(src, field+".source", "a path in the bundle")
			switch {
			case !isText:
				ok = false
			case s == "":
				p.errorf(src.Line, field+".source", `is empty; write "/" to copy the whole bundle`)
				ok = false
			default:
				if f.Source, isText = bundlePath(s); !isText {
					p.errorf(src.Line, field+".source", "%q leads outside the bundle", s)
					ok = false
				}
				p.line(field+".source", src.Line)
			}
		} else {
			ok = false
		}
		if dst, found := p.required(got, "destination", item.Line, field, "the directory on the instance to copy to"); found {
			s, isText := p.text(dst, field+".destination", "an absolute path")
			switch {
			case !isText:
				ok = false
			case s == "":
				p.errorf(dst.Line, field+".destination", "is empty; write the absolute path of a directory on the instance")
				ok = false
			default:
				if f.Destination, isText = p.instancePath(s, dst.Line, field+".destination"); !isText {
					ok = false
				}
			}
		} else {
			ok = false
		}
		if ok {
			p.spec.Files = append(p.spec.Files, f)
		}
	}
}

func (p *parser) hooks(e entry) {
	v := e.value
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		hint := ""
		if v.Kind == yaml.SequenceNode {
			hint = " (a list of events is the Lambda and ECS format)"
		}
		p.errorf(v.Line, "hooks", "must be a mapping from lifecycle event names to lists of scripts, got %s%s", describe(v), hint)
		return
	}
	for _, ev := range p.mapping(v, "hooks") {
		field := join("hooks", ev.key)
		event, known := knownEvent(ev.key)
		if isNull(ev.value) {
			// CodeDeploy's agent drops keys without a value before it
			// checks event names, so an empty unknown key passes there too.
			if known && event.Scriptable() {
				p.warnf(ev.line, field, "lists no scripts")
			} else {
				p.warnf(ev.line, field, "lists no scripts and is ignored (it is not a scriptable lifecycle event; CodeDeploy ignores it too)")
			}
			continue
		}
		switch {
		case reservedEvents[ev.key]:
			p.errorf(ev.line, field, "is run by the deployment agent itself and cannot run scripts")
			continue
		case !known:
			names := make([]string, len(Events))
			for i, x := range Events {
				names[i] = string(x)
			}
			msg := "unknown lifecycle event"
			if now, ok := legacyEvents[ev.key]; ok {
				msg += fmt.Sprintf("; it is called %s now", now)
			} else if s := suggest(ev.key, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; scriptable events are " + strings.Join(scriptable(), ", ")
			}
			p.errorf(ev.line, field, "%s", msg)
			continue
		case !event.Scriptable():
			p.errorf(ev.line, field, "is run by the deployment agent itself and cannot run scripts (use BeforeInstall or AfterInstall)")
			continue
		}
		p.line(field, ev.line)
		list := ev.value
		switch {
		case list.Kind == yaml.MappingNode:
			p.errorf(list.Line, field, `must be a list of scripts; start each script with a dash: "- location: ..."`)
			continue
		case list.Kind != yaml.SequenceNode:
			p.errorf(list.Line, field, `must be a list of scripts, got %s; write "- location: %s"`, describe(list), list.Value)
			continue
		}
		var hooks []Hook
		var explicit time.Duration
		overLong := false
		for i, item := range p.items(list) {
			h, secs, ok := p.hook(item, index(field, i))
			if !ok {
				continue
			}
			if secs > 0 {
				explicit += time.Duration(secs) * time.Second
			}
			overLong = overLong || secs > int(DefaultHookTimeout/time.Second)
			hooks = append(hooks, h)
		}
		if explicit > DefaultHookTimeout && !overLong {
			p.errorf(ev.line, field, "script timeouts add up to %d seconds; one lifecycle event may take at most %d", explicit/time.Second, DefaultHookTimeout/time.Second)
		}
		if len(hooks) > 0 {
			p.spec.Hooks[event] = hooks
		}
	}
}

func knownEvent(name string) (Event, bool) {
	for _, e := range Events {
		if string(e) == name {
			return e, true
		}
	}
	return "", false
}

func scriptable() []string {
	var out []string
	for _, e := range Events {
		if e.Scriptable() {
			out = append(out, string(e))
		}
	}
	return out
}

// hook parses one script entry. secs is the explicit timeout, 0 when absent.
func (p *parser) hook(item *yaml.Node, field string) (h Hook, secs int, ok bool) {
	switch {
	case isNull(item):
		p.errorf(item.Line, field, "is empty; a script needs a location")
		return h, 0, false
	case item.Kind == yaml.ScalarNode:
		p.errorf(item.Line, field, "must be a mapping with a location, got the plain string %q; write \"- location: %s\"", item.Value, item.Value)
		return h, 0, false
	case item.Kind != yaml.MappingNode:
		p.errorf(item.Line, field, "must be a mapping with a location, got %s", describe(item))
		return h, 0, false
	}
	got := map[string]entry{}
	for _, k := range p.mapping(item, field) {
		got[k.key] = k
		if !contains(hookKeys, k.key) {
			p.unknownKey(k, field, hookKeys)
		}
	}
	h = Hook{Line: item.Line, Timeout: DefaultHookTimeout}
	ok = true
	if loc, found := p.required(got, "location", item.Line, field, "the path of the script in the bundle"); found {
		s, isText := p.text(loc, field+".location", "a path in the bundle")
		s = strings.TrimSpace(s)
		switch {
		case !isText:
			ok = false
		case s == "":
			p.errorf(loc.Line, field+".location", "is empty; write the path of the script in the bundle")
			ok = false
		default:
			clean, inside := bundlePath(s)
			switch {
			case !inside:
				p.errorf(loc.Line, field+".location", "%q leads outside the bundle", s)
				ok = false
			case clean == "":
				p.errorf(loc.Line, field+".location", "%q is the bundle root, not a script", s)
				ok = false
			default:
				h.Location = clean
				p.line(field+".location", loc.Line)
			}
		}
	} else {
		ok = false
	}
	if t, found := got["timeout"]; found && !isNull(t.value) {
		n, msg := seconds(t.value)
		if msg != "" {
			p.errorf(t.value.Line, field+".timeout", "%s", msg)
			ok = false
		} else {
			secs = n
			if n > int(DefaultHookTimeout/time.Second) {
				p.errorf(t.value.Line, field+".timeout", "is %d seconds; one lifecycle event may take at most %d", n, DefaultHookTimeout/time.Second)
				ok = false
			} else {
				h.Timeout = time.Duration(n) * time.Second
			}
		}
	}
	if r, found := got["runas"]; found && !isNull(r.value) {
		s, isText := p.text(r.value, field+".runas", "a user name")
		s = strings.TrimSpace(s)
		switch {
		case !isText:
			ok = false
		case !validName(s):
			p.errorf(r.value.Line, field+".runas", "%q is not a valid user name", s)
			ok = false
		default:
			h.RunAs = s // empty means the agent's user, as in CodeDeploy
		}
	}
	if s, found := got["sudo"]; found && !isNull(s.value) {
		if _, isBool := yamlBool(s.value); !isBool {
			p.errorf(s.value.Line, field+".sudo", "must be true or false, got %s", describe(s.value))
			ok = false
		}
	}
	return h, secs, ok
}

// seconds reads a timeout: a whole number of seconds, written as a number
// or a quoted string of digits. It returns a message when the value is bad.
func seconds(v *yaml.Node) (int, string) {
	bad := func() (int, string) {
		return 0, fmt.Sprintf("must be a positive number of seconds, got %s", describe(v))
	}
	if v.Kind != yaml.ScalarNode || v.Tag == "!!bool" {
		return bad()
	}
	if v.Tag == "!!float" && !isQuoted(v) {
		return 0, fmt.Sprintf("must be a whole number of seconds, got %s", describe(v))
	}
	s := strings.TrimSpace(v.Value)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return bad()
	}
	if neg || strings.Trim(s, "0") == "" {
		return 0, fmt.Sprintf("must be a positive number of seconds, got %s", v.Value)
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 9 {
		return 1 << 30, ""
	}
	n, _ := strconv.Atoi(s)
	return n, ""
}

// yamlBool reads a boolean, including the YAML 1.1 words (yes, no, on,
// off) that CodeDeploy's YAML reader takes as booleans.
func yamlBool(v *yaml.Node) (bool, bool) {
	if v.Kind != yaml.ScalarNode || isQuoted(v) {
		return false, false
	}
	switch strings.ToLower(v.Value) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// validName accepts user and group names: no blanks, no control
// characters, no ":" or "/", not starting with "-".
func validName(s string) bool {
	if s == "" {
		return true
	}
	if strings.HasPrefix(s, "-") || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
