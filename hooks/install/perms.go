package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"

	"github.com/drover-dev/drover/hooks/appspec"
)

// permTarget is one installed object and the permissions entry for it.
type permTarget struct {
	path string
	link bool // a symbolic link: lchown only
	perm *appspec.Permission
	uid  int // -1: unchanged
	gid  int // -1: unchanged
	acl  string
}

// planPermissions selects, for each permissions entry, what this deployment
// installs, as CodeDeploy does (see the package comment), and resolves
// owners, groups and acls, so that errors surface before anything is copied.
func (in *installer) planPermissions(spec *appspec.AppSpec, p *planner) ([]permTarget, error) {
	var out []permTarget
	owner := make(map[string]int) // path -> index in out
	users := make(map[string]int)
	groups := make(map[string]int)
	needContext := ""
	for i := range spec.Permissions {
		perm := &spec.Permissions[i]
		obj, err := in.hostPath(perm.Object)
		if err != nil {
			return nil, fmt.Errorf("install: permissions (appspec line %d): object %w", perm.Line, err)
		}
		uid, gid := -1, -1
		if perm.Owner != "" {
			if uid, err = lookupID(users, perm.Owner, lookupUser); err != nil {
				return nil, fmt.Errorf("install: permissions for %s (appspec line %d): owner %q: %w", perm.Object, perm.Line, perm.Owner, err)
			}
		}
		if perm.Group != "" {
			if gid, err = lookupID(groups, perm.Group, lookupGroup); err != nil {
				return nil, fmt.Errorf("install: permissions for %s (appspec line %d): group %q: %w", perm.Object, perm.Line, perm.Group, err)
			}
		}
		acl, hasDefault, err := normalizeACL(perm.ACLs)
		if err != nil {
			return nil, fmt.Errorf("install: permissions for %s (appspec line %d): %w", perm.Object, perm.Line, err)
		}
		if perm.Context != nil && perm.Context.Role != "" {
			return nil, fmt.Errorf("install: permissions for %s (appspec line %d): an SELinux context may not set a role", perm.Object, perm.Line)
		}
		add := func(path string, link bool) error {
			if j, dup := owner[path]; dup {
				return fmt.Errorf("install: permissions for %s are set more than once (appspec lines %d and %d)", path, out[j].perm.Line, perm.Line)
			}
			owner[path] = len(out)
			out = append(out, permTarget{path: path, link: link, perm: perm, uid: uid, gid: gid, acl: acl})
			if perm.Context != nil && !link && needContext == "" {
				needContext = path
			}
			return nil
		}
		wantFiles, wantDirs := hasType(perm.Types, appspec.TypeFile), hasType(perm.Types, appspec.TypeDirectory)
		pattern := perm.Pattern
		if pattern == "" {
			pattern = "**"
		}

		if ci, ok := p.copyIndex[obj]; ok {
			if !wantFiles {
				continue
			}
			if pattern != "**" || len(perm.Except) > 0 {
				return nil, fmt.Errorf("install: permissions for %s (appspec line %d): object is a file, so pattern must be \"**\" and except empty", perm.Object, perm.Line)
			}
			if hasDefault {
				return nil, fmt.Errorf("install: permissions for %s (appspec line %d): default acl entries (d:) apply to directories only", perm.Object, perm.Line)
			}
			if err := add(obj, p.copies[ci].link); err != nil {
				return nil, err
			}
			continue
		}
		if !p.isMkdir[obj] {
			fi, err := os.Stat(obj)
			if err != nil || !fi.IsDir() {
				in.log.Debug("permissions object not installed by this deployment", "object", obj, "line", perm.Line)
				continue
			}
		}
		base := strings.TrimSuffix(obj, "/") + "/"
		if wantFiles {
			for _, c := range p.copies {
				if !matches(c.dst, base, pattern, perm.Except) {
					continue
				}
				if hasDefault {
					return nil, fmt.Errorf("install: permissions for %s (appspec line %d): default acl entries (d:) apply to directories only, and %s is a file", perm.Object, perm.Line, c.dst)
				}
				if err := add(c.dst, c.link); err != nil {
					return nil, err
				}
			}
		}
		if wantDirs {
			for _, d := range p.mkdirs {
				if matches(d, base, pattern, perm.Except) {
					if err := add(d, false); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	if needContext != "" {
		if err := in.checkSELinux(); err != nil {
			return nil, fmt.Errorf("install: permissions set an SELinux context on %s, but %w", needContext, err)
		}
	}
	return out, nil
}

func hasType(types []appspec.ObjectType, t appspec.ObjectType) bool {
	if len(types) == 0 {
		return true
	}
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// matches is CodeDeploy's matches_pattern? && !matches_except?: name must lie
// strictly below base; "**" takes any depth, any other pattern and the
// except globs only direct children.
func matches(name, base, pattern string, except []string) bool {
	rel, ok := strings.CutPrefix(name, base)
	if !ok || rel == "" {
		return false
	}
	if pattern != "**" && !simpleGlob(rel, pattern) {
		return false
	}
	for _, e := range except {
		if simpleGlob(rel, e) {
			return false
		}
	}
	return true
}

// simpleGlob matches name, which must not contain "/", against pattern, in
// which only "*" is special.
func simpleGlob(name, pattern string) bool {
	if strings.Contains(name, "/") {
		return false
	}
	// Classic two-pointer wildcard match with backtracking to the last star.
	n, p := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lookupID(cache map[string]int, name string, lookup func(string) (int, error)) (int, error) {
	if id, ok := cache[name]; ok {
		return id, nil
	}
	id, err := lookup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			id, err = n, nil
		}
	}
	if err != nil {
		return 0, err
	}
	cache[name] = id
	return id, nil
}

func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// normalizeACL turns appspec acl entries into one setfacl -m argument in the
// canonical "[default:]type:name:rwx" form, following CodeDeploy's rules:
// [d[efault]:][u[ser]:|g[roup]:|m[ask]:|o[ther]:]name:perms, perms as rwx
// letters or one octal digit; base entries (no name) only through mode.
func normalizeACL(acls []string) (spec string, hasDefault bool, err error) {
	out := make([]string, 0, len(acls))
	for _, a := range acls {
		e, def, err := appspec.CanonicalACE(a)
		if err != nil {
			return "", false, err
		}
		hasDefault = hasDefault || def
		out = append(out, e)
	}
	return strings.Join(out, ","), hasDefault, nil
}

// both fs.FileMode's setuid/setgid/sticky flags and raw 04000/02000/01000.
func unixPerm(m fs.FileMode) fs.FileMode {
	out := m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	raw := uint32(m) & 0o7000
	if raw&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if raw&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if raw&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// applyPermissions applies mode, then owner and group, then acls, then
// SELinux contexts. Mode before owner is CodeDeploy's order, and it matters:
// chown(2) clears the setuid bit of a regular file (and setgid, when the
// group may execute it), so "mode: 4755" with "owner:" ends 0755 as it does
// under CodeDeploy — a migrating team never silently gains a setuid bit.
// Each entry where that happens is logged.
func (in *installer) applyPermissions(ctx context.Context, targets []permTarget, list *cleanupList) error {
	for _, t := range targets {
		if !t.perm.HasMode || t.link {
			continue
		}
		if err := os.Chmod(t.path, unixPerm(t.perm.Mode)); err != nil {
			return fmt.Errorf("install: permissions (appspec line %d): set mode of %s: %w", t.perm.Line, t.path, err)
		}
	}
	cleared := map[*appspec.Permission]int{}
	for _, t := range targets {
		if t.uid < 0 && t.gid < 0 {
			continue
		}
		special := !t.link && t.perm.HasMode && unixPerm(t.perm.Mode)&(fs.ModeSetuid|fs.ModeSetgid) != 0
		if err := os.Lchown(t.path, t.uid, t.gid); err != nil {
			return fmt.Errorf("install: permissions (appspec line %d): set owner of %s: %w", t.perm.Line, t.path, err)
		}
		if special {
			if fi, err := os.Lstat(t.path); err == nil && fi.Mode().IsRegular() && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != unixPerm(t.perm.Mode)&(fs.ModeSetuid|fs.ModeSetgid) {
				cleared[t.perm]++
			}
		}
	}
	for _, t := range targets {
		if n := cleared[t.perm]; n > 0 {
			in.log.Warn(fmt.Sprintf("permissions (appspec line %d): the owner change cleared the setuid/setgid bit of %d files under %s, as CodeDeploy's agent does (it sets the mode, then the owner); set the bit in a hook if it is meant", t.perm.Line, n, t.perm.Object))
			delete(cleared, t.perm)
		}
	}
	if err := in.applyACLs(ctx, targets); err != nil {
		return err
	}
	return in.applyContexts(ctx, targets, list)
}

// setfaclBatch bounds the number of paths given to one setfacl.
const setfaclBatch = 256

func (in *installer) applyACLs(ctx context.Context, targets []permTarget) error {
	byACL := make(map[string][]string)
	var order []string
	for _, t := range targets {
		if t.acl == "" || t.link {
			continue
		}
		if _, ok := byACL[t.acl]; !ok {
			order = append(order, t.acl)
		}
		byACL[t.acl] = append(byACL[t.acl], t.path)
	}
	if len(order) == 0 {
		return nil
	}
	setfacl, err := in.lookPath("setfacl")
	if err != nil {
		return fmt.Errorf("install: permissions set acls, but setfacl was not found (install the acl package): %w", err)
	}
	for _, acl := range order {
		paths := byACL[acl]
		for len(paths) > 0 {
			n := min(len(paths), setfaclBatch)
			args := append([]string{"-m", acl, "--"}, paths[:n]...)
			if out, err := in.runCmd(ctx, setfacl, args...); err != nil {
				return fmt.Errorf("install: setfacl -m %s on %s: %w: %s", acl, describePaths(paths[:n]), err, strings.TrimSpace(string(out)))
			}
			paths = paths[n:]
		}
	}
	return nil
}

func describePaths(ps []string) string {
	if len(ps) == 1 {
		return ps[0]
	}
	return fmt.Sprintf("%s and %d more", ps[0], len(ps)-1)
}

// checkSELinux reports why SELinux contexts cannot be set here, if so.
func (in *installer) checkSELinux() error {
	if _, err := os.Stat(in.selinuxFS + "/enforce"); err != nil {
		return errors.New("SELinux is not enabled on this host")
	}
	for _, tool := range []string{"semanage", "restorecon"} {
		if _, err := in.lookPath(tool); err != nil {
			return fmt.Errorf("%s was not found in PATH (install policycoreutils and policycoreutils-python-utils)", tool)
		}
	}
	return nil
}

// contextRule is the semanage fcontext file specification (a regular
// expression) that matches exactly path.
func contextRule(path string) string { return regexp.QuoteMeta(path) }

func (in *installer) applyContexts(ctx context.Context, targets []permTarget, list *cleanupList) error {
	var labelled []string
	for _, t := range targets {
		c := t.perm.Context
		if c == nil || t.link {
			continue
		}
		args := []string{"fcontext", "-a"}
		if c.User != "" {
			args = append(args, "-s", c.User)
		}
		args = append(args, "-t", c.Type)
		if c.Range != nil && c.Range.Low != "" {
			r := c.Range.Low
			if c.Range.High != "" && c.Range.High != c.Range.Low {
				r += "-" + c.Range.High
			}
			args = append(args, "-r", r)
		}
		args = append(args, "--", contextRule(t.path))
		list.addSemanage(t.path)
		if err := list.commit(); err != nil {
			return fmt.Errorf("install: cleanup list: %w", err)
		}
		if out, err := in.runCmd(ctx, "semanage", args...); err != nil {
			return fmt.Errorf("install: permissions (appspec line %d): semanage %s: %w: %s", t.perm.Line, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		labelled = append(labelled, t.path)
	}
	for len(labelled) > 0 {
		n := min(len(labelled), setfaclBatch)
		args := append([]string{"-v", "--"}, labelled[:n]...)
		if out, err := in.runCmd(ctx, "restorecon", args...); err != nil {
			return fmt.Errorf("install: restorecon on %s: %w: %s", describePaths(labelled[:n]), err, strings.TrimSpace(string(out)))
		}
		labelled = labelled[n:]
	}
	return nil
}

// deleteContextRule removes a rule an earlier deployment added. Failures are
// logged, not returned, as CodeDeploy ignores them.
func (in *installer) deleteContextRule(ctx context.Context, path string) {
	if _, err := in.lookPath("semanage"); err != nil {
		in.log.Warn("cleanup list: cannot delete SELinux rule: semanage not found", "path", path)
		return
	}
	if out, err := in.runCmd(ctx, "semanage", "fcontext", "-d", "--", contextRule(path)); err != nil {
		in.log.Warn("cleanup list: semanage fcontext -d failed", "path", path, "err", err, "output", strings.TrimSpace(string(out)))
	}
}
