package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/testenv"
)

// multiHost is a deployment across four hosts made of network namespaces
// (testenv.Hosts): Redis and the artifact store on h1, a gateway on h2, a
// worker on h3 and on h4, each with a podman service of its own, every
// process reaching the others by its 198.18 address only.
type multiHost struct {
	*cluster
	tt       *testing.T
	net      *testenv.Network
	redisURL string
	s3       *testenv.S3Service
	// artifactFlags and artifactEnv point a gateway or worker at the store.
	artifactFlags, artifactEnv []string
	secretsKey                 string
	logDir                     string
	// workerIDs are the workers' IDs by host name, hostOf their hosts by ID.
	workerIDs map[string]string
	hostOf    map[string]*testenv.Host
}

const (
	mhRedisPort   = 6379
	mhGatewayPort = 8080
)

func newMultiHost(t *testing.T) *multiHost {
	t.Helper()
	for _, bin := range []string{"redis-server", "podman", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			if testenv.Required() {
				t.Fatalf("%s not found (JOBGATE_INTEGRATION=1: integration tests may not skip)", bin)
			}
			t.Skipf("%s not found: apt-get install -y redis-server podman runc (or run make test)", bin)
		}
	}
	nw := testenv.Hosts(t, 4)
	if err := testenv.EnsureExampleImage(); err != nil {
		t.Fatalf("build example image: %v", err)
	}
	m := &multiHost{tt: t, net: nw, logDir: t.TempDir(), workerIDs: map[string]string{}, hostOf: map[string]*testenv.Host{}}
	m.secretsKey = filepath.Join(t.TempDir(), "secrets.key")
	if _, err := secretbox.EnsureKeyFile(m.secretsKey); err != nil {
		t.Fatal(err)
	}
	h1, h2 := nw.Hosts[0], nw.Hosts[1]

	// Redis on h1, on its 198.18 address only, with a password: it is not
	// on loopback, so protected mode would refuse the others otherwise.
	const password = "multihost-redis-password"
	rdir := t.TempDir()
	m.startOn(h1, "redis", "redis-server", "--bind", h1.IP, "--port", fmt.Sprint(mhRedisPort), "--requirepass", password,
		"--dir", rdir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no")
	m.redisURL = fmt.Sprintf("redis://:%s@%s/0", password, h1.Addr(mhRedisPort))
	rdb := redis.NewClient(&redis.Options{Addr: h1.Addr(mhRedisPort), Password: password, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	testenv.Eventually(t, 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil },
		"redis-server on %s does not answer PING", h1.Addr(mhRedisPort))

	m.s3, m.artifactFlags, m.artifactEnv = mhArtifactStore(t, h1)

	// The gateway on h2. Its lost-after is the default, 7 s, said out loud:
	// the recovery below waits for it.
	gw := "http://" + h2.Addr(mhGatewayPort)
	m.startOn(h2, "gateway", os.Args[0], append([]string{"gateway", "--addr", h2.Addr(mhGatewayPort), "--redis-url", m.redisURL,
		"--secrets-key-file", m.secretsKey, "--worker-lost-after", "7s", "--log-level", "warn"}, m.artifactFlags...)...)
	m.cluster = &cluster{t: t, gwURL: gw, token: testToken, api: client.New(gw, testToken)}
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(gw + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "gateway on %s did not become ready", h2.Addr(mhGatewayPort))

	for _, h := range nw.Hosts[2:4] {
		m.startWorker(h)
	}
	return m
}

// startOn runs name args... on host h, as the test binary's jobgate when name
// is the test binary, its output in the log folder (shown when the test fails).
func (m *multiHost) startOn(h *testenv.Host, label, name string, args ...string) *exec.Cmd {
	t := m.tt
	t.Helper()
	cmd := h.Command(name, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		// A proxy is on a network these hosts do not reach.
		if k, _, _ := strings.Cut(kv, "="); strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	if name == os.Args[0] {
		env = append(append(env, "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken), m.artifactEnv...)
	}
	cmd.Env = env
	logPath := filepath.Join(m.logDir, h.Name+"-"+label+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	h.Start(cmd)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 16<<10 {
				b = b[len(b)-16<<10:]
			}
			t.Logf("%s on %s said (last 16 KiB):\n%s", label, h.Name, b)
		}
	})
	return cmd
}

// startWorker starts a podman service and a worker on h. The podman service
// runs in h's network namespace so that the containers it starts with host
// networking are on h too.
func (m *multiHost) startWorker(h *testenv.Host) {
	t := m.tt
	t.Helper()
	dir := t.TempDir()
	sock := "unix://" + filepath.Join(dir, "podman.sock")
	m.startOn(h, "podman", "podman", "--runtime", "runc", "system", "service", "--time=0", sock)
	testenv.Eventually(t, 30*time.Second, func() bool { return devenv.PodmanSocketAnswers(context.Background(), sock) },
		"podman service on %s does not answer on %s", h.Name, sock)

	// Unique per run (the namespace's suffix), so a rerun never meets an old
	// registration.
	id := "mh-" + strings.TrimPrefix(h.NS, "jobgate-")
	m.workerIDs[h.Name], m.hostOf[id] = id, h
	// After the worker stops (cleanups run last first).
	t.Cleanup(func() { m.removeContainers(id) })
	// Its own simulated GPU model pins jobs to it (resources.gpu_model).
	m.startOn(h, "worker", os.Args[0], append([]string{"worker", "--id", id, "--redis-url", m.redisURL,
		"--podman-url", sock, "--network", "host", "--stop-grace", "2s", "--simulate-gpus", "1:SIM-" + strings.ToUpper(h.Name),
		"--spool-dir", filepath.Join(dir, "spool"), "--checkpoint-dir", filepath.Join(dir, "checkpoints"),
		"--secrets-key-file", m.secretsKey, "--gateway-url", m.gwURL, "--log-level", "warn"}, m.artifactFlags...)...)
	testenv.Eventually(t, 30*time.Second, func() bool { return m.workerState(id) == "up" }, "worker %s on %s did not register", id, h.Name)
}

// runningContainers counts the running containers of the worker id.
func (m *multiHost) runningContainers(id string) int {
	out, err := exec.Command("podman", "ps", "-q", "--filter", "label=jobgate.worker="+id, "--filter", "status=running").Output()
	if err != nil {
		m.tt.Fatalf("podman ps: %v", err)
	}
	return len(strings.Fields(string(out)))
}

// removeContainers removes what the worker id left in podman (a fenced
// attempt's container, on a worker stopped while cut off).
func (m *multiHost) removeContainers(id string) {
	out, err := exec.Command("podman", "ps", "-aq", "--filter", "label=jobgate.worker="+id).Output()
	if err != nil {
		return
	}
	for _, c := range strings.Fields(string(out)) {
		_ = exec.Command("podman", "rm", "-f", "-t", "0", c).Run()
	}
}

// artifact reads one of a job's artifacts through the gateway.
func (m *multiHost) artifact(id, path string) string {
	t := m.tt
	t.Helper()
	r, err := m.api.Artifact(context.Background(), id, path)
	if err != nil {
		t.Fatalf("artifact %s of %s: %v", path, id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMultiHost runs jobgate across four hosts: a job pinned to each worker
// runs there (its container sees that host's address and no other), its log
// and output come back through the artifact store and the gateway; then a
// long job's worker is cut off the network, and the job is recovered and
// run to the end by the other worker.
func TestMultiHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the multi-host test starts four hosts' services")
	}
	start := time.Now()
	m := newMultiHost(t)
	t.Logf("four hosts, Redis, S3, a gateway and two workers up in %s", time.Since(start).Round(10*time.Millisecond))
	h3, h4 := m.net.Hosts[2], m.net.Hosts[3]
	s3 := m.s3.Client(t)

	// A job on each worker. Its preparation prints the routing table its
	// container sees: with host networking that is its host's.
	ids := map[*testenv.Host]string{}
	for _, h := range []*testenv.Host{h3, h4} {
		j := m.submit(api.JobSpec{Image: testenv.ExampleImageLatest, Resources: api.Resources{GPUs: 1, GPUModel: "SIM-" + strings.ToUpper(h.Name)},
			Preparation: toolbox("cat", "/proc/net/fib_trie"), Command: toolbox("write", "/outputs/result.txt", "computed on", h.Name)})
		ids[h] = j.ID
	}
	for _, h := range []*testenv.Host{h3, h4} {
		id := ids[h]
		j := m.waitEnded(id)
		if j.Status != api.StatusSucceeded || j.Worker != m.workerIDs[h.Name] {
			t.Fatalf("job for %s: %s (%s) on %q; want succeeded on %s\n%s", h.Name, j.Status, j.Reason, j.Worker, m.workerIDs[h.Name], m.logs(id))
		}
		logs := m.logs(id)
		other := h3
		if h == h3 {
			other = h4
		}
		if !strings.Contains(logs, "-- "+h.IP+"\n") || strings.Contains(logs, "-- "+other.IP+"\n") {
			t.Fatalf("job on %s: its container should see %s and not %s; log:\n%s", h.Name, h.IP, other.IP, logs)
		}
		if !strings.Contains(logs, "jobgate: collected 1 output file") {
			t.Fatalf("job on %s: the log does not say its output was collected:\n%s", h.Name, logs)
		}
		if got, want := m.artifact(id, "result.txt"), "computed on "+h.Name+"\n"; got != want {
			t.Fatalf("job on %s: result.txt = %q, want %q", h.Name, got, want)
		}
		// What the gateway served is in the bucket: the log at rest and
		// the output, put there by the worker over the network.
		for _, key := range []string{artifact.LogKey(id, 1), artifact.OutputPrefix(id) + "result.txt"} {
			if _, err := s3.StatObject(context.Background(), m.s3.Bucket, m.s3.Prefix+"/"+key, minio.StatObjectOptions{}); err != nil {
				t.Fatalf("job on %s: %s is not in the bucket: %v", h.Name, key, err)
			}
		}
	}

	t.Logf("a job on each worker, its log and output read back: %s", time.Since(start).Round(10*time.Millisecond))

	// A long job on whichever worker takes it (A); then A's host is cut off.
	long := m.submit(api.JobSpec{Image: testenv.ExampleImageLatest, Command: toolbox("sleep", "8")})
	j := m.waitFor(long.ID, 60*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker != "" })
	a := m.hostOf[j.Worker]
	b := h4
	if a == h4 {
		b = h3
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return strings.Contains(m.logs(long.ID), "sleeping") }, "the long job never printed")
	a.LinkDown()
	cut := time.Now()
	j = m.waitFor(long.ID, 60*time.Second, "running on "+m.workerIDs[b.Name], func(j *api.Job) bool {
		return j.Status == api.StatusRunning && j.Worker == m.workerIDs[b.Name]
	})
	t.Logf("worker %s on %s cut off: its job ran on %s on %s %s after the link went down (lost-after 7s)",
		m.workerIDs[a.Name], a.Name, m.workerIDs[b.Name], b.Name, time.Since(cut).Round(10*time.Millisecond))
	if j.Attempt != 2 {
		t.Fatalf("the recovered job runs as attempt %d; want 2", j.Attempt)
	}
	// Cut off, A stopped its copy on its own (it fences before the
	// scheduler's lost-after): the job never runs twice at once for long.
	testenv.Eventually(t, 10*time.Second, func() bool { return m.runningContainers(m.workerIDs[a.Name]) == 0 },
		"the cut-off worker %s still runs its container of the job", m.workerIDs[a.Name])
	done := m.waitEnded(long.ID)
	if done.Status != api.StatusSucceeded || done.Worker != m.workerIDs[b.Name] || done.Attempt != 2 {
		t.Fatalf("long job: %s (%s) on %q attempt %d; want succeeded on %s attempt 2", done.Status, done.Reason, done.Worker, done.Attempt, m.workerIDs[b.Name])
	}
	h := m.history(long.ID)
	if len(h.Attempts) != 2 || h.Attempts[0].Worker != m.workerIDs[a.Name] || !strings.HasPrefix(h.Attempts[0].Reason, api.ReasonWorkerLost) ||
		h.Attempts[1].Worker != m.workerIDs[b.Name] || h.Attempts[1].Status != api.StatusSucceeded {
		t.Fatalf("attempts: %+v; want 1 worker_lost on %s, 2 succeeded on %s", h.Attempts, m.workerIDs[a.Name], m.workerIDs[b.Name])
	}

	// Plugged back in, A is a worker again.
	a.LinkUp()
	testenv.Eventually(t, 30*time.Second, func() bool { return m.workerState(m.workerIDs[a.Name]) == "up" }, "worker %s is not up again after its link came back", m.workerIDs[a.Name])
	t.Logf("recovery checked, A back: %s", time.Since(start).Round(10*time.Millisecond))
}

// mhArtifactStore starts the S3 server (SeaweedFS) on h, on its 198.18
// address, and returns the flags and environment that point a gateway or a
// worker at it.
func mhArtifactStore(t *testing.T, h *testenv.Host) (*testenv.S3Service, []string, []string) {
	t.Helper()
	s3 := testenv.StartS3(t, testenv.S3Options{IP: h.IP, Wrap: h.Wrap()})
	return s3, s3.Flags(), s3.Env()
}
