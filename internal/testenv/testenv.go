// Package testenv is the integration-test harness: it starts a real
// redis-server on a free loopback port for each test, a real podman API
// service once per test binary, and builds the example image locally.
//
// On a machine without redis-server or podman the tests that need them are
// skipped with a message saying what to install — unless JOBGATE_INTEGRATION=1
// (set by `make test`, which CI runs), where a missing service fails the test.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"jobgate/internal/devenv"
)

// Required reports whether integration services are mandatory in this run.
func Required() bool { return os.Getenv("JOBGATE_INTEGRATION") == "1" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (JOBGATE_INTEGRATION=1: integration tests may not skip)", msg)
	}
	t.Skip(msg)
}

// Redis starts a fresh redis-server for this test on a free loopback port, with
// its files in a temporary folder, and returns its URL. It is stopped when the
// test ends.
func Redis(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not found: apt-get install -y redis-server (or run make test)")
	}
	svc, err := devenv.StartRedisServer(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc.URL
}

// RedisIn is Redis with its files in dir, so a test can stop it and start a new
// server over the same AOF to check that nothing was lost.
func RedisIn(t testing.TB, dir string) *devenv.Service {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not found: apt-get install -y redis-server (or run make test)")
	}
	svc, err := devenv.StartRedisServer(context.Background(), dir)
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc
}

var podman struct {
	once sync.Once
	url  string
	svc  *devenv.Service
	err  error
}

// Podman returns the URL of a podman API service: $JOBGATE_PODMAN_URL or
// unix:///run/podman/podman.sock when one answers there, else one this test
// binary starts (and Main stops).
func Podman(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		skipOrFail(t, "podman not found: apt-get install -y podman runc (or run make test)")
	}
	podman.once.Do(func() {
		ctx := context.Background()
		for _, u := range []string{os.Getenv("JOBGATE_PODMAN_URL"), "unix:///run/podman/podman.sock"} {
			if u != "" && devenv.PodmanSocketAnswers(ctx, u) {
				podman.url = u
				return
			}
		}
		dir, err := os.MkdirTemp("", "jobgate-podman-")
		if err != nil {
			podman.err = err
			return
		}
		url := "unix://" + filepath.Join(dir, "podman.sock")
		podman.svc, podman.err = devenv.StartPodmanService(ctx, url, filepath.Join(dir, "service.log"))
		podman.url = url
	})
	if podman.err != nil {
		t.Fatalf("start podman service: %v", podman.err)
	}
	return podman.url
}

// ExampleImage is the image the tests run: examples/ built FROM scratch.
const ExampleImage = "localhost/jobgate-examples:test"

var image struct {
	once sync.Once
	err  error
}

// BuildExampleImage builds ExampleImage from examples/ once per test binary,
// with `podman build` (offline: FROM scratch plus static Go binaries).
func BuildExampleImage(t testing.TB) string {
	t.Helper()
	Podman(t)
	image.once.Do(func() { image.err = buildExampleImage(ExampleImage) })
	if image.err != nil {
		t.Fatalf("build example image: %v", image.err)
	}
	return ExampleImage
}

// RepoRoot is the folder holding go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func buildExampleImage(tag string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := RepoRoot()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "images", "IMAGE="+tag)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make images: %v\n%s", err, out)
	}
	return nil
}

// Main runs the tests and then stops the services this binary started. Use it
// as the body of TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if podman.svc != nil {
		podman.svc.Stop()
	}
	return code
}

// Eventually polls cond every few milliseconds until it returns true or the
// deadline passes, then fails the test with msg.
func Eventually(t testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+format, append([]any{within}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
