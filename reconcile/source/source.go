// Package source answers, for one application, two questions about where its
// revisions are published: "what is the desired revision now?" and "put this
// revision's bundle into this directory". Implementations live in
// sub-packages (gitsrc, s3src, dirsrc); sourcetest holds the contract suite
// every implementation passes.
//
// A Poller wraps a Source with the policy the reconcile loop needs: it keeps
// the last valid desired revision when the source publishes an invalid
// manifest or a bundle its Check refuses, backs off with jitter while the
// source fails, and counts polls.
//
// # Errors
//
// A source fails loudly. A place in the configuration that does not exist
// (a git branch, a path on it, its manifest.yaml, an S3 bucket, a prefix
// with nothing under it, a bundle key, a directory) is an error wrapping
// ErrNotFound whose message names the place (without credentials) and,
// when something close exists, suggests it; refused credentials wrap
// ErrAccessDenied; an unreachable server is a plain error. The Poller
// counts all of them as ResultError, logs each distinct one at Warn, shows
// it in Status.LastError and does not advance Status.LastSuccess, so the
// "source stale" alert fires.
//
// ErrNoManifest (ResultEmpty) is left for one state only: the place
// exists and holds files, but no manifest.yaml yet. S3 and directory
// publishing are not atomic: drover push uploads the bundle first and
// writes the manifest last, and a directory release renames the manifest
// in last. Git commits are atomic, so a git source never reports it: a
// path without manifest.yaml is ErrNotFound. Empty polls are logged at
// Info, shown in Status.LastError (it says why nothing is desired) and do
// not advance LastSuccess either.
package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/drover-dev/drover/reconcile/manifest"
)

// Revision is one desired revision as a source sees it.
type Revision struct {
	// ID is the content identity, the same on every host:
	// git: the commit that last changed the manifest or the bundle directory;
	// s3: the bundle's sha256; dir: sha256 over the manifest and bundle tree.
	ID string
	// Label is the manifest's revision label, or ID when it has none.
	Label string
	// Manifest is the validated manifest naming this revision.
	Manifest *manifest.Manifest
	// Env is what hooks get about the bundle: BUNDLE_COMMIT (git) or
	// BUNDLE_BUCKET, BUNDLE_KEY, BUNDLE_ETAG (s3). Empty for dir.
	Env map[string]string
}

// Source is where one application's desired revision is published.
// Desired and Fetch may be called from different goroutines.
type Source interface {
	// Desired reports the revision published now. It is cheap when nothing
	// changed (a ref listing, a conditional GET, a stat walk). It returns an
	// error wrapping ErrNotFound when the configured place does not exist,
	// ErrNoManifest when it exists but its manifest is not written yet (see
	// the package comment), and one wrapping *manifest.Error when the
	// published manifest is invalid.
	Desired(ctx context.Context) (Revision, error)
	// Fetch writes the bundle of rev (as returned by Desired) into dst, an
	// empty staging directory, with appspec.yml at its root.
	Fetch(ctx context.Context, rev Revision, dst string) error
	// String describes the source for logs and status, without credentials.
	String() string
}

// Watcher is implemented by sources that learn of changes before the next
// poll (dir: fsnotify). Watch blocks until ctx is done, calling poke, which
// never blocks, whenever a poll may find something new.
type Watcher interface {
	Watch(ctx context.Context, poke func()) error
}

// BundleNamer is implemented by sources that can name a file of a
// revision's bundle the way users know it, for messages: git the path in
// the repository ("hello-web/appspec.yml"), s3 the bundle object followed
// by the file's path in the archive
// ("s3://acme/hello-web/bundles/r1.tar.gz/appspec.yml"), dir the path on
// disk. rel is slash-separated and relative to the bundle root; "" names
// the bundle itself.
type BundleNamer interface {
	BundleFile(rev Revision, rel string) string
}

// Sentinel errors shared by every source.
var (
	// ErrNoManifest: the configured place exists and holds files, but no
	// manifest yet (a publication in progress; see the package comment).
	ErrNoManifest = errors.New("no manifest published")
	// ErrNotFound: the configured place (branch, path, bucket, prefix,
	// bundle object, directory) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAccessDenied: the source refused the credentials.
	ErrAccessDenied = errors.New("access denied")
	// ErrChecksum: a downloaded bundle does not match the manifest's sha256.
	ErrChecksum = errors.New("bundle checksum mismatch")
	// ErrGone: the revision asked for is no longer available from the source.
	ErrGone = errors.New("revision no longer available")
)

// IsInvalidManifest reports whether err says the published revision is
// invalid: its manifest (*manifest.Error) or its bundle (*BundleError), as
// opposed to the source failing. Either way the previous desired revision
// stands.
func IsInvalidManifest(err error) bool {
	var me *manifest.Error
	var be *BundleError
	return errors.As(err, &me) || errors.As(err, &be)
}

// BundleError says a revision's bundle is statically invalid: the Check of
// PollerConfig refused it before any host deployed it.
type BundleError struct {
	ID, Label string
	// Problems are "FILE:LINE: field: message", FILE named as the source
	// names it (see BundleNamer), never a staging directory.
	Problems []string
}

func (e *BundleError) Error() string {
	rev := e.Label
	if e.ID != "" && e.ID != e.Label {
		rev += " (" + shortID(e.ID) + ")"
	}
	return "bundle of revision " + rev + " is invalid; no host deploys it:\n  " + strings.Join(e.Problems, "\n  ")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Mark returns an error with err's message that also matches sentinel
// with errors.Is (and still unwraps to err's own chain).
func Mark(err, sentinel error) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, mark: sentinel}
}

// Markf is Mark(fmt.Errorf(format, args...), sentinel).
func Markf(sentinel error, format string, args ...any) error {
	return Mark(fmt.Errorf(format, args...), sentinel)
}

type markedError struct{ err, mark error }

func (e *markedError) Error() string   { return e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.err, e.mark} }

// Sanitizer removes credentials from text bound for logs, errors and status.
type Sanitizer struct {
	secrets []string
}

// NewSanitizer returns a Sanitizer that also masks each non-empty secret.
func NewSanitizer(secrets ...string) *Sanitizer {
	s := &Sanitizer{}
	for _, x := range secrets {
		if x = strings.TrimSpace(x); len(x) >= 4 {
			s.secrets = append(s.secrets, x)
		}
	}
	return s
}

// userinfoRE matches the user:password@ part of URLs in free text.
var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// String strips URL userinfo and masks known secrets.
func (s *Sanitizer) String(text string) string {
	text = userinfoRE.ReplaceAllStringFunc(text, func(m string) string {
		scheme, rest, _ := strings.Cut(m, "://")
		if !strings.Contains(rest, ":") && (scheme == "ssh" || scheme == "git+ssh") {
			return m // ssh://git@host: the user name is not a secret
		}
		return scheme + "://"
	})
	for _, x := range s.secrets {
		text = strings.ReplaceAll(text, x, "***")
	}
	return text
}

// Error wraps err so that its message is sanitized while errors.Is and
// errors.As still see the original chain.
func (s *Sanitizer) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := s.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &sanitizedError{msg: msg, err: err}
}

type sanitizedError struct {
	msg string
	err error
}

func (e *sanitizedError) Error() string { return e.msg }
func (e *sanitizedError) Unwrap() error { return e.err }

// RedactURL returns u without its password (the user name stays: for ssh it
// says which key to use and is no secret), for display.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return userinfoRE.ReplaceAllString(raw, "$1")
		}
		return raw
	}
	if _, has := u.User.Password(); has || u.Scheme == "https" || u.Scheme == "http" {
		u.User = nil
	}
	return u.String()
}
