package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestMain doubles as the jobgate binary: with JOBGATE_TEST_AS_MAIN=1 the
// test binary runs `jobgate <args>`, so a test can start a real jobgate
// process and kill it with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("JOBGATE_TEST_AS_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(testenv.Main(m))
}

const testToken = "test-token-0123456789abcdef"

// cluster is a real deployment for a test: redis-server, `jobgate gateway`
// and `jobgate worker` started through run() as separate components, sharing
// one artifact folder.
type cluster struct {
	t         testing.TB
	redisDir  string
	redis     *devenv.Service
	artifacts string
	podman    string
	gwURL     string
	gwStop    func()
	workers   map[string]func()
	api       *client.Client
	// secretsKey is shared by the gateway and the workers.
	secretsKey string
	// token is what do and api act with.
	token string
	// gwFlags are added to the gateway's flags by startGateway.
	gwFlags []string
	// scoringURL is the scoring router's base URL.
	scoringURL string
	// redisURL, when set (newClusterOn), is the Redis the processes use
	// instead of redis's.
	redisURL string
	// s3, when set, is the artifact store instead of the folder
	// (newS3Cluster).
	s3 *testenv.S3Service
}

// newCluster is a cluster on the Redis deployment of JOBGATE_TEST_REDIS
// (testenv.Redis): a redis-server of its own by default, a Sentinel set or a
// Cluster in make test-redis-modes. A test that stops or cuts Redis off uses
// newClusterTB, one server in every mode.
func newCluster(t *testing.T) *cluster {
	if testenv.RedisMode() == "single" {
		return newClusterTB(t)
	}
	return newClusterOn(t, testenv.Redis(t))
}

// newBenchCluster is a cluster with one worker, for benchmarks.
func newBenchCluster(b *testing.B) *cluster {
	c := newClusterTB(b)
	c.startWorker("bench")
	return c
}

func newClusterTB(t testing.TB) *cluster { return newClusterWith(t, clusterOptions{}) }

// newClusterOn is a cluster on the Redis at redisURL (any form
// redisconn takes), or on a redis-server of its own when it is "".
func newClusterOn(t testing.TB, redisURL string) *cluster {
	return newClusterWith(t, clusterOptions{redisURL: redisURL})
}

// newS3Cluster is a cluster whose gateway and workers keep artifacts in a
// real SeaweedFS (testenv.S3) instead of a shared folder.
func newS3Cluster(t *testing.T) *cluster {
	return newClusterWith(t, clusterOptions{s3: testenv.S3(t)})
}

// clusterOptions are what a cluster runs on besides its defaults.
type clusterOptions struct {
	redisURL string
	s3       *testenv.S3Service
}

func newClusterWith(t testing.TB, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, redisDir: t.TempDir(), artifacts: t.TempDir(), workers: map[string]func(){}, redisURL: o.redisURL, s3: o.s3}
	c.secretsKey = filepath.Join(t.TempDir(), "secrets.key")
	if _, err := secretbox.EnsureKeyFile(c.secretsKey); err != nil {
		t.Fatal(err)
	}
	if o.redisURL == "" {
		c.redis = testenv.RedisIn(t, c.redisDir)
	}
	c.podman = testenv.Podman(t)
	testenv.BuildExampleImage(t)
	c.startGateway()
	t.Cleanup(func() {
		for id := range c.workers {
			c.stopWorker(id)
		}
		if c.gwStop != nil {
			c.gwStop()
		}
	})
	return c
}

// start runs `jobgate args...` until the returned stop is called.
func (c *cluster) start(args ...string) func() {
	c.t.Helper()
	ctx, cancel := context.WithCancel(withOpenAPICheck(context.Background(), c.t))
	done := make(chan int, 1)
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	env := map[string]string{"JOBGATE_TOKEN": testToken}
	if c.s3 != nil {
		for _, kv := range c.s3.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	getenv := func(k string) string { return env[k] }
	go func() { done <- run(ctx, args, getenv, w, w) }()
	// A failed test shows what its processes said: a worker's warnings
	// (a port taken, a probe refused) are often the only clue.
	c.t.Cleanup(func() {
		if c.t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			b := out.Bytes()
			if len(b) > 32<<10 {
				b = b[len(b)-32<<10:]
			}
			c.t.Logf("jobgate %s said (last 32 KiB):\n%s", args[0], b)
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					mu.Lock()
					c.t.Errorf("jobgate %s exited %d:\n%s", args[0], code, out.String())
					mu.Unlock()
				}
			case <-time.After(60 * time.Second):
				c.t.Errorf("jobgate %s did not stop within 60s", args[0])
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (c *cluster) startGateway() {
	c.t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		c.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c.gwURL = "http://" + addr
	c.gwStop = c.start(append(append(append([]string{"gateway", "--addr", addr, "--redis-url", c.redisAt()}, c.artifactFlags()...),
		"--secrets-key-file", c.secretsKey, "--allow-callbacks-to", "loopback", "--allow-host-process-default", "--log-level", "warn"), c.gwFlags...)...)
	c.token = cmpOr(c.token, testToken)
	c.api = client.New(c.gwURL, c.token)
	testenv.Eventually(c.t, 20*time.Second, func() bool {
		resp, err := http.Get(c.gwURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "gateway did not become ready")
}

// redisAt is the URL of the cluster's Redis.
func (c *cluster) redisAt() string {
	if c.redisURL != "" {
		return c.redisURL
	}
	return c.redis.URL
}

// artifactFlags are the flags of the cluster's artifact store.
func (c *cluster) artifactFlags() []string {
	if c.s3 != nil {
		return c.s3.Flags()
	}
	return []string{"--artifacts-dir", c.artifacts}
}

func (c *cluster) stopGateway() {
	c.gwStop()
	c.gwStop = nil
}

func (c *cluster) startWorker(id string, extra ...string) {
	c.t.Helper()
	args := append(append(append([]string{"worker", "--id", id, "--redis-url", c.redisAt()}, c.artifactFlags()...),
		"--podman-url", c.podman, "--network", "host", "--stop-grace", "2s", "--allow-host-process",
		"--spool-dir", c.t.TempDir(), "--checkpoint-dir", c.t.TempDir(), "--secrets-key-file", c.secretsKey, "--log-level", "warn",
		"--gateway-url", c.gwURL), extra...)
	c.workers[id] = c.start(args...)
	testenv.Eventually(c.t, 20*time.Second, func() bool { return c.workerState(id) == "up" }, "worker %s did not register", id)
}

// waitDevReady waits for `jobgate dev` to answer /readyz and for its
// in-process worker ("dev") to register: until then a submit that needs a
// worker (host-process jobs) is refused with a 422, by design.
func (c *cluster) waitDevReady() {
	c.t.Helper()
	testenv.Eventually(c.t, 60*time.Second, func() bool {
		resp, err := http.Get(c.gwURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "jobgate dev did not become ready")
	testenv.Eventually(c.t, 20*time.Second, func() bool { return c.workerState("dev") == "up" }, "jobgate dev's worker did not register")
}

func (c *cluster) stopWorker(id string) {
	if stop := c.workers[id]; stop != nil {
		stop()
		delete(c.workers, id)
	}
}

func (c *cluster) workerState(id string) string {
	var body struct {
		Workers []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"workers"`
	}
	if c.do("GET", "/v1/workers", "", &body) != http.StatusOK {
		return ""
	}
	for _, w := range body.Workers {
		if w.ID == id {
			return w.State
		}
	}
	return ""
}

// do sends a raw request with the test token and decodes a JSON answer.
func (c *cluster) do(method, path, body string, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.gwURL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (c *cluster) submit(spec api.JobSpec) *api.Job {
	c.t.Helper()
	if spec.Image == "" && spec.Mode != api.ModeProcess {
		spec.Image = testenv.ExampleImage
	}
	j, err := c.api.Submit(context.Background(), spec, "")
	if err != nil {
		c.t.Fatalf("submit: %v", err)
	}
	if j.Status != api.StatusQueued {
		c.t.Fatalf("submitted job is %s, want queued", j.Status)
	}
	return j
}

func (c *cluster) get(id string) *api.Job {
	c.t.Helper()
	j, err := c.api.Get(context.Background(), id)
	if err != nil {
		c.t.Fatalf("get %s: %v", id, err)
	}
	return j
}

// waitFor polls the job until cond holds.
func (c *cluster) waitFor(id string, within time.Duration, what string, cond func(*api.Job) bool) *api.Job {
	c.t.Helper()
	var j *api.Job
	testenv.Eventually(c.t, within, func() bool { j = c.get(id); return cond(j) }, "job %s never %s; last: %s", id, what, lazy(func() string {
		return fmt.Sprintf("%s (%s) attempt %d", j.Status, j.Reason, j.Attempt)
	}))
	return j
}

func (c *cluster) waitEnded(id string) *api.Job {
	c.t.Helper()
	return c.waitFor(id, 60*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
}

func (c *cluster) logs(id string) string {
	c.t.Helper()
	r, err := c.api.Logs(context.Background(), id, false)
	if err != nil {
		c.t.Fatalf("logs %s: %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		c.t.Fatalf("read logs %s: %v", id, err)
	}
	return string(b)
}

func toolbox(args ...string) []string { return append([]string{"/bin/toolbox"}, args...) }

func TestEndStates(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	exit := func(n int) *int { return &n }
	tests := []struct {
		name       string
		spec       api.JobSpec
		wantStatus api.Status
		wantReason string
		wantExit   *int
		wantLog    string
		wantTries  int
	}{
		{name: "success", spec: api.JobSpec{Command: toolbox("echo", "hello", "world")},
			wantStatus: api.StatusSucceeded, wantExit: exit(0), wantLog: "hello world\n", wantTries: 1},
		{name: "non-zero exit", spec: api.JobSpec{Command: toolbox("exit", "3")},
			wantStatus: api.StatusFailed, wantReason: "exit_code", wantExit: exit(3), wantTries: 1},
		{name: "retries then fails", spec: api.JobSpec{Command: toolbox("exit", "1"), MaxRetries: 2},
			wantStatus: api.StatusFailed, wantReason: "exit_code", wantExit: exit(1), wantTries: 3},
		{name: "timeout", spec: api.JobSpec{Command: toolbox("sleep", "300"), TimeoutSeconds: 1},
			wantStatus: api.StatusFailed, wantReason: "timeout", wantExit: exit(143), wantLog: "got SIGTERM", wantTries: 1},
		{name: "missing image fails at once", spec: api.JobSpec{Image: "localhost/jobgate-no-such-image:1", Command: []string{"x"}, MaxRetries: 3},
			wantStatus: api.StatusFailed, wantReason: "image_not_found", wantLog: "localhost/jobgate-no-such-image:1", wantTries: 1},
		{name: "env reaches the job", spec: api.JobSpec{Command: toolbox("env", "GREETING"), Env: map[string]string{"GREETING": "hoi"}},
			wantStatus: api.StatusSucceeded, wantExit: exit(0), wantLog: "hoi\n", wantTries: 1},
		{name: "job id in the environment", spec: api.JobSpec{Command: toolbox("env", "JOBGATE_JOB_ID")},
			wantStatus: api.StatusSucceeded, wantExit: exit(0), wantTries: 1},
		{name: "host process", spec: api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo from host; exit 4"}},
			wantStatus: api.StatusFailed, wantReason: "exit_code", wantExit: exit(4), wantLog: "from host\n", wantTries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *c
			c.t = t
			j := c.waitEnded(c.submit(tt.spec).ID)
			if j.Status != tt.wantStatus {
				t.Fatalf("status = %s (%s), want %s", j.Status, j.Reason, tt.wantStatus)
			}
			if !strings.HasPrefix(j.Reason, tt.wantReason) {
				t.Errorf("reason = %q, want prefix %q", j.Reason, tt.wantReason)
			}
			if (tt.wantExit == nil) != (j.ExitCode == nil) || (tt.wantExit != nil && *tt.wantExit != *j.ExitCode) {
				t.Errorf("exit_code = %v, want %v", deref(j.ExitCode), deref(tt.wantExit))
			}
			if j.Attempt != tt.wantTries {
				t.Errorf("attempt = %d, want %d", j.Attempt, tt.wantTries)
			}
			if j.StartedAt == nil || j.FinishedAt == nil || j.FinishedAt.Before(*j.StartedAt) {
				t.Errorf("started_at %v, finished_at %v: want both, in order", j.StartedAt, j.FinishedAt)
			}
			logs := c.logs(j.ID)
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("logs = %q, want them to contain %q", logs, tt.wantLog)
			}
			if tt.name == "job id in the environment" && logs != j.ID+"\n" {
				t.Errorf("JOBGATE_JOB_ID = %q, want %q", logs, j.ID)
			}
		})
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestCancelQueuedAndRunning(t *testing.T) {
	c := newCluster(t)

	// Queued: no worker runs yet, so the job waits, and says why.
	queued := c.submit(api.JobSpec{Command: toolbox("echo", "must not run")})
	j := c.waitFor(queued.ID, 10*time.Second, "said why it waits", func(j *api.Job) bool { return strings.Contains(j.Reason, "worker") })
	if j.Status != api.StatusQueued {
		t.Fatalf("status = %s, want queued", j.Status)
	}
	canceled, err := c.api.Cancel(context.Background(), queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status != api.StatusCanceled {
		t.Fatalf("cancel of a queued job: status = %s, want canceled", canceled.Status)
	}

	// Running: the container is stopped and the job ends canceled.
	c.startWorker("w1")
	running := c.submit(api.JobSpec{Command: toolbox("sleep", "300")})
	c.waitFor(running.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.logs(running.ID), "sleeping") }, "job never printed")
	if _, err := c.api.Cancel(context.Background(), running.ID); err != nil {
		t.Fatal(err)
	}
	j = c.waitFor(running.ID, 10*time.Second, "canceled", func(j *api.Job) bool { return j.Status.Terminal() })
	if j.Status != api.StatusCanceled || j.Reason != api.ReasonCanceled {
		t.Fatalf("status = %s (%s), want canceled", j.Status, j.Reason)
	}

	// The queued job never started, even with a worker now running.
	done := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("echo", "after")}).ID)
	if done.Status != api.StatusSucceeded {
		t.Fatalf("later job: %s (%s)", done.Status, done.Reason)
	}
	if j := c.get(queued.ID); j.Status != api.StatusCanceled || j.StartedAt != nil {
		t.Fatalf("canceled queued job: status %s, started_at %v; want canceled, never started", j.Status, j.StartedAt)
	}
	if logs := c.logs(queued.ID); logs != "" {
		t.Fatalf("canceled queued job has logs %q", logs)
	}
	// Canceling an ended job changes nothing.
	again, err := c.api.Cancel(context.Background(), done.ID)
	if err != nil || again.Status != api.StatusSucceeded {
		t.Fatalf("cancel of an ended job: %v, %v", again, err)
	}
}

func TestBadRequestsCreateNothing(t *testing.T) {
	c := newCluster(t)
	img := testenv.ExampleImage
	tests := []struct {
		name     string
		body     string
		auth     string
		status   int
		code     string
		mentions string
	}{
		{name: "no token", body: `{}`, auth: "-", status: 401, code: "unauthorized", mentions: "token"},
		{name: "wrong token", body: `{}`, auth: "Bearer nope-nope-nope-nope", status: 401, code: "unauthorized", mentions: "token"},
		{name: "malformed JSON", body: `{"image": `, status: 400, code: "bad_request", mentions: "JSON"},
		{name: "empty body", body: ``, status: 400, code: "bad_request", mentions: "empty"},
		{name: "unknown field", body: `{"image":"` + img + `","command":["x"],"timeout":5}`, status: 422, code: "invalid_spec", mentions: `"timeout"`},
		{name: "command missing", body: `{"image":"` + img + `"}`, status: 422, code: "invalid_spec", mentions: "command"},
		{name: "command empty", body: `{"image":"` + img + `","command":[]}`, status: 422, code: "invalid_spec", mentions: "command"},
		{name: "command not a list", body: `{"image":"` + img + `","command":"echo hi"}`, status: 422, code: "invalid_spec", mentions: "command"},
		{name: "image missing", body: `{"command":["x"]}`, status: 422, code: "invalid_spec", mentions: "image"},
		{name: "image malformed", body: `{"image":"Not An Image","command":["x"]}`, status: 422, code: "invalid_spec", mentions: "image"},
		{name: "negative timeout", body: `{"image":"` + img + `","command":["x"],"timeout_seconds":-1}`, status: 422, code: "invalid_spec", mentions: "timeout_seconds must be > 0"},
		{name: "timeout too long", body: `{"image":"` + img + `","command":["x"],"timeout_seconds":99999999}`, status: 422, code: "invalid_spec", mentions: "timeout_seconds"},
		{name: "bad priority", body: `{"image":"` + img + `","command":["x"],"priority":"urgent"}`, status: 422, code: "invalid_spec", mentions: "priority"},
		{name: "bad mode", body: `{"image":"` + img + `","command":["x"],"mode":"vm"}`, status: 422, code: "invalid_spec", mentions: "mode"},
		{name: "negative retries", body: `{"image":"` + img + `","command":["x"],"max_retries":-2}`, status: 422, code: "invalid_spec", mentions: "max_retries"},
		{name: "bad env key", body: `{"image":"` + img + `","command":["x"],"env":{"A-B":"1"}}`, status: 422, code: "invalid_spec", mentions: "env key"},
		{name: "reserved env key", body: `{"image":"` + img + `","command":["x"],"env":{"JOBGATE_JOB_ID":"1"}}`, status: 422, code: "invalid_spec", mentions: "reserved"},
		{name: "env value not a string", body: `{"image":"` + img + `","command":["x"],"env":{"A":1}}`, status: 422, code: "invalid_spec", mentions: "env"},
		{name: "negative memory", body: `{"image":"` + img + `","command":["x"],"resources":{"memory_mb":-5}}`, status: 422, code: "invalid_spec", mentions: "resources.memory_mb"},
		{name: "negative cpus", body: `{"image":"` + img + `","command":["x"],"resources":{"cpus":-1}}`, status: 422, code: "invalid_spec", mentions: "resources.cpus"},
		{name: "bad name", body: `{"image":"` + img + `","command":["x"],"name":"has spaces"}`, status: 422, code: "invalid_spec", mentions: "name"},
		{name: "host process without such a worker", body: `{"command":["true"],"mode":"process"}`, status: 422, code: "invalid_spec", mentions: "allow-host-process"},
		{name: "body too large", body: `{"image":"` + img + `","command":["x"],"env":{"A":"` + strings.Repeat("x", 2<<20) + `"}}`, status: 413, code: "request_too_large", mentions: "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", c.gwURL+"/v1/jobs", strings.NewReader(tt.body))
			switch tt.auth {
			case "":
				req.Header.Set("Authorization", "Bearer "+testToken)
			case "-":
			default:
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", raw, err)
			}
			if resp.StatusCode != tt.status || string(body.Error.Code) != tt.code || !strings.Contains(body.Error.Message, tt.mentions) {
				t.Fatalf("got %d %s %q; want %d %s mentioning %q", resp.StatusCode, body.Error.Code, body.Error.Message, tt.status, tt.code, tt.mentions)
			}
		})
	}
	list, err := c.api.List(context.Background(), client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Jobs) != 0 {
		t.Fatalf("bad requests created %d jobs", len(list.Jobs))
	}
	var e api.ErrorBody
	if got := c.do("GET", "/v1/jobs/01nosuchjob0000000000000000", "", &e); got != 404 || e.Error.Code != "not_found" {
		t.Fatalf("unknown job: %d %+v", got, e)
	}
	if got := c.do("GET", "/v1/jobs?limit=0", "", &e); got != 400 || !strings.Contains(e.Error.Message, "limit") {
		t.Fatalf("limit=0: %d %+v", got, e)
	}
}

func TestLogIntegrity(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	t.Run("20000 lines", func(t *testing.T) {
		c := *c
		c.t = t
		j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("lines", "20000")}).ID)
		if j.Status != api.StatusSucceeded {
			t.Fatalf("status %s (%s)", j.Status, j.Reason)
		}
		var want strings.Builder
		for i := 1; i <= 20000; i++ {
			fmt.Fprintf(&want, "line %06d\n", i)
		}
		if got := c.logs(j.ID); got != want.String() {
			t.Fatalf("log has %d bytes, %d lines; want %d bytes, 20000 lines in order", len(got), strings.Count(got, "\n"), want.Len())
		}
	})
	t.Run("1 MB line", func(t *testing.T) {
		c := *c
		c.t = t
		j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("bigline", "1048576")}).ID)
		if got, want := c.logs(j.ID), strings.Repeat("x", 1<<20)+"\n"; got != want {
			t.Fatalf("log has %d bytes; want the 1 MiB line intact (%d bytes)", len(got), len(want))
		}
	})
	t.Run("follow streams until the job ends", func(t *testing.T) {
		c := *c
		c.t = t
		j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
			"for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done; echo done >&2"}})
		r, err := c.api.Logs(context.Background(), j.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		want := "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ndone\n"
		if string(got) != want {
			t.Fatalf("followed log = %q, want %q", got, want)
		}
		// The stream ended because the job did.
		if j := c.get(j.ID); !j.Status.Terminal() {
			t.Fatalf("follow ended while the job is %s", j.Status)
		}
	})
}

func TestWorkerRestartRunsWaitingJobs(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	first := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("echo", "one")}).ID)
	if first.Status != api.StatusSucceeded {
		t.Fatalf("first job: %s (%s)", first.Status, first.Reason)
	}
	c.stopWorker("w1")
	var ids []string
	for i := range 3 {
		ids = append(ids, c.submit(api.JobSpec{Command: toolbox("echo", fmt.Sprint("waiting ", i))}).ID)
	}
	for _, id := range ids {
		j := c.waitFor(id, 10*time.Second, "said it waits for a worker", func(j *api.Job) bool { return strings.Contains(j.Reason, "worker") })
		if j.Status != api.StatusQueued {
			t.Fatalf("job %s is %s while no worker runs", id, j.Status)
		}
	}
	c.startWorker("w1")
	for i, id := range ids {
		j := c.waitEnded(id)
		if j.Status != api.StatusSucceeded || c.logs(id) != fmt.Sprintf("waiting %d\n", i) {
			t.Fatalf("job %s after restart: %s (%s), log %q", id, j.Status, j.Reason, c.logs(id))
		}
	}
}

func TestGatewayAndRedisRestartKeepRecordsAndLogs(t *testing.T) {
	c := newClusterTB(t) // restarts Redis: one server in every mode
	c.startWorker("w1")
	j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("lines", "300")}).ID)
	before, logsBefore := c.get(j.ID), c.logs(j.ID)
	if before.Status != api.StatusSucceeded || strings.Count(logsBefore, "\n") != 300 {
		t.Fatalf("job: %s, %d log lines", before.Status, strings.Count(logsBefore, "\n"))
	}
	c.stopWorker("w1")
	c.stopGateway()
	// Redis restarts from its append-only file (on a new port).
	c.redis.Stop()
	c.redis = testenv.RedisIn(t, c.redisDir)
	// The at-rest log is not what serves it here: drop it, so the live stream
	// restored from the AOF must.
	os.RemoveAll(filepath.Join(c.artifacts, "jobs"))
	c.startGateway()
	after := c.get(j.ID)
	if after.Status != before.Status || *after.ExitCode != *before.ExitCode || !after.FinishedAt.Equal(*before.FinishedAt) {
		t.Fatalf("after restart: %+v\nbefore: %+v", after, before)
	}
	if got := c.logs(j.ID); got != logsBefore {
		t.Fatalf("logs after restart differ: %d bytes, want %d", len(got), len(logsBefore))
	}
	list, err := c.api.List(context.Background(), client.ListOptions{Status: "succeeded"})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != j.ID {
		t.Fatalf("list after restart: %+v, %v", list, err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	c := newCluster(t) // no worker: jobs stay queued
	var ids []string
	for i := range 7 {
		exp := "a"
		if i%2 == 1 {
			exp = "b"
		}
		ids = append(ids, c.submit(api.JobSpec{Command: toolbox("echo"), Experiment: exp}).ID)
	}
	var got []string
	cursor := ""
	for {
		page, err := c.api.List(context.Background(), client.ListOptions{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for i := range ids {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("pages = %v, want newest first %v", got, ids)
		}
	}
	if len(got) != len(ids) {
		t.Fatalf("got %d jobs over the pages, want %d", len(got), len(ids))
	}
	b, err := c.api.List(context.Background(), client.ListOptions{Experiment: "b"})
	if err != nil || len(b.Jobs) != 3 {
		t.Fatalf("experiment=b: %d jobs, %v; want 3", len(b.Jobs), err)
	}
	q, err := c.api.List(context.Background(), client.ListOptions{Status: "queued", Experiment: "a", Limit: 2})
	if err != nil || len(q.Jobs) != 2 || q.NextCursor == "" {
		t.Fatalf("status=queued&experiment=a&limit=2: %+v, %v", q, err)
	}
}

// asToken returns a client of the same cluster acting with another token.
func (c *cluster) asToken(token string) *cluster {
	cc := *c
	cc.token = token
	cc.api = client.New(c.gwURL, token)
	return &cc
}

// workspaceAdmin creates workspace ws and returns an admin token of it. The
// workspace may run host processes (allow_host_process), as default may in
// this cluster: the tests' jobs are mostly mode process.
func (c *cluster) workspaceAdmin(ws string, quotas api.Quotas) string {
	c.t.Helper()
	b, _ := json.Marshal(api.Workspace{Name: ws, Quotas: quotas, AllowHostProcess: true})
	if code := c.do("POST", "/v1/workspaces", string(b), nil); code != http.StatusCreated {
		c.t.Fatalf("create workspace %s: %d", ws, code)
	}
	var tok api.NewToken
	if code := c.do("POST", "/v1/workspaces/"+ws+"/tokens", `{"name":"ci","scopes":["admin"]}`, &tok); code != http.StatusCreated {
		c.t.Fatalf("create token: %d", code)
	}
	return tok.Secret
}

func TestSecretReachesTheJobAndNothingElse(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	const value = "s3cr3t-Value-4711"
	tc := c.asToken(c.workspaceAdmin("team-a", api.Quotas{}))
	if code := tc.do("POST", "/v1/secrets", `{"name":"db_pass","value":"`+value+`"}`, nil); code != http.StatusCreated {
		t.Fatalf("put secret: %d", code)
	}

	// The job prints the variable twice: once as is, once reversed, which
	// proves it got the value without the value itself reaching the log.
	j := tc.submit(api.JobSpec{Mode: api.ModeProcess, Secrets: map[string]string{"DB_PASS": "db_pass"},
		Command: []string{"/bin/sh", "-c", `echo "pass=$DB_PASS"; echo "$DB_PASS" | rev`}})
	done := tc.waitEnded(j.ID)
	if done.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", done.Status, done.Reason)
	}
	logs := tc.logs(j.ID)
	if want := "pass=***\n" + reverse(value) + "\n"; logs != want {
		t.Fatalf("logs = %q, want %q", logs, want)
	}
	var followed strings.Builder
	r, err := tc.api.Logs(context.Background(), j.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&followed, r)
	r.Close()

	var audit, secrets, job, jobs map[string]any
	for path, out := range map[string]*map[string]any{"/v1/audit": &audit, "/v1/secrets": &secrets, "/v1/jobs/" + j.ID: &job, "/v1/jobs": &jobs} {
		if code := tc.do("GET", path, "", out); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	everything, _ := json.Marshal([]any{audit, secrets, job, jobs, followed.String()})
	if strings.Contains(string(everything), value) {
		t.Fatalf("the secret value appears in the API: %s", everything)
	}
	// Nor in Redis in clear (live logs, records, the sealed secret).
	rdb := testenv.RedisClient(t, c.redisAt())
	if strings.Contains(testenv.RedisValues(t, rdb), value) {
		t.Fatal("the secret value is stored in Redis in clear")
	}
	// Nor in the at-rest log files.
	filepath.WalkDir(c.artifacts, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), value) {
				t.Errorf("%s holds the secret value", path)
			}
		}
		return nil
	})
}

func TestQuotaHoldsJobsWithoutLosingThem(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	tc := c.asToken(c.workspaceAdmin("team-q", api.Quotas{MaxRunningJobs: 1}))
	var ids []string
	for i := range 3 {
		ids = append(ids, tc.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", fmt.Sprintf("sleep 0.5; echo job %d", i)}}).ID)
	}
	sawQuotaReason := tc.runUnderQuota(ids, 1, "workspace quota: 1 of 1 jobs running")
	for i, id := range ids {
		if j := tc.get(id); j.Status != api.StatusSucceeded || tc.logs(id) != fmt.Sprintf("job %d\n", i) {
			t.Fatalf("job %d: %s (%s)", i, j.Status, j.Reason)
		}
	}
	if !sawQuotaReason {
		t.Fatal("no waiting job said it waits for the workspace quota")
	}
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lazy formats as f() at the moment it is printed, not when it is passed.
type lazy func() string

func (l lazy) String() string { return l() }

// runUnderQuota waits until every job ended, failing the test if more than
// limit of them ever ran at once; it reports whether a waiting job gave
// reason as why it waits.
func (c *cluster) runUnderQuota(ids []string, limit int, reason string) bool {
	c.t.Helper()
	sawReason := false
	testenv.Eventually(c.t, 60*time.Second, func() bool {
		ended := 0
		for _, id := range ids {
			j := c.get(id)
			switch {
			case j.Status.Terminal():
				ended++
			case j.Status == api.StatusQueued && strings.Contains(j.Reason, reason):
				sawReason = true
			}
		}
		return ended == len(ids)
	}, "jobs under the quota did not all end")
	// How many ran at once, from the attempts' own start and end times: the
	// jobs read one after the other above are no snapshot (one may end and
	// the next start between two reads).
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, id := range ids {
		for _, a := range c.history(id).Attempts {
			if a.StartedAt != nil {
				edges = append(edges, edge{*a.StartedAt, 1}, edge{a.FinishedAt, -1})
			}
		}
	}
	// An end sorts before a start at the same instant: the two did not overlap.
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), a.delta-b.delta) })
	running, most := 0, 0
	for _, e := range edges {
		running += e.delta
		most = max(most, running)
	}
	if most > limit {
		c.t.Fatalf("%d jobs ran at once under a quota of %d", most, limit)
	}
	return sawReason
}
