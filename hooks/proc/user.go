package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// account is what runas needs from a passwd entry.
type account struct {
	name     string
	uid, gid uint32
	groups   []uint32
	home     string
	shell    string
}

// errNoUser is returned for a runas user that does not exist.
var errNoUser = errors.New("no such user")

// lookupUser finds name (or a numeric uid) in /etc/passwd, then through NSS
// with getent(1) (LDAP, sssd), and its supplementary groups.
func lookupUser(ctx context.Context, name string) (*account, error) {
	a, err := lookupPasswdFile("/etc/passwd", name)
	if errors.Is(err, errNoUser) {
		a, err = lookupGetent(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	a.groups = []uint32{a.gid}
	if u, err := user.LookupId(strconv.FormatUint(uint64(a.uid), 10)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			a.groups = a.groups[:0]
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					a.groups = append(a.groups, uint32(g))
				}
			}
		}
	}
	return a, nil
}

func lookupPasswdFile(path, name string) (*account, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errNoUser
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		a, ok := parsePasswdLine(sc.Text())
		if ok && a.matches(name) {
			return a, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return nil, errNoUser
}

func lookupGetent(ctx context.Context, name string) (*account, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getent", "passwd", "--", name).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 { // key not found
		return nil, errNoUser
	}
	if err != nil {
		return nil, fmt.Errorf("getent passwd %s: %w", name, err)
	}
	for line := range strings.SplitSeq(string(bytes.TrimSpace(out)), "\n") {
		if a, ok := parsePasswdLine(line); ok && a.matches(name) {
			return a, nil
		}
	}
	return nil, errNoUser
}

// parsePasswdLine parses name:passwd:uid:gid:gecos:home:shell.
func parsePasswdLine(line string) (*account, bool) {
	f := strings.Split(line, ":")
	if len(f) != 7 || f[0] == "" || strings.HasPrefix(f[0], "+") || strings.HasPrefix(f[0], "-") {
		return nil, false
	}
	uid, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return nil, false
	}
	gid, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return nil, false
	}
	shell := f[6]
	if shell == "" {
		shell = "/bin/sh" // as login(1) does
	}
	return &account{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5], shell: shell}, true
}

func (a *account) matches(name string) bool {
	if a.name == name {
		return true
	}
	uid, err := strconv.ParseUint(name, 10, 32)
	return err == nil && uint32(uid) == a.uid
}

// credential is what the child switches to; nil when it already runs as the
// user and could not set groups anyway (an agent that is not root).
func (a *account) credential() *syscall.Credential {
	if os.Geteuid() != 0 && uint32(os.Geteuid()) == a.uid && uint32(os.Getegid()) == a.gid {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// Default PATHs, as Debian's login.defs sets them.
const (
	rootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	userPath = "/usr/local/bin:/usr/bin:/bin"
)

// env is the login-like environment: extra without the login variables, then
// HOME, LOGNAME, PATH, SHELL and USER of the account.
func (a *account) env(extra []string) []string {
	path := userPath
	if a.uid == 0 {
		path = rootPath
	}
	login := []string{"HOME=" + a.home, "LOGNAME=" + a.name, "PATH=" + path, "SHELL=" + a.shell, "USER=" + a.name}
	out := make([]string, 0, len(extra)+len(login))
	for _, kv := range extra {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HOME", "LOGNAME", "PATH", "SHELL", "USER":
		default:
			out = append(out, kv)
		}
	}
	return append(out, login...)
}
