package appspec

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

func (p *parser) permissions(e entry) {
	v := e.value
	if isNull(v) {
		return
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "permissions", "must be a list of entries with an object, got %s", describe(v))
		return
	}
	for i, item := range p.items(v) {
		field := index("permissions", i)
		if item.Kind != yaml.MappingNode {
			p.errorf(item.Line, field, "must be a mapping with an object, got %s", describe(item))
			continue
		}
		if perm, ok := p.permission(item, field); ok {
			p.spec.Permissions = append(p.spec.Permissions, perm)
		}
	}
}

func (p *parser) permission(item *yaml.Node, field string) (Permission, bool) {
	got := map[string]entry{}
	for _, k := range p.mapping(item, field) {
		got[k.key] = k
		if !contains(permissionKeys, k.key) {
			p.unknownKey(k, field, permissionKeys)
		}
	}
	perm := Permission{Line: item.Line, Pattern: "**", Types: []ObjectType{TypeFile, TypeDirectory}}
	ok := true
	fail := func(line int, f, format string, args ...any) {
		p.errorf(line, f, format, args...)
		ok = false
	}
	// optional returns the value of an optional key, nil when absent or null.
	optional := func(key string) *yaml.Node {
		if k, found := got[key]; found && !isNull(k.value) {
			p.line(join(field, key), k.line)
			return k.value
		}
		return nil
	}

	if obj, found := p.required(got, "object", item.Line, field, "the file or directory on the instance the entry applies to"); found {
		s, isText := p.text(obj, field+".object", "an absolute path")
		s = strings.TrimSpace(s)
		switch {
		case !isText:
			ok = false
		case s == "":
			fail(obj.Line, field+".object", "is empty; write the absolute path of a file or directory on the instance")
		default:
			var good bool
			if perm.Object, good = p.instancePath(s, obj.Line, field+".object"); !good {
				ok = false
			}
		}
	} else {
		ok = false
	}

	if v := optional("pattern"); v != nil {
		if s, isText := p.text(v, field+".pattern", "a quoted glob such as \"*.sh\""); isText {
			perm.Pattern = s
		} else {
			ok = false
		}
	}
	if v := optional("except"); v != nil {
		if v.Kind != yaml.SequenceNode {
			fail(v.Line, field+".except", "must be a list of globs such as [\"*.log\"], got %s", describe(v))
		} else {
			perm.Except = []string{}
			for j, x := range p.items(v) {
				if s, isText := p.text(x, index(field+".except", j), "a glob"); isText && !isNull(x) {
					perm.Except = append(perm.Except, s)
				} else {
					if isNull(x) {
						p.errorf(x.Line, index(field+".except", j), "is empty; write a glob")
					}
					ok = false
				}
			}
		}
	}
	if v := optional("type"); v != nil {
		if t, good := p.types(v, field+".type"); good {
			perm.Types = t
		} else {
			ok = false
		}
	}
	for _, key := range []string{"owner", "group"} {
		v := optional(key)
		if v == nil {
			continue
		}
		s, isText := p.text(v, join(field, key), "a name")
		s = strings.TrimSpace(s)
		switch {
		case !isText:
			ok = false
		case s == "" || !validName(s):
			fail(v.Line, join(field, key), "%q is not a valid %s name", s, map[string]string{"owner": "user", "group": "group"}[key])
		case key == "owner":
			perm.Owner = s
		default:
			perm.Group = s
		}
	}
	if v := optional("mode"); v != nil {
		if m, msg := parseMode(v); msg != "" {
			fail(v.Line, field+".mode", "%s", msg)
		} else {
			perm.Mode, perm.HasMode = m, true
		}
	}
	if v := optional("acls"); v != nil {
		if v.Kind != yaml.SequenceNode {
			fail(v.Line, field+".acls", "must be a list of ACL entries such as [\"u:bob:rw\"], got %s", describe(v))
		} else {
			perm.ACLs = []string{}
			for j, x := range p.items(v) {
				f := index(field+".acls", j)
				if isNull(x) || x.Kind != yaml.ScalarNode {
					fail(x.Line, f, "must be an ACL entry such as \"u:bob:rw\", got %s", describe(x))
					continue
				}
				a, msg := parseACE(x.Value)
				if msg != "" {
					fail(x.Line, f, "%s", msg)
					continue
				}
				perm.ACLs = append(perm.ACLs, a)
			}
		}
	}
	if v := optional("context"); v != nil {
		if c, good := p.context(v, field+".context"); good {
			perm.Context = c
		} else {
			ok = false
		}
	}
	return perm, ok
}

func (p *parser) types(v *yaml.Node, field string) ([]ObjectType, bool) {
	if v.Kind != yaml.SequenceNode {
		hint := ""
		if v.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf("; write [%s]", v.Value)
		}
		p.errorf(v.Line, field, "must be a list of object types (file, directory), got %s%s", describe(v), hint)
		return nil, false
	}
	var out []ObjectType
	ok := true
	for j, x := range p.items(v) {
		t := ObjectType(x.Value)
		if x.Kind != yaml.ScalarNode || (t != TypeFile && t != TypeDirectory) {
			p.errorf(x.Line, index(field, j), `must be "file" or "directory", got %s`, describe(x))
			ok = false
			continue
		}
		dup := false
		for _, y := range out {
			dup = dup || y == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	if ok && len(out) == 0 {
		p.errorf(v.Line, field, "is empty, so the entry would apply to nothing; list file, directory or both, or leave type out for both")
		return nil, false
	}
	return out, ok
}

// parseMode reads a mode the way CodeDeploy's agent does: the digits as
// written (padded with zeros to three), one to four octal digits. Unquoted
// leading zeros are kept as written: "mode: 0644" is 0644, as in CodeDeploy
// agent 2 (agent 1's YAML 1.1 reader took 0644 as the octal number 420).
func parseMode(v *yaml.Node) (fs.FileMode, string) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!bool" {
		return 0, fmt.Sprintf("must be an octal mode such as 644 or \"0755\", got %s", describe(v))
	}
	s := v.Value
	if s == "" {
		return 0, `is empty; write an octal mode such as 644 or "0755"`
	}
	if len(s) > 4 {
		return 0, fmt.Sprintf("%q has %d characters; a mode is one to four octal digits such as 644 or 4755", s, len(s))
	}
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, fmt.Sprintf("%q has the invalid character %q; a mode is one to four octal digits such as 644 or 4755", s, c)
		}
	}
	n, _ := strconv.ParseUint(s, 8, 32)
	m := fs.FileMode(n) & fs.ModePerm
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, ""
}

// parseACE reads one ACL entry with the grammar of CodeDeploy's agent:
//
//	[d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:][name]:perms
//
// where perms is any of r, w, x, - or one octal digit. It returns the entry
// in canonical setfacl form, or a message. Base entries (the owner, the
// owning group and other, without a name, outside default:) are rejected:
// mode sets them.
func parseACE(s string) (string, string) {
	invalid := func(why string) (string, string) {
		return "", fmt.Sprintf("invalid ACL entry %q: %s; the form is [d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:][name]:perms", s, why)
	}
	f := strings.Split(s, ":")
	n := len(f)
	if n < 2 || n > 4 {
		return invalid(fmt.Sprintf("it has %d parts", n))
	}
	isDefault := func(x string) bool { return x == "d" || x == "default" }
	def, typ, name := false, "", ""
	if n == 4 {
		if !isDefault(f[0]) {
			return invalid(fmt.Sprintf("%q is not d or default", f[0]))
		}
		def = true
	}
	if n >= 3 {
		switch t := f[n-3]; {
		case isDefault(t):
			if def {
				return invalid("default is given twice")
			}
			def = true
		case t == "u" || t == "user":
			typ = "user"
		case t == "g" || t == "group":
			typ = "group"
		case t == "m" || t == "mask":
			typ = "mask"
		case t == "o" || t == "other":
			typ = "other"
		default:
			return invalid(fmt.Sprintf("%q is not a type (u, g, m, o)", t))
		}
	}
	switch q := f[n-2]; {
	case (q == "m" || q == "mask") && typ == "":
		typ = "mask"
	case (q == "o" || q == "other") && typ == "":
		typ = "other"
	case q == "m" || q == "mask":
		name = "mask"
	case q == "o" || q == "other":
		name = "other"
	default:
		if typ == "" {
			typ = "user"
		}
		name = q
	}
	if (typ == "mask" || typ == "other") && name != "" {
		return invalid(typ + " entries take no name")
	}
	if !def && typ != "mask" && name == "" {
		return "", fmt.Sprintf("%q is a base ACL entry (owner, owning group or other); set it with mode instead", s)
	}
	var r, w, x bool
	perms := f[n-1]
	if len(perms) == 1 && perms[0] >= '0' && perms[0] <= '7' {
		d := perms[0] - '0'
		r, w, x = d&4 != 0, d&2 != 0, d&1 != 0
	} else {
		for _, c := range perms {
			switch c {
			case 'r':
				r = true
			case 'w':
				w = true
			case 'x':
				x = true
			case '-':
			default:
				return "", fmt.Sprintf("ACL entry %q has the invalid permission character %q; use r, w, x, - or one octal digit", s, c)
			}
		}
	}
	var b strings.Builder
	if def {
		b.WriteString("default:")
	}
	b.WriteString(typ + ":" + name + ":")
	for _, bit := range []struct {
		on bool
		c  byte
	}{{r, 'r'}, {w, 'w'}, {x, 'x'}} {
		if bit.on {
			b.WriteByte(bit.c)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String(), ""
}

// isDefaultACE reports whether a canonical entry is a default ACL entry,
// which only directories can carry.
func isDefaultACE(canonical string) bool { return strings.HasPrefix(canonical, "default:") }

// CanonicalACE checks one appspec acls entry and returns it in canonical
// setfacl form ("default:user:bob:rw-"), and whether it is a default entry.
// Parse already stores entries this way; Install calls it again so that an
// AppSpec built by other means is held to the same rules.
func CanonicalACE(s string) (canonical string, isDefault bool, err error) {
	c, problem := parseACE(s)
	if problem != "" {
		return "", false, errors.New(problem)
	}
	return c, isDefaultACE(c), nil
}

func (p *parser) context(v *yaml.Node, field string) (*SELinuxContext, bool) {
	if v.Kind != yaml.MappingNode {
		p.errorf(v.Line, field, "must be a mapping with type (and optionally name and range), got %s", describe(v))
		return nil, false
	}
	got := map[string]entry{}
	for _, k := range p.mapping(v, field) {
		got[k.key] = k
		if !contains(contextKeys, k.key) {
			p.unknownKey(k, field, contextKeys)
		}
	}
	c := &SELinuxContext{}
	ok := true
	if t, found := p.required(got, "type", v.Line, field, "an SELinux type such as httpd_sys_content_t"); found {
		if s, isText := p.text(t, field+".type", "an SELinux type"); isText && strings.TrimSpace(s) != "" {
			c.Type = strings.TrimSpace(s)
		} else {
			if isText {
				p.errorf(t.Line, field+".type", "is empty")
			}
			ok = false
		}
	} else {
		ok = false
	}
	var userLine int
	for _, key := range []string{"name", "user"} {
		e, found := got[key]
		if !found || isNull(e.value) {
			continue
		}
		s, isText := p.text(e.value, join(field, key), "an SELinux user")
		if !isText {
			ok = false
			continue
		}
		if c.User != "" && c.User != s {
			p.errorf(e.value.Line, join(field, key), "%q differs from name %q given at line %d; both set the SELinux user", s, c.User, userLine)
			ok = false
			continue
		}
		c.User, userLine = s, e.value.Line
	}
	if e, found := got["role"]; found && !isNull(e.value) {
		p.warnf(e.line, field+".role", "ignored: CodeDeploy does not support SELinux roles")
	}
	if e, found := got["range"]; found && !isNull(e.value) {
		s, isText := p.text(e.value, field+".range", "an SELinux range such as s0 or s0-s3:c0.c255")
		if !isText {
			ok = false
		} else if r, msg := parseRange(s); msg != "" {
			p.errorf(e.value.Line, field+".range", "%s", msg)
			ok = false
		} else {
			c.Range = r
		}
	}
	return c, ok
}

// parseRange reads an MLS range as CodeDeploy's agent does:
// s#[-s#][:c#[.c#](,c#[.c#])*], categories 0 to 1023, each at most once.
func parseRange(s string) (*SELinuxRange, string) {
	bad := func(why string) (*SELinuxRange, string) {
		return nil, fmt.Sprintf("invalid SELinux range %q: %s; the form is s#[-s#][:c#[.c#](,c#[.c#])*]", s, why)
	}
	sens, cats, hasCats := strings.Cut(s, ":")
	if sens == "" || (hasCats && cats == "") {
		return bad("a part is empty")
	}
	lowS, highS, hasHigh := strings.Cut(sens, "-")
	if lowS == "" || (hasHigh && highS == "") {
		return bad("a sensitivity is empty")
	}
	low, ok := level(lowS, 's', 1<<20)
	if !ok {
		return bad(fmt.Sprintf("%q is not a sensitivity such as s0", lowS))
	}
	high := low
	if hasHigh {
		if high, ok = level(highS, 's', 1<<20); !ok {
			return bad(fmt.Sprintf("%q is not a sensitivity such as s0", highS))
		}
		if high < low {
			return bad("the high sensitivity is below the low one")
		}
	}
	lowText, highText := "s"+strconv.Itoa(low), "s"+strconv.Itoa(high)
	if hasCats {
		parts := strings.Split(cats, ",")
		for len(parts) > 0 && parts[len(parts)-1] == "" { // as Ruby's split drops trailing empties
			parts = parts[:len(parts)-1]
		}
		var list []int
		for _, part := range parts {
			a, b, isRange := strings.Cut(part, ".")
			if isRange && (a == "" || b == "") {
				return bad(fmt.Sprintf("%q is not a category range such as c0.c5", part))
			}
			lo, ok := level(a, 'c', 1023)
			if !ok {
				return bad(fmt.Sprintf("%q is not a category c0 to c1023", a))
			}
			hi := lo
			if isRange {
				if hi, ok = level(b, 'c', 1023); !ok {
					return bad(fmt.Sprintf("%q is not a category c0 to c1023", b))
				}
				if hi < lo {
					return bad(fmt.Sprintf("category range %q goes downwards", part))
				}
			}
			for c := lo; c <= hi; c++ {
				list = append(list, c)
			}
		}
		if len(list) == 0 {
			return bad("no categories after \":\"")
		}
		sort.Ints(list)
		for i := 1; i < len(list); i++ {
			if list[i] == list[i-1] {
				return bad(fmt.Sprintf("category c%d is given twice", list[i]))
			}
		}
		var b strings.Builder
		for i := 0; i < len(list); {
			j := i
			for j+1 < len(list) && list[j+1] == list[j]+1 {
				j++
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			if j == i {
				fmt.Fprintf(&b, "c%d", list[i])
			} else {
				fmt.Fprintf(&b, "c%d.c%d", list[i], list[j])
			}
			i = j + 1
		}
		highText += ":" + b.String()
		if low == high {
			lowText = highText
		}
	}
	return &SELinuxRange{Low: lowText, High: highText}, ""
}

// level reads "s12" or "c7": the prefix then decimal digits, at most limit.
func level(s string, prefix byte, limit int) (int, bool) {
	if len(s) < 2 || s[0] != prefix || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= limit
}
