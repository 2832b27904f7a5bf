// Package install performs the Install lifecycle event: it undoes the
// previous deployment's cleanup list, copies the files section of an appspec
// from the unpacked bundle into place, and applies the permissions section to
// what it installed, with AWS CodeDeploy's semantics (EC2/On-Premises, Linux
// agent), except where noted as deliberately better.
//
// CodeDeploy semantics followed:
//   - files: a source that is a directory (not a link to one) is copied
//     recursively into the destination directory; any other source (a file,
//     a symbolic link) is copied into the destination directory under its own
//     name. A source of "/" or "" is the whole bundle, appspec.yml included.
//     Missing ancestors of the destination are created. Symbolic links are
//     copied as links.
//   - file_exists_behavior applies to destination files that exist after the
//     previous deployment's files have been removed: DISALLOW fails the
//     deployment, OVERWRITE replaces the file (and records it in this
//     deployment's cleanup list, so the next deployment removes it), RETAIN
//     keeps it (not recorded, and permissions do not touch it). Every
//     conflict is found before anything is copied.
//   - the cleanup list names every file, link and directory created, one per
//     line, written before the creation; the next Install removes them in
//     reverse order, directories only when empty.
//   - permissions: an object that this deployment copied as a file gets the
//     permission itself (pattern must be "**", no except, no default ACL
//     entries); an object that is a directory (created now or existing)
//     selects what this deployment installed strictly below it: pattern
//     "**" selects everything at any depth, any other pattern (only "*" is
//     special) and every except glob match direct children only. type
//     restricts to files or directories. One object may be selected by one
//     permissions entry only. SELinux contexts use semanage fcontext and
//     restorecon, and are recorded in the cleanup list so the next deployment
//     deletes the rules.
//
// Deliberately different:
//   - DISALLOW conflicts are also checked before the previous deployment's
//     files are removed, so a DISALLOW failure leaves the host untouched.
//   - An existing destination is tested without following a final symbolic
//     link; OVERWRITE replaces the link itself, never writes through it.
//   - Files are written under a temporary name and renamed over an existing
//     destination, so a running executable is replaced rather than failing
//     with "text file busy", and readers never see a partial file.
//   - Ownership is applied before the mode, so chown does not clear setuid
//     and setgid bits that the mode asks for. Owner and group may be numeric.
//   - acls are added with setfacl -m (CodeDeploy computes a full ACL and
//     uses --set; on freshly installed files the result is the same).
//   - Permissions never follow symbolic links: links get owner and group
//     (lchown) and are skipped for mode, acls and context.
//   - Directories are created with mode 0755 (less the umask), as
//     CodeDeploy's mkdir does; file modes and modification times are copied
//     from the bundle.
//   - Durability: the cleanup list is fsynced before each batch of copies;
//     the installed files are flushed with one syncfs per file system at the
//     end rather than one fsync per file.
package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/drover-dev/drover/hooks/appspec"
)

// Options says where to install from and to.
type Options struct {
	Root            string // prefix for every destination and permissions object; "" or "/" = none
	BundleDir       string // unpacked bundle
	CleanupFile     string // this deployment's cleanup list; created or appended, fsynced before each batch of copies
	PrevCleanupFile string // previous deployment's list; "" or missing file = none. Never modified.
	// DeferSync leaves the flush of the installed files to the caller:
	// Result.Unsynced names one directory per file system written, for
	// Sync. The lifecycle flushes at its commit point (before it records
	// success), so the kernel writes back while the later hooks run.
	DeferSync bool
	Logger    *slog.Logger
}

// Result counts what Install did.
type Result struct {
	Files   int   // files and symbolic links copied
	Dirs    int   // directories created
	Bytes   int64 // bytes of file content copied
	Removed int   // entries of the previous cleanup list removed
	// Unsynced is set with Options.DeferSync: one directory on each file
	// system Install wrote to, which Sync flushes.
	Unsynced []string
}

// ErrFileExists is wrapped by the error for a DISALLOW conflict.
var ErrFileExists = errors.New("file exists")

// Install runs the Install event for spec. Errors name the file and what went
// wrong. On error, what was already created is named in opt.CleanupFile.
func Install(ctx context.Context, spec *appspec.AppSpec, opt Options) (Result, error) {
	in, err := newInstaller(opt)
	if err != nil {
		return Result{}, err
	}
	return in.run(ctx, spec)
}

// installer holds one Install run. The unexported fields are seams for tests.
type installer struct {
	opt  Options
	root string // "" for none
	log  *slog.Logger

	umask      uint32                 // the process umask, read once
	workers    int                    // copy goroutines
	batch      int                    // copies per cleanup-list fsync
	beforeCopy func(dst string) error // test hook: called before each copy
	selinuxFS  string                 // where selinuxfs is mounted
	lookPath   func(string) (string, error)
	runCmd     func(ctx context.Context, name string, args ...string) ([]byte, error)
}

func newInstaller(opt Options) (*installer, error) {
	in := &installer{
		opt:       opt,
		log:       opt.Logger,
		umask:     processUmask(),
		workers:   min(4, 2*runtime.GOMAXPROCS(0)),
		batch:     1024,
		selinuxFS: "/sys/fs/selinux",
		lookPath:  exec.LookPath,
		runCmd:    runCmd,
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if opt.BundleDir == "" {
		return nil, errors.New("install: no bundle directory")
	}
	if opt.CleanupFile == "" {
		return nil, errors.New("install: no cleanup file")
	}
	if r := opt.Root; r != "" && r != "/" {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("install: root %q is not an absolute path", r)
		}
		r = filepath.Clean(r)
		fi, err := os.Stat(r)
		if err != nil {
			return nil, fmt.Errorf("install: root: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("install: root %s is not a directory", r)
		}
		in.root = r
	}
	return in, nil
}

func runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// hostPath maps an absolute instance path to the host path under the root.
func (in *installer) hostPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	return filepath.Join("/", in.root, filepath.Clean(p)), nil
}

func (in *installer) run(ctx context.Context, spec *appspec.AppSpec) (Result, error) {
	var res Result
	if spec == nil {
		return res, errors.New("install: no appspec")
	}
	behavior := spec.FileExistsBehavior
	switch behavior {
	case "":
		behavior = appspec.Disallow
	case appspec.Disallow, appspec.Overwrite, appspec.Retain:
	default:
		return res, fmt.Errorf("install: file_exists_behavior %q is not DISALLOW, OVERWRITE or RETAIN", behavior)
	}
	bundle, err := filepath.Abs(in.opt.BundleDir)
	if err != nil {
		return res, fmt.Errorf("install: bundle directory: %w", err)
	}

	prev, err := readCleanupList(in.opt.PrevCleanupFile)
	if err != nil {
		return res, fmt.Errorf("install: previous cleanup list: %w", err)
	}

	// Find DISALLOW conflicts as if the previous files were already gone,
	// before removing anything.
	if behavior == appspec.Disallow && len(spec.Files) > 0 && len(prev) > 0 {
		pre := newPlanner(in, bundle, behavior, newAfterCleanupView(prev))
		if err := pre.planFiles(spec.Files); err != nil {
			return res, err
		}
		if err := pre.conflictErr(); err != nil {
			return res, err
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	removed, err := in.removePrevious(ctx, prev)
	res.Removed = removed
	if err != nil {
		return res, err
	}

	p := newPlanner(in, bundle, behavior, osView{})
	if err := p.planFiles(spec.Files); err != nil {
		return res, err
	}
	if err := p.conflictErr(); err != nil {
		return res, err
	}
	perms, err := in.planPermissions(spec, p)
	if err != nil {
		return res, err
	}

	list, err := openCleanupList(in.opt.CleanupFile)
	if err != nil {
		return res, fmt.Errorf("install: cleanup list: %w", err)
	}
	defer list.close()

	err = in.execute(ctx, p, list, &res)
	if err == nil {
		err = in.applyPermissions(ctx, perms, list)
	}
	if err == nil {
		var dirs []string
		if dirs, err = syncTargets(p); err == nil {
			if in.opt.DeferSync {
				res.Unsynced = dirs
			} else {
				err = Sync(dirs)
			}
		}
	}
	if cerr := list.close(); err == nil && cerr != nil {
		err = fmt.Errorf("install: cleanup list: %w", cerr)
	}
	if err != nil {
		return res, err
	}
	in.log.Info("install done", "files", res.Files, "dirs", res.Dirs, "bytes", res.Bytes, "removed", res.Removed)
	return res, nil
}
