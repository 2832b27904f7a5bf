// Package source answers, for one application, two questions about where its
// revisions are published: "what is the desired revision now?" and "put this
// revision's bundle into this directory". Implementations live in
// sub-packages (gitsrc, s3src, dirsrc); sourcetest holds the contract suite
// every implementation passes.
//
// A Poller wraps a Source with the policy the reconcile loop needs: it keeps
// the last valid desired revision when the source publishes an invalid
// manifest, backs off with jitter while the source fails, and counts polls.
package source

import (
	"context"
	"errors"
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
	// error wrapping ErrNoManifest when nothing is published yet, and one
	// wrapping *manifest.Error when the published manifest is invalid.
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

// Sentinel errors shared by every source.
var (
	// ErrNoManifest: the source holds no manifest (yet).
	ErrNoManifest = errors.New("no manifest published")
	// ErrChecksum: a downloaded bundle does not match the manifest's sha256.
	ErrChecksum = errors.New("bundle checksum mismatch")
	// ErrGone: the revision asked for is no longer available from the source.
	ErrGone = errors.New("revision no longer available")
)

// IsInvalidManifest reports whether err says the published manifest is
// invalid (as opposed to the source being unreachable).
func IsInvalidManifest(err error) bool {
	var me *manifest.Error
	return errors.As(err, &me)
}

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
