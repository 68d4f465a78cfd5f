package testenv

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

// TestStartS3Placed: StartS3 at another address, through a wrapper that
// execs weed (as ip netns exec does), in a given folder: the endpoint is on
// that address, the PID is weed's, the bucket answers with the service's
// credentials, and Stop ends the process.
func TestStartS3Placed(t *testing.T) {
	dir := t.TempDir()
	s := StartS3(t, S3Options{IP: "127.0.0.2", Wrap: []string{"env", "JOBGATE_TEST_WRAPPED=1"}, Dir: dir})
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.2:") || s.Dir != dir || s.URL != "s3://"+s.Bucket+"/"+s.Prefix {
		t.Fatalf("service %+v: want an endpoint on 127.0.0.2 and data in %s", s, dir)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(s.PID) + "/comm")
	if err != nil || !strings.HasPrefix(string(comm), "weed") {
		t.Fatalf("pid %d is %q (%v), want weed", s.PID, comm, err)
	}
	if ok, err := s.Client(t).BucketExists(context.Background(), s.Bucket); err != nil || !ok {
		t.Fatalf("bucket %s: %v, %v", s.Bucket, ok, err)
	}
	bad := *s
	bad.SecretKey = "wrong" + s.SecretKey
	if _, err := bad.Client(t).ListBuckets(context.Background()); err == nil || minio.ToErrorResponse(err).Code == "" {
		t.Errorf("a wrong secret key was accepted: %v", err)
	}
	s.Stop()
	if err := syscall.Kill(s.PID, 0); err == nil {
		t.Errorf("weed (pid %d) still runs after Stop", s.PID)
	}
}
