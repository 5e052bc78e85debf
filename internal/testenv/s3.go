package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Endpoint is the stack's S3 (versitygw) host:port.
func S3Endpoint() string { return getenv("JOBSVC_S3_ENDPOINT", "127.0.0.1:57070") }

// S3AccessKey and S3SecretKey are the stack's S3 root keys.
func S3AccessKey() string { return getenv("JOBSVC_S3_ACCESS_KEY", "jobsvc-access") }

// S3SecretKey is the stack's S3 secret key.
func S3SecretKey() string { return getenv("JOBSVC_S3_SECRET_KEY", "jobsvc-secret-key") }

// S3Client returns a path-style client for endpoint with the stack's keys.
func S3Client(t testing.TB, endpoint string) *minio.Client {
	t.Helper()
	c, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(S3AccessKey(), S3SecretKey(), ""),
		BucketLookup: minio.BucketLookupPath,
		Region:       "us-east-1",
	})
	if err != nil {
		t.Fatalf("testenv: s3 client: %v", err)
	}
	return c
}

// Bucket is a fresh bucket on an S3 server.
type Bucket struct {
	Name     string
	Endpoint string
	Client   *minio.Client
}

// NewBucket creates a bucket on the stack's S3 and removes it, with its objects, at cleanup.
func NewBucket(t testing.TB) *Bucket {
	t.Helper()
	Integration(t)
	return newBucketOn(t, S3Endpoint())
}

func newBucketOn(t testing.TB, endpoint string) *Bucket {
	t.Helper()
	c := S3Client(t, endpoint)
	name := "t-" + Suffix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: S3 at %s: make bucket (run `make stack-up`): %v", endpoint, err)
	}
	b := &Bucket{Name: name, Endpoint: endpoint, Client: c}
	t.Cleanup(func() { b.remove(t) })
	return b
}

func (b *Bucket) remove(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	objs := b.Client.ListObjects(ctx, b.Name, minio.ListObjectsOptions{Recursive: true})
	for e := range b.Client.RemoveObjects(ctx, b.Name, objs, minio.RemoveObjectsOptions{}) {
		t.Logf("testenv: empty bucket %s: %v", b.Name, e.Err)
	}
	if err := b.Client.RemoveBucket(ctx, b.Name); err != nil {
		t.Logf("testenv: remove bucket %s: %v", b.Name, err)
	}
}

// Put writes an object of size bytes.
func (b *Bucket) Put(t testing.TB, key string, size int) {
	t.Helper()
	_, err := b.Client.PutObject(context.Background(), b.Name, key, bytes.NewReader(make([]byte, size)), int64(size),
		minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("testenv: put %s/%s: %v", b.Name, key, err)
	}
}

// Exists reports whether key is in the bucket.
func (b *Bucket) Exists(t testing.TB, key string) bool {
	t.Helper()
	_, err := b.Client.StatObject(context.Background(), b.Name, key, minio.StatObjectOptions{})
	if err == nil {
		return true
	}
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return false
	}
	t.Fatalf("testenv: stat %s/%s: %v", b.Name, key, err)
	return false
}

// Count is the number of objects in the bucket.
func (b *Bucket) Count(t testing.TB) int {
	t.Helper()
	n := 0
	for o := range b.Client.ListObjects(context.Background(), b.Name, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("testenv: list %s: %v", b.Name, o.Err)
		}
		n++
	}
	return n
}

// PrivateS3 is a versitygw process of the test's own, on its own loopback port and data
// directory, which the test may stop and start (the shared one must never be stopped).
type PrivateS3 struct {
	Endpoint string
	bin      string
	dir      string
	logPath  string
	cmd      *exec.Cmd
	t        testing.TB
}

// StartPrivateS3 starts versitygw from the stack's cache ($HOME/.cache/job-service/bin) on a
// free port; it is stopped at cleanup.
func StartPrivateS3(t testing.TB) *PrivateS3 {
	t.Helper()
	Integration(t)
	home, _ := os.UserHomeDir()
	bin := getenv("JOBSVC_VERSITYGW", filepath.Join(home, ".cache", "job-service", "bin", "versitygw"))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("testenv: versitygw not found at %s (make stack-up builds it): %v", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	endpoint := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	for _, d := range []string{"data", "meta"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	p := &PrivateS3{Endpoint: endpoint, bin: bin, dir: dir, logPath: filepath.Join(dir, "versitygw.log"), t: t}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start starts the process (again) and waits until it answers.
func (p *PrivateS3) Start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatalf("testenv: %v", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, "--port", p.Endpoint, "posix", "--sidecar", filepath.Join(p.dir, "meta"), filepath.Join(p.dir, "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+S3AccessKey(), "ROOT_SECRET_KEY="+S3SecretKey())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("testenv: start versitygw: %v", err)
	}
	p.cmd = cmd
	c := S3Client(p.t, p.Endpoint)
	Eventually(p.t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.ListBuckets(ctx)
		return err == nil
	}, "private versitygw on %s did not answer: %s", p.Endpoint, p.logTail())
}

// Stop kills the process (by its own pid) and waits for it; idempotent.
func (p *PrivateS3) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// NewBucket creates a bucket on this server (not removed at cleanup when the server is down).
func (p *PrivateS3) NewBucket(t testing.TB) *Bucket {
	t.Helper()
	return newBucketOn(t, p.Endpoint)
}

func (p *PrivateS3) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return fmt.Sprintf("log: %s", s)
}

// ObjectFile is where this server keeps an object on disk (posix backend), so a test can
// check objects while the server is stopped.
func (p *PrivateS3) ObjectFile(bucket, key string) string {
	return filepath.Join(p.dir, "data", bucket, filepath.FromSlash(key))
}
