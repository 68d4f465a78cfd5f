package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/jobgate/jobgate/internal/devenv"
)

// SeaweedFSVersion is the SeaweedFS whose weed the S3 harness runs, pinned
// by tools/seaweedfs/go.mod (a module of its own, so SeaweedFS's many
// dependencies do not move jobgate's).
const SeaweedFSVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// WeedBinary is where the built weed is kept, outside the clone, and
// reused while it is there: the test cache folder (see JaegerBinary), then
// weed-VERSION. .ci/seaweedfs.sh builds it (make test runs it first).
func WeedBinary() string {
	return filepath.Join(filepath.Dir(JaegerBinary()), "weed-"+SeaweedFSVersion)
}

var weedBuild struct {
	once sync.Once
	err  error
}

// S3Service is a SeaweedFS S3 server started for one test, with a bucket
// made and credentials that it checks.
type S3Service struct {
	// Endpoint is its S3 API, http://IP:PORT.
	Endpoint string
	// Bucket is the bucket made for the test; Prefix the folder key in it
	// the test's store uses.
	Bucket, Prefix string
	// Region is the region the clients sign for.
	Region string
	// AccessKey and SecretKey are the one identity the server accepts.
	AccessKey, SecretKey string
	// URL is s3://Bucket/Prefix: what --artifacts-url is set to.
	URL string
	// Dir holds its data.
	Dir string
	// PID is the weed process's.
	PID int

	stop func()
}

// Flags are the jobgate flags that reach the store (credentials are in
// Env, as the AWS variables, not on a command line).
func (s *S3Service) Flags() []string {
	return []string{"--artifacts-url", s.URL, "--s3-endpoint", s.Endpoint, "--s3-region", s.Region, "--s3-path-style"}
}

// Env is the credentials and region as the standard AWS variables, NAME=value.
func (s *S3Service) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + s.Region}
}

// Client is a minio-go client of the server with the service's credentials.
func (s *S3Service) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Stop kills the server (SIGKILL at once: a graceful stop takes weed 12 s,
// and the test's data is thrown away) and waits for it to exit; the test's
// cleanup does it too.
func (s *S3Service) Stop() { s.stop() }

// S3Options place a SeaweedFS server (StartS3).
type S3Options struct {
	// IP is the address it binds and advertises (default 127.0.0.1). The
	// test process must be able to reach it: the harness makes the
	// bucket through it.
	IP string
	// Wrap is put before the weed command line, as in
	// {"ip", "netns", "exec", "h1"} to run it in another network
	// namespace. The wrapper must exec weed (ip netns exec does), so the
	// PID stopped at cleanup is weed's.
	Wrap []string
	// Dir holds its data (default a t.TempDir()).
	Dir string
}

// S3 starts SeaweedFS (master, volume server, filer and S3 gateway in one
// weed process) on free loopback ports for this test, with one identity
// (random keys, given with -s3.config) and a bucket made, and stops it by
// its PID when the test ends. When weed is not built (WeedBinary) the test
// is skipped, saying how to build it, except under JOBGATE_INTEGRATION=1,
// where it is built here (once per test binary, minutes).
func S3(t testing.TB) *S3Service {
	t.Helper()
	return StartS3(t, S3Options{})
}

// StartS3 is S3 at o's address, folder and wrapper.
func StartS3(t testing.TB, o S3Options) *S3Service {
	t.Helper()
	bin := WeedBinary()
	if _, err := os.Stat(bin); err != nil {
		if !Required() {
			skipOrFail(t, "seaweedfs weed not built at %s: run .ci/seaweedfs.sh (builds it once, a few minutes) or make test", bin)
		}
		weedBuild.once.Do(func() { weedBuild.err = buildWeed() })
		if weedBuild.err != nil {
			t.Fatalf("build weed: %v", weedBuild.err)
		}
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	// A port picked free may be taken by another test before weed binds
	// it: then start again, on other ports.
	for try := 1; ; try++ {
		if s := startWeed(t, bin, o, try == 3); s != nil {
			return s
		}
	}
}

func startWeed(t testing.TB, bin string, o S3Options, last bool) *S3Service {
	t.Helper()
	// master, master gRPC, volume, volume gRPC, filer, filer gRPC, s3, s3
	// gRPC: gRPC ports default to the HTTP port + 10000, which a free
	// port may not have room for.
	ports := make([]int, 8)
	for i := range ports {
		p, err := devenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	s := &S3Service{
		Endpoint:  fmt.Sprintf("http://%s", net.JoinHostPort(o.IP, strconv.Itoa(ports[6]))),
		Bucket:    "jobgate-test",
		Prefix:    "artifacts",
		Region:    "us-east-1",
		AccessKey: "JG" + strings.ToUpper(randomHex(9)),
		SecretKey: randomHex(20),
		Dir:       o.Dir,
	}
	s.URL = "s3://" + s.Bucket + "/" + s.Prefix
	data := filepath.Join(o.Dir, "data")
	if err := os.MkdirAll(data, 0o750); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(o.Dir, "s3.json")
	ident, _ := json.Marshal(map[string]any{"identities": []any{map[string]any{
		"name":        "jobgate",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err := os.WriteFile(config, ident, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(o.Dir, "weed.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	args := []string{bin, "server",
		"-dir=" + data, "-ip=" + o.IP, "-ip.bind=" + o.IP,
		"-master.port=" + strconv.Itoa(ports[0]), "-master.port.grpc=" + strconv.Itoa(ports[1]),
		"-volume.port=" + strconv.Itoa(ports[2]), "-volume.port.grpc=" + strconv.Itoa(ports[3]),
		"-filer.port=" + strconv.Itoa(ports[4]), "-filer.port.grpc=" + strconv.Itoa(ports[5]),
		"-s3", "-s3.port=" + strconv.Itoa(ports[6]), "-s3.port.grpc=" + strconv.Itoa(ports[7]),
		"-s3.config=" + config,
		// Off: reporting to seaweedfs.com (no outside network here), and
		// the Iceberg and Lance servers on their fixed default ports.
		"-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
		// Volumes of 1 GiB rather than 30: a test's data stays small.
		"-master.volumeSizeLimitMB=1024", "-volume.max=0",
	}
	args = append(append([]string{}, o.Wrap...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		t.Fatalf("start weed: %v", err)
	}
	s.PID = cmd.Process.Pid
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = <-done; close(exited) }()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	var stopOnce sync.Once
	// SIGKILL: weed takes 12 s over a graceful stop, and a test's data
	// is thrown away with it.
	s.stop = func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(s.stop)
	// Ready: the bucket is made (the S3 gateway answers before its filer
	// does; MakeBucket fails until both do), and an object written (the
	// first write waits for the volume server and makes its volumes: some
	// seconds, spent here rather than in the test's first Put).
	client := s.Client(t)
	started := time.Now()
	deadline := started.Add(60 * time.Second)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		lastErr = client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region})
		if lastErr != nil {
			if r := minio.ToErrorResponse(lastErr); r.Code == "BucketAlreadyOwnedByYou" || r.Code == "BucketAlreadyExists" {
				lastErr = nil
			}
		}
		if lastErr == nil {
			_, lastErr = client.PutObject(ctx, s.Bucket, ".ready", strings.NewReader("1"), 1, minio.PutObjectOptions{})
		}
		if lastErr == nil {
			lastErr = client.RemoveObject(ctx, s.Bucket, ".ready", minio.RemoveObjectOptions{})
		}
		cancel()
		if lastErr == nil {
			break
		}
		select {
		case <-exited:
			s.stop()
			if tail := logTail(); !last && strings.Contains(tail, "address already in use") {
				t.Logf("weed exited at start, a port taken meanwhile; starting it again on others")
				return nil
			}
			t.Fatalf("weed exited at start: %v\n%s", exitErr, logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("seaweedfs made no bucket within 60s (%v):\n%s", lastErr, logTail())
		}
	}
	t.Logf("seaweedfs S3 at %s ready in %v (pid %d, log %s)", s.Endpoint, time.Since(started).Round(time.Millisecond), s.PID, logPath)
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildWeed runs .ci/seaweedfs.sh, which builds weed from tools/seaweedfs
// into WeedBinary.
func buildWeed() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(RepoRoot(), ".ci", "seaweedfs.sh")).CombinedOutput()
	if err != nil {
		return fmt.Errorf(".ci/seaweedfs.sh: %v\n%s", err, out)
	}
	return nil
}
