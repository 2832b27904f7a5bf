package s3src

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drover-dev/drover/internal/testenv/gittest"
	"github.com/drover-dev/drover/internal/testenv/s3test"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/source"
	"github.com/drover-dev/drover/reconcile/source/sourcetest"
)

const prefix = "apps/hello-web/"

// envClient builds the client the way the agent does: default credential
// chain, endpoint from AWS_ENDPOINT_URL_S3.
func envClient(t *testing.T, srv *s3test.Server) *s3.Client {
	t.Helper()
	srv.Env(t)
	c, err := NewClient(context.Background(), ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContractVersityGW(t *testing.T) {
	srv := s3test.Start(t)
	client := envClient(t, srv)
	bucket := srv.NewBucket(t)
	sourcetest.Run(t, sourcetest.Harness{
		New: func(t *testing.T) source.Source {
			s, err := New(Config{Bucket: bucket, Prefix: prefix, Client: client, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Publish: func(t *testing.T, r sourcetest.Release) {
			dir := filepath.Join(t.TempDir(), "bundle")
			sourcetest.WriteTree(t, dir, r.Files)
			if _, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir,
				Template: r.Manifest(), TempDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
		},
		PublishManifest: func(t *testing.T, text string) { putManifest(t, client, bucket, text) },
		EnvKeys:         []string{"BUNDLE_BUCKET", "BUNDLE_KEY", "BUNDLE_ETAG"},
		Secrets:         []string{s3test.SecretKey, "wrong-" + s3test.SecretKey},
		EmptyErr:        source.ErrNotFound,
		RemoveManifest: func(t *testing.T) {
			if _, err := client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket,
				Key: aws.String(prefix + manifest.FileName)}); err != nil {
				t.Fatal(err)
			}
		},
		PartialErr: source.ErrNoManifest,
		Misconfigured: func(t *testing.T) []sourcetest.Misconfig {
			open := func(bucket, prefix string, c *s3.Client) source.Source {
				s, err := New(Config{Bucket: bucket, Prefix: prefix, Client: c, TempDir: t.TempDir(), Timeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			// One attempt: the SDK's retries only slow the unreachable case.
			other := func(endpoint, secret string) *s3.Client {
				return s3.New(s3.Options{Region: s3test.Region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
					RetryMaxAttempts: 1, Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, secret, "")})
			}
			return []sourcetest.Misconfig{
				{Name: "misspelled bucket", Source: open(bucket+"x", prefix, client), Is: source.ErrNotFound,
					Says: []string{`bucket "` + bucket + `x" does not exist`}},
				{Name: "misspelled prefix", Source: open(bucket, "apps/helo-web", client), Is: source.ErrNotFound,
					Says: []string{`nothing under prefix "apps/helo-web/" in bucket "` + bucket + `"`, `did you mean "apps/hello-web/"?`}},
				{Name: "prefix of the bundles, not the manifest", Source: open(bucket, prefix+"bundles", client), Is: source.ErrNotFound,
					Says: []string{`no manifest.yaml under prefix "apps/hello-web/bundles/"`, `did you mean prefix "apps/hello-web/"?`}},
				{Name: "prefix above the manifest", Source: open(bucket, "apps", client), Is: source.ErrNotFound,
					Says: []string{`no manifest.yaml under prefix "apps/"`, `did you mean prefix "apps/hello-web/"?`}},
				{Name: "wrong secret key", Source: open(bucket, prefix, other(srv.Endpoint, "wrong-"+s3test.SecretKey)), Is: source.ErrAccessDenied,
					Says: []string{"access denied (SignatureDoesNotMatch)", "s3://" + bucket + "/" + prefix + "manifest.yaml"}},
				{Name: "unreachable endpoint", Source: open(bucket, prefix, other("http://"+gittest.FreeAddr(t), s3test.SecretKey)),
					Says: []string{"connection refused"}},
			}
		},
		BundleFile: func(rev source.Revision, rel string) string {
			return "s3://" + bucket + "/" + prefix + rev.Manifest.Bundle.Key + "/" + rel
		},
	})
}

func putManifest(t *testing.T, client *s3.Client, bucket, text string) {
	t.Helper()
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket,
		Key: aws.String(prefix + manifest.FileName), Body: strings.NewReader(text)}); err != nil {
		t.Fatal(err)
	}
}

var files = map[string]string{
	"appspec.yml":            "version: 0.0\nos: linux\n",
	"scripts/start.sh":       "#!/bin/sh\nexec ./server\n",
	"www/deep/a/b/c.txt":     strings.Repeat("data ", 1000),
	"empty.txt":              "",
	"unicode-名前.txt":         "ok",
	strings.Repeat("n", 120): "long name",
}

func TestPushRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	client := envClient(t, srv)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o640)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o750
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	var progress bytes.Buffer
	push := func() PushResult {
		res, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir,
			Label: "2026.11.26-1", TempDir: t.TempDir(), Progress: &progress, ProgressMin: 1})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := push()
	if !first.Uploaded || !strings.Contains(progress.String(), "uploaded") {
		t.Fatalf("first push: %+v, progress %q", first, progress.String())
	}
	second := push()
	if second.SHA256 != first.SHA256 || second.Uploaded {
		t.Fatalf("second push of the same input: sha %s (was %s), uploaded %v", second.SHA256, first.SHA256, second.Uploaded)
	}

	s, err := New(Config{Bucket: bucket, Prefix: prefix, Client: client, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rev.ID != first.SHA256 || rev.Label != "2026.11.26-1" || rev.Manifest.Application != "hello-web" ||
		rev.Env["BUNDLE_KEY"] != first.BundleKey || rev.Env["BUNDLE_BUCKET"] != bucket || rev.Env["BUNDLE_ETAG"] == "" {
		t.Fatalf("Desired: %+v, pushed %+v", rev, first)
	}
	dst := t.TempDir()
	if err := s.Fetch(context.Background(), rev, dst); err != nil {
		t.Fatal(err)
	}
	got := sourcetest.ReadTree(t, dst)
	if len(got) != len(files) {
		t.Fatalf("unpacked %d files, want %d", len(got), len(files))
	}
	for name, body := range files {
		if got[name] != body {
			t.Errorf("%s: unpacked content differs", name)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "scripts/start.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("start.sh mode: %v %v", fi.Mode(), err)
	}
}

func TestChecksumMismatchIsRefused(t *testing.T) {
	srv := s3test.Start(t)
	client := envClient(t, srv)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	sourcetest.WriteTree(t, dir, map[string]string{"appspec.yml": "version: 0.0\n"})
	res, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaces the bundle object behind the manifest's back.
	other := filepath.Join(t.TempDir(), "other")
	sourcetest.WriteTree(t, other, map[string]string{"appspec.yml": "evil\n"})
	evil, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: "scratch", Dir: other, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	evilKey := evil.BundleKey
	if _, err := client.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: &bucket,
		CopySource: aws.String(bucket + "/" + evilKey), Key: &res.BundleKey}); err != nil {
		t.Fatal(err)
	}

	s, err := New(Config{Bucket: bucket, Prefix: prefix, Client: client, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Desired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err = s.Fetch(context.Background(), rev, dst)
	if !errors.Is(err, source.ErrChecksum) {
		t.Fatalf("Fetch: got %v, want ErrChecksum", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Fatalf("something was unpacked: %v", ents)
	}
	t.Logf("refused: %v", err)
}

func TestInvalidManifestAndMissingBundle(t *testing.T) {
	srv := s3test.Start(t)
	client := envClient(t, srv)
	bucket := srv.NewBucket(t)
	dir := t.TempDir()
	sourcetest.WriteTree(t, dir, map[string]string{"appspec.yml": "version: 0.0\n"})
	res, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := New(Config{Bucket: bucket, Prefix: prefix, Client: client})
	p := source.NewPoller(s, source.PollerConfig{App: "hello-web"})
	if u := p.Poll(context.Background()); u.Result != source.ResultChanged || u.Desired.ID != res.SHA256 {
		t.Fatalf("first poll: %+v", u)
	}
	putManifest(t, client, bucket, "version: 1\napplication: hello-web\nbundle: {path: .}\n")
	if u := p.Poll(context.Background()); u.Result != source.ResultInvalid || u.Desired.ID != res.SHA256 {
		t.Fatalf("git-style manifest on s3: %+v", u)
	}
	putManifest(t, client, bucket, "version: 1\napplication: hello-web\nbundle: {key: bundles/none.tar.gz, sha256: "+strings.Repeat("1", 64)+"}\n")
	if u := p.Poll(context.Background()); u.Result != source.ResultError || u.Desired.ID != res.SHA256 ||
		!errors.Is(u.Err, source.ErrNotFound) || !strings.Contains(u.Err.Error(), "bundles/none.tar.gz named by the manifest") {
		t.Fatalf("manifest naming a missing bundle: %+v", u)
	}
}

// TestIdlePollCost measures an idle poll on the wire: one conditional GET
// answered 304.
func TestIdlePollCost(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	proxy := gittest.StartProxy(t, srv.Addr)
	srv.Endpoint = "http://" + proxy.Addr
	client := envClient(t, srv)
	dir := t.TempDir()
	sourcetest.WriteTree(t, dir, map[string]string{"appspec.yml": "version: 0.0\n"})
	if _, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	s, _ := New(Config{Bucket: bucket, Prefix: prefix, Client: client})
	if _, err := s.Desired(context.Background()); err != nil {
		t.Fatal(err)
	}
	const polls = 10
	proxy.Reset()
	for range polls {
		if _, err := s.Desired(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The client keeps connections alive; versitygw answers every request
	// with "Connection: close" (checked with a plain net/http client), so
	// here each poll opens one.
	t.Logf("s3 idle poll: %.0f bytes sent, %.0f bytes received per poll; %d new connections for %d polls",
		float64(proxy.BytesIn.Load())/polls, float64(proxy.BytesOut.Load())/polls, proxy.Conns.Load(), polls)
	if proxy.BytesOut.Load()/polls > 2000 {
		t.Errorf("idle poll received %d bytes: not a 304", proxy.BytesOut.Load()/polls)
	}
}

func BenchmarkIdlePoll(b *testing.B) {
	srv := s3test.Start(b)
	bucket := srv.NewBucket(b)
	client := srv.Client()
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "appspec.yml"), []byte("version: 0.0\n"), 0o644)
	if _, err := Push(context.Background(), client, PushOptions{Bucket: bucket, Prefix: prefix, Dir: dir, TempDir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	s, _ := New(Config{Bucket: bucket, Prefix: prefix, Client: client})
	if _, err := s.Desired(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Desired(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
