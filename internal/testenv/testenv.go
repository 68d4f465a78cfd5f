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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/devenv"
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
//
// Under JOBGATE_TEST_REDIS=sentinel or cluster (RedisMode) it starts that
// deployment instead (one of a few started ahead, for this test only) and
// returns its redis+sentinel:// or redis+cluster:// URL: open it with
// RedisClient, not redis.ParseURL.
func Redis(t testing.TB) string {
	t.Helper()
	switch RedisMode() {
	case "sentinel":
		return sentinelForRedis(t)
	case "cluster":
		return Cluster(t).URL
	}
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

// SecureRedis starts a redis-server with a password and/or TLS (see
// devenv.RedisOptions), stopped when the test ends.
func SecureRedis(t testing.TB, o devenv.RedisOptions) *devenv.Service {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not found: apt-get install -y redis-server (or run make test)")
	}
	svc, err := devenv.StartSecureRedisServer(context.Background(), t.TempDir(), o)
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc
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

// RedisAt is RedisIn on a given port: with the port and folder of a stopped
// server it restarts that server on its AOF, and clients connected to the old
// one reconnect to it.
func RedisAt(t testing.TB, dir string, port int) *devenv.Service {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not found: apt-get install -y redis-server (or run make test)")
	}
	svc, err := devenv.StartSecureRedisServer(context.Background(), dir, devenv.RedisOptions{Port: port})
	if err != nil {
		t.Fatalf("start redis-server on port %d: %v", port, err)
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

// ExampleImageLatest is the same image under the name the README and the
// files in examples/ use, so tests can run those unchanged.
const ExampleImageLatest = "localhost/jobgate-examples:latest"

var image struct {
	once sync.Once
	err  error
}

// BuildExampleImage builds ExampleImage from examples/ once per test binary,
// with `podman build` (offline: FROM scratch plus static Go binaries).
func BuildExampleImage(t testing.TB) string {
	t.Helper()
	Podman(t)
	if err := EnsureExampleImage(); err != nil {
		t.Fatalf("build example image: %v", err)
	}
	return ExampleImage
}

// EnsureExampleImage is BuildExampleImage for a TestMain, where no test runs
// yet: it builds the image once per test binary (podman must be installed)
// and returns what went wrong.
func EnsureExampleImage() error {
	image.once.Do(func() { image.err = buildExampleImage(ExampleImage) })
	return image.err
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
	// examples/*.json and the README name :latest; a fresh machine has none.
	if out, err := exec.CommandContext(ctx, "podman", "tag", tag, ExampleImageLatest).CombinedOutput(); err != nil {
		return fmt.Errorf("podman tag %s %s: %v\n%s", tag, ExampleImageLatest, err, out)
	}
	return nil
}

// Main runs the tests and then stops the services this binary started. Use it
// as the body of TestMain.
func Main(m *testing.M) int {
	mainRuns.Store(true)
	code := m.Run()
	stopClusterSpares()
	stopSentinelSpares()
	if podman.svc != nil {
		podman.svc.Stop()
	}
	return code
}

// mainRuns is set by Main: only then are spares started ahead (Cluster,
// Redis on a Sentinel set), as only Main stops them and removes their
// folders when the binary ends.
var mainRuns atomic.Bool

// needMain fails a test that would start spares in a binary without Main.
func needMain(t testing.TB, what string) {
	t.Helper()
	if !mainRuns.Load() {
		t.Fatalf("%s keeps spares started ahead, which only testenv.Main stops: give this package func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }", what)
	}
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

// RedisValues returns every key and value in Redis as text, read by type
// (DUMP output may be compressed, which would hide a value from a search).
// On a Cluster it reads every master.
func RedisValues(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, k := range RedisKeys(t, rdb, "*") {
		typ, _ := rdb.Type(ctx, k).Result()
		var v any
		switch typ {
		case "string":
			v, _ = rdb.Get(ctx, k).Result()
		case "hash":
			v, _ = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, _ = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, _ = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, _ = rdb.ZRange(ctx, k, 0, -1).Result()
		case "stream":
			v, _ = rdb.XRange(ctx, k, "-", "+").Result()
		}
		fmt.Fprintf(&b, "%s (%s) = %v\n", k, typ, v)
	}
	return b.String()
}

// RedisKeys is KEYS pattern, sorted, over every master of a Cluster (a
// ClusterClient sends KEYS to one node only) or the one server.
func RedisKeys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		keys []string
	)
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			ks, err := m.Keys(ctx, pattern).Result()
			mu.Lock()
			keys = append(keys, ks...)
			mu.Unlock()
			return err
		})
	} else {
		keys, err = rdb.Keys(ctx, pattern).Result()
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// TLSFiles writes a self-signed certificate for 127.0.0.1 and localhost (its
// own CA) and its key to a temporary folder, and returns both paths.
func TLSFiles(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jobgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
