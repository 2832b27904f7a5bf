// Package s3src is the S3 Source and drover push: PREFIX/manifest.yaml
// names a bundle object under the prefix and its sha256.
//
// An idle poll is one conditional GET of the manifest (If-None-Match with
// the last ETag) answered 304 with no body. When the manifest changed, it
// is parsed and the bundle object is HEADed for its ETag (BUNDLE_ETAG) and
// to make sure it exists. Fetch streams the bundle to a temp file, hashing
// it, and unpacks it (hooks/bundle: tar, tar.gz or zip, path-safe) only
// when the sha256 matches the manifest.
//
// # Errors
//
// A bucket that does not exist, a prefix with nothing under it (the
// message suggests a close one from the prefixes beside it) and a bundle
// object the manifest names that is not there wrap source.ErrNotFound;
// refused credentials wrap source.ErrAccessDenied. A prefix that holds
// objects but no manifest.yaml yet wraps source.ErrNoManifest: drover push
// uploads the bundle first and writes the manifest last, so that is a
// push in progress (or a prefix pointing at a bundles/ directory: status
// shows it, and the stale alert fires if it lasts).
package s3src

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/drover-dev/drover/hooks/bundle"
	"github.com/drover-dev/drover/internal/suggest"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
)

// ClientConfig says how to reach S3. The rest comes from the default AWS
// configuration: environment, shared config and credentials files, EC2/ECS
// roles.
type ClientConfig struct {
	Region string // default: from the AWS configuration, else us-east-1
	// Endpoint is a custom endpoint for S3-compatible servers. When it is
	// set, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL are, addressing is
	// path-style (bucket in the path), which those servers expect.
	Endpoint string
}

// NewClient builds an S3 client from the default AWS configuration. The
// S3 source and drover push share it.
func NewClient(ctx context.Context, cc ClientConfig) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if cc.Region != "" {
		opts = append(opts, config.WithRegion(cc.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	pathStyle := cc.Endpoint != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if cc.Endpoint != "" {
			o.BaseEndpoint = aws.String(cc.Endpoint)
		}
		o.UsePathStyle = pathStyle
	}), nil
}

// Config configures a Source.
type Config struct {
	Bucket string
	Prefix string // "hello-web/" or "hello-web"; "" is the bucket root
	Client *s3.Client
	// TempDir receives bundles while they are verified; default os.TempDir().
	TempDir string
	// Timeout bounds each manifest GET and bundle HEAD; default 30s.
	Timeout time.Duration
	// DownloadTimeout bounds a bundle download; default 30m.
	DownloadTimeout time.Duration
	// Limits bound the downloaded and the unpacked bundle.
	Limits bundle.Limits
	Logger *slog.Logger
}

// Source is an S3 source. It is safe for concurrent use.
type Source struct {
	cfg  Config
	desc string
	log  *slog.Logger

	mu    sync.Mutex // guards the fields below
	etag  string     // ETag of the manifest behind cache
	cache source.Revision
	err   error // manifest error for etag
}

var (
	_ source.Source      = (*Source)(nil)
	_ source.BundleNamer = (*Source)(nil)
)

// New returns an S3 source. It makes no network call.
func New(cfg Config) (*Source, error) {
	if cfg.Bucket == "" || cfg.Client == nil {
		return nil, errors.New("s3 source: bucket and client are required")
	}
	cfg.Prefix = NormPrefix(cfg.Prefix)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, desc: "s3://" + cfg.Bucket + "/" + cfg.Prefix}
	s.log = cfg.Logger.With("source", s.desc)
	return s, nil
}

// NormPrefix makes a prefix "" or "dir/" (no leading slash, one trailing).
func NormPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// String describes the source.
func (s *Source) String() string { return s.desc }

func (s *Source) manifestKey() string { return s.cfg.Prefix + manifest.FileName }

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode is the S3 error code of err ("NoSuchBucket", "AccessDenied"),
// or "".
func errorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// accessCodes are the error codes of refused credentials.
var accessCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
}

// requestError explains a failed request about the object at key.
func (s *Source) requestError(what, key string, err error) error {
	code := errorCode(err)
	switch st := httpStatus(err); {
	case code == "NoSuchBucket":
		return source.Markf(source.ErrNotFound, "%s: bucket %q does not exist", s.desc, s.cfg.Bucket)
	case st == http.StatusForbidden || accessCodes[code]:
		return source.Markf(source.ErrAccessDenied,
			"%s: %s s3://%s/%s: access denied (%s): check the credentials and that they may read the bucket (without s3:ListBucket, S3 also answers 403 for a key that does not exist)",
			s.desc, what, s.cfg.Bucket, key, cmp.Or(code, "403"))
	}
	return fmt.Errorf("%s: %s s3://%s/%s: %w", s.desc, what, s.cfg.Bucket, key, err)
}

// explainMissing says why there is no manifest: no bucket, nothing under
// the prefix (ErrNotFound, with a close prefix if there is one), or
// objects but no manifest yet (ErrNoManifest).
func (s *Source) explainMissing(ctx context.Context) error {
	out, err := s.cfg.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket,
		Prefix: aws.String(s.cfg.Prefix), MaxKeys: aws.Int32(1000)})
	if err != nil {
		if errorCode(err) == "NoSuchBucket" {
			return s.requestError("list", s.cfg.Prefix, err)
		}
		return source.Markf(source.ErrNotFound, "%s: s3://%s/%s not found (and listing the prefix failed, so nothing more is known: %v)",
			s.desc, s.cfg.Bucket, s.manifestKey(), err)
	}
	if len(out.Contents) > 0 {
		// A prefix one level off the manifest is a mistake, not a push
		// in progress.
		if near, ok := s.nearManifest(ctx, out.Contents); ok {
			return source.Markf(source.ErrNotFound, "%s: no %s under prefix %q, but %s has one (did you mean prefix %q?)",
				s.desc, manifest.FileName, s.cfg.Prefix, "s3://"+s.cfg.Bucket+"/"+near+manifest.FileName, near)
		}
		return source.Markf(source.ErrNoManifest, "%s: no %s yet, though the prefix holds objects (drover push uploads the bundle first and writes the manifest last)",
			s.desc, manifest.FileName)
	}
	if s.cfg.Prefix == "" {
		return source.Markf(source.ErrNotFound, "%s: bucket %q is empty", s.desc, s.cfg.Bucket)
	}
	return source.Markf(source.ErrNotFound, "%s: nothing under prefix %q in bucket %q%s", s.desc, s.cfg.Prefix, s.cfg.Bucket, s.prefixHint(ctx))
}

// nearManifest returns a prefix next to the configured one that holds a
// manifest: one directly below it (from listed) or its parent.
func (s *Source) nearManifest(ctx context.Context, listed []types.Object) (string, bool) {
	for _, o := range listed {
		rest := strings.TrimPrefix(aws.ToString(o.Key), s.cfg.Prefix)
		if dir, file, ok := strings.Cut(rest, "/"); ok && file == manifest.FileName {
			return s.cfg.Prefix + dir + "/", true
		}
	}
	if s.cfg.Prefix == "" {
		return "", false
	}
	parent := ""
	if trimmed := strings.TrimSuffix(s.cfg.Prefix, "/"); strings.Contains(trimmed, "/") {
		parent = trimmed[:strings.LastIndex(trimmed, "/")+1]
	}
	if _, err := s.cfg.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket,
		Key: aws.String(parent + manifest.FileName)}); err == nil {
		return parent, true
	}
	return "", false
}

// prefixHint suggests a prefix beside the configured one with a close name.
func (s *Source) prefixHint(ctx context.Context) string {
	trimmed := strings.TrimSuffix(s.cfg.Prefix, "/")
	parent, base := "", trimmed
	if i := strings.LastIndex(trimmed, "/"); i >= 0 {
		parent, base = trimmed[:i+1], trimmed[i+1:]
	}
	out, err := s.cfg.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket,
		Prefix: aws.String(parent), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1000)})
	if err != nil {
		return ""
	}
	var names []string
	for _, cp := range out.CommonPrefixes {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), parent), "/"))
	}
	if c := suggest.Closest(base, names); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", parent+c+"/")
	}
	if parent != "" && len(names) == 0 && len(out.Contents) == 0 {
		return fmt.Sprintf(" (nor under %q)", parent)
	}
	return ""
}

// BundleFile implements source.BundleNamer: the bundle object, then the
// file's path in the archive.
func (s *Source) BundleFile(rev source.Revision, rel string) string {
	name := "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix
	if rev.Manifest != nil {
		name += rev.Manifest.Bundle.Key
	}
	if rel == "" || rel == "." {
		return name
	}
	return name + "/" + rel
}

// Desired implements source.Source.
func (s *Source) Desired(ctx context.Context) (source.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	in := &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.manifestKey())}
	if s.etag != "" {
		in.IfNoneMatch = aws.String(s.etag)
	}
	out, err := s.cfg.Client.GetObject(ctx, in)
	switch st := httpStatus(err); {
	case err == nil:
	case st == http.StatusNotModified:
		return s.cache, s.err
	case st == http.StatusNotFound && errorCode(err) != "NoSuchBucket":
		s.etag, s.cache, s.err = "", source.Revision{}, nil
		return source.Revision{}, s.explainMissing(ctx)
	default:
		return source.Revision{}, s.requestError("get", s.manifestKey(), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, manifest.MaxSize+1))
	if err != nil {
		return source.Revision{}, fmt.Errorf("%s: read %s: %w", s.desc, manifest.FileName, err)
	}
	etag := aws.ToString(out.ETag)
	rev, err := s.resolve(ctx, data)
	if err != nil && !source.IsInvalidManifest(err) {
		return rev, err // transient: ask again in full next time
	}
	s.etag, s.cache, s.err = etag, rev, err
	return rev, err
}

// resolve parses the manifest and looks the bundle up.
func (s *Source) resolve(ctx context.Context, data []byte) (source.Revision, error) {
	name := "s3://" + s.cfg.Bucket + "/" + s.manifestKey()
	m, err := manifest.Parse(name, data)
	if err != nil {
		return source.Revision{}, err
	}
	if m.Bundle.Key == "" {
		return source.Revision{}, &manifest.Error{Problems: []manifest.Problem{{File: name,
			Msg: "an s3 manifest names its bundle with bundle.key and bundle.sha256"}}}
	}
	key := s.cfg.Prefix + m.Bundle.Key
	head, err := s.cfg.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		// Not an invalid manifest: the object may come back (drover push
		// uploads it before the manifest, so it is missing only when
		// something else removed it or wrote the manifest).
		if httpStatus(err) == http.StatusNotFound {
			return source.Revision{}, source.Markf(source.ErrNotFound, "%s: bundle s3://%s/%s named by the manifest (bundle.key %q) does not exist",
				s.desc, s.cfg.Bucket, key, m.Bundle.Key)
		}
		return source.Revision{}, s.requestError("head bundle", key, err)
	}
	label := m.Revision
	if label == "" {
		label = m.Bundle.SHA256
	}
	return source.Revision{
		ID: m.Bundle.SHA256, Label: label, Manifest: m,
		Env: map[string]string{
			"BUNDLE_BUCKET": s.cfg.Bucket,
			"BUNDLE_KEY":    key,
			"BUNDLE_ETAG":   strings.Trim(aws.ToString(head.ETag), `"`),
		},
	}, nil
}

// Fetch implements source.Source: download to a temp file while hashing,
// refuse a sha256 mismatch, then unpack.
func (s *Source) Fetch(ctx context.Context, rev source.Revision, dst string) error {
	if rev.Manifest == nil || rev.Manifest.Bundle.SHA256 == "" {
		return errors.New("s3 fetch: revision has no bundle sha256")
	}
	key := s.cfg.Prefix + rev.Manifest.Bundle.Key
	f, err := os.CreateTemp(s.cfg.TempDir, "drover-bundle-*.tar.gz")
	if err != nil {
		return fmt.Errorf("s3 fetch: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DownloadTimeout)
	defer cancel()
	out, err := s.cfg.Client.GetObject(dctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		if st := httpStatus(err); st == http.StatusNotFound {
			return fmt.Errorf("%s: bundle %s: %w", s.desc, key, source.ErrGone)
		}
		return s.requestError("get bundle", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	limit := s.cfg.Limits.MaxBytes
	if limit <= 0 {
		limit = bundle.DefaultLimits.MaxBytes
	}
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(out.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%s: download bundle %s: %w", s.desc, key, err)
	}
	if n > limit {
		return fmt.Errorf("%s: bundle %s is larger than %d bytes: %w", s.desc, key, limit, bundle.ErrTooLarge)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rev.Manifest.Bundle.SHA256 {
		return fmt.Errorf("%w: s3://%s/%s has sha256 %s, the manifest says %s; nothing was unpacked",
			source.ErrChecksum, s.cfg.Bucket, key, got, rev.Manifest.Bundle.SHA256)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("s3 fetch: %w", err)
	}
	if err := bundle.Unpack(ctx, f.Name(), dst, s.cfg.Limits); err != nil {
		return fmt.Errorf("%s: unpack bundle %s: %w", s.desc, key, err)
	}
	return nil
}
