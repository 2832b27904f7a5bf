// Package s3test runs a real S3-compatible server for tests: versitygw with
// its posix backend in a temp dir, on 127.0.0.1 (DESIGN.md §13).
package s3test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/drover-dev/drover/internal/testenv/gittest"
)

// Credentials of the server's root user.
const (
	AccessKey = "droveraccess"
	SecretKey = "drover-secret-key-do-not-log"
	Region    = "us-east-1"
)

// Server is a running versitygw.
type Server struct {
	Addr     string // 127.0.0.1:PORT
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // posix backend root: buckets are directories in it
	buckets  atomic.Int64
}

// Binary finds versitygw on PATH or in $(go env GOPATH)/bin, or skips.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	return ""
}

// Start runs versitygw until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{Addr: gittest.FreeAddr(t), Dir: t.TempDir()}
	s.Endpoint = "http://" + s.Addr
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", s.Addr, "posix", s.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	gittest.WaitListening(t, s.Addr, done)
	return s
}

// Env sets the AWS environment so that the default credential chain and
// AWS_ENDPOINT_URL_S3 point at this server, as an operator would.
func (s *Server) Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ENDPOINT_URL_S3", s.Endpoint)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Client returns an S3 client with static credentials for this server.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// NewBucket creates a bucket with a name unique to the test.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("drover-test-%d", s.buckets.Add(1))
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}
