package s3src

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source/tarball"
)

// PushOptions says what drover push uploads where.
type PushOptions struct {
	Bucket string
	Prefix string
	Dir    string // bundle root: appspec.yml at its top
	// Label is the manifest's revision label; default: Template's, else
	// the first 12 hex digits of the bundle sha256.
	Label string
	// Template gives application and deployment settings; bundle is
	// replaced. Default: application named after the prefix's last
	// element, one-at-a-time, rollback on failure.
	Template *manifest.Manifest
	TempDir  string
	// Progress receives progress lines for uploads of at least
	// ProgressMin bytes (default 8 MiB); nil for none.
	Progress    io.Writer
	ProgressMin int64
}

// PushResult is what was pushed.
type PushResult struct {
	SHA256      string
	Size        int64
	BundleKey   string // full object key
	ManifestKey string
	Uploaded    bool // false when an identical bundle was already there
	Manifest    *manifest.Manifest
}

// Push builds a reproducible tar.gz of o.Dir, uploads it to
// PREFIX/bundles/SHA256.tar.gz (content-addressed, so re-pushing the same
// input uploads nothing), then writes PREFIX/manifest.yaml last, so that
// readers never see a manifest naming a missing bundle.
func Push(ctx context.Context, client *s3.Client, o PushOptions) (PushResult, error) {
	prefix := NormPrefix(o.Prefix)
	var res PushResult
	m, err := pushManifest(o, prefix)
	if err != nil {
		return res, err
	}
	f, err := os.CreateTemp(o.TempDir, "drover-push-*.tar.gz")
	if err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	if err := tarball.Write(ctx, o.Dir, io.MultiWriter(f, h)); err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if res.Size, err = f.Seek(0, io.SeekCurrent); err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	rel := "bundles/" + res.SHA256 + ".tar.gz"
	res.BundleKey = prefix + rel
	res.ManifestKey = prefix + manifest.FileName

	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &o.Bucket, Key: &res.BundleKey})
	exists := err == nil && aws.ToInt64(head.ContentLength) == res.Size && head.Metadata["sha256"] == res.SHA256
	if err != nil && httpStatus(err) != 404 {
		return res, fmt.Errorf("push: check s3://%s/%s: %w", o.Bucket, res.BundleKey, err)
	}
	if !exists {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return res, fmt.Errorf("push: %w", err)
		}
		body := newProgressReader(f, res.Size, o)
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &o.Bucket, Key: &res.BundleKey, Body: body, ContentLength: aws.Int64(res.Size),
			ContentType: aws.String("application/gzip"), Metadata: map[string]string{"sha256": res.SHA256},
		}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)) // stream once
		body.done()
		if err != nil {
			return res, fmt.Errorf("push: upload bundle to s3://%s/%s: %w", o.Bucket, res.BundleKey, err)
		}
		res.Uploaded = true
	}

	m.Bundle = manifest.Bundle{Key: rel, SHA256: res.SHA256}
	if m.Revision == "" {
		m.Revision = res.SHA256[:12]
	}
	text := manifest.Format(m)
	if _, err := manifest.Parse("generated manifest", text); err != nil {
		return res, fmt.Errorf("push: %w", err) // a bug, not a user error
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &o.Bucket, Key: &res.ManifestKey, Body: strings.NewReader(string(text)),
		ContentType: aws.String("application/yaml"), CacheControl: aws.String("no-cache"),
	}); err != nil {
		return res, fmt.Errorf("push: write s3://%s/%s: %w", o.Bucket, res.ManifestKey, err)
	}
	res.Manifest = m
	return res, nil
}

func pushManifest(o PushOptions, prefix string) (*manifest.Manifest, error) {
	if o.Bucket == "" {
		return nil, errors.New("push: bucket is required")
	}
	var m manifest.Manifest
	if o.Template != nil {
		m = *o.Template
	} else {
		app := path.Base(strings.TrimSuffix(prefix, "/"))
		if prefix == "" {
			app = path.Base(strings.TrimRight(o.Dir, "/"))
		}
		m = manifest.Manifest{Version: 1, Application: app,
			Deployment: manifest.Deployment{Strategy: manifest.OneAtATime, Rollback: manifest.RollbackOnFailure}}
	}
	if o.Label != "" {
		m.Revision = o.Label
	}
	return &m, nil
}

// progressReader reports upload progress at most once a second. It is an
// io.ReadSeeker so that the SDK can rewind it for a retry.
type progressReader struct {
	f       *os.File
	size    int64
	w       io.Writer
	mu      sync.Mutex // guards pos and last
	pos     int64
	last    time.Time
	started time.Time
}

func newProgressReader(f *os.File, size int64, o PushOptions) *progressReader {
	min := o.ProgressMin
	if min <= 0 {
		min = 8 << 20
	}
	w := o.Progress
	if size < min {
		w = nil
	}
	return &progressReader{f: f, size: size, w: w, started: time.Now()}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos += int64(n)
	if p.w != nil && time.Since(p.last) >= time.Second {
		p.last = time.Now()
		p.reportLocked()
	}
	return n, err
}

func (p *progressReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.f.Seek(off, whence)
	p.mu.Lock()
	p.pos = n
	p.mu.Unlock()
	return n, err
}

func (p *progressReader) reportLocked() {
	pct := 100 * float64(p.pos) / float64(max(p.size, 1))
	fmt.Fprintf(p.w, "uploading bundle: %.1f of %.1f MiB (%.0f%%)\n", float64(p.pos)/(1<<20), float64(p.size)/(1<<20), pct)
}

func (p *progressReader) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		p.reportLocked()
		fmt.Fprintf(p.w, "uploaded %.1f MiB in %s\n", float64(p.size)/(1<<20), time.Since(p.started).Round(100*time.Millisecond))
	}
}
