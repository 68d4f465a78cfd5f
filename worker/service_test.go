package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
	"github.com/jobgate/jobgate/worker"
)

// serviceFixture is a worker (real Redis, real podman with host
// networking, host processes allowed) with model iris:1 in its artifact
// store and registry.
type serviceFixture struct {
	rdb   redis.UniversalClient
	st    *store.Store
	arts  artifact.Store
	image string
	model api.ModelVersion
}

const serviceWorker = "svc"

func newServiceFixture(t *testing.T, hooks ...func(*worker.Worker)) serviceFixture {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	image := testenv.BuildExampleImage(t)
	ctx, cancel := context.WithCancel(context.Background())

	arts := artifact.Dir{Root: t.TempDir()}
	body, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples/modelserver/testdata/model.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	mv := api.ModelVersion{Name: "iris", Version: 1, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body)), Kind: api.ModelFileKind,
		SourceJob: "j", SourcePath: "model.json", CreatedAt: time.Now().UTC()}
	if err := arts.Put(ctx, artifact.ModelPrefix("default", "iris", 1)+"model.json", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := st.AddModelVersion(ctx, "default", mv); err != nil {
		t.Fatal(err)
	}

	pod, err := worker.NewPodmanExecutor(ctx, worker.PodmanConfig{URL: testenv.Podman(t), Network: "host", StopGrace: 5 * time.Second}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(worker.Config{ID: serviceWorker, Slots: 4, AllowHostProcess: true, SpoolDir: t.TempDir(), CheckpointDir: t.TempDir(),
		ModelCacheDir: t.TempDir()},
		rdb, st, arts, map[api.Mode]worker.Executor{
			api.ModeContainer: pod,
			api.ModeProcess:   worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir()}, slog.Default()),
		}, nil, slog.Default())
	for _, o := range hooks {
		o(w)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, 20*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1
	}, "worker did not register")
	return serviceFixture{rdb: rdb, st: st, arts: arts, image: image, model: mv}
}

// placeService places a replica job of deployment "iris-dep" serving
// iris:1, as the scheduler would (no timeout: queue.ServiceDeadline).
func (f serviceFixture) placeService(t *testing.T, spec api.JobSpec) *api.Job {
	t.Helper()
	ctx := context.Background()
	if err := f.st.EnsureWorkspace(ctx, api.Workspace{Name: "default", AllowHostProcess: true}); err != nil {
		t.Fatal(err)
	}
	spec.Service = &api.Service{Deployment: "iris-dep", Replica: "r-" + strings.ToLower(ulid.Make().String()[20:]), Revision: 1,
		Model: "iris", Version: 1, SHA256: f.model.SHA256}
	j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "iris-dep", Experiment: "default",
		Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(), Spec: spec}
	if err := f.st.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	_, n, err := f.st.Reserve(ctx, j.ID, 1, serviceWorker, "")
	if err != nil {
		t.Fatal(err)
	}
	task, err := queue.NewRunJobTask(queue.RunJobPayload{JobID: j.ID, Attempt: 1, Placement: n}, queue.RunJobDeadline(queue.ServiceDeadline, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(f.rdb).EnqueueContext(ctx, task, asynq.Queue(queue.WorkerQueue(serviceWorker))); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Placed(ctx, j.Workspace, j.ID, 1, serviceWorker); err != nil {
		t.Fatal(err)
	}
	if err := queue.Notify(ctx, f.rdb, queue.WorkerChannel(serviceWorker)); err != nil {
		t.Fatal(err)
	}
	return j
}

// endpoint is the job's endpoint, or nil when it has none.
func (f serviceFixture) endpoint(t *testing.T, jobID string) *store.Endpoint {
	t.Helper()
	es, err := f.st.Endpoints(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return nil
	}
	return &es[0]
}

func (f serviceFixture) waitReady(t *testing.T, j *api.Job) store.Endpoint {
	t.Helper()
	var e *store.Endpoint
	testenv.Eventually(t, 60*time.Second, func() bool {
		e = f.endpoint(t, j.ID)
		if got, _ := f.st.GetJobByID(context.Background(), j.ID); got != nil && got.Status.Terminal() {
			t.Fatalf("replica %s ended %s (%s) before it was ready\n%s", j.ID, got.Status, got.Reason, f.jobLog(t, j))
		}
		return e != nil && e.State == store.EndpointReady
	}, "replica %s never became ready (endpoint %+v)", j.ID, e)
	return *e
}

func (f serviceFixture) waitEnded(t *testing.T, j *api.Job) *api.Job {
	t.Helper()
	var got *api.Job
	testenv.Eventually(t, 60*time.Second, func() bool {
		got, _ = f.st.GetJobByID(context.Background(), j.ID)
		return got != nil && got.Status.Terminal()
	}, "replica %s did not end", j.ID)
	return got
}

func (f serviceFixture) jobLog(t *testing.T, j *api.Job) string {
	t.Helper()
	r, err := f.arts.Open(context.Background(), artifact.LogKey(j.ID, 1))
	if err != nil {
		return "(no log at rest yet)"
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// infer sends one V2 infer request for deployment iris-dep to addr.
func infer(t *testing.T, addr string) map[string]any {
	t.Helper()
	body := `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}`
	resp, err := http.Post("http://"+addr+"/v2/models/iris-dep/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("infer: %d, %v (%v)", resp.StatusCode, out, err)
	}
	return out
}

// routingStates records the states of jobID's endpoint as the worker
// announces them: read on every ChannelRouting message (the worker writes
// before it notifies), "gone" once it has none.
type routingStates struct {
	mu     sync.Mutex
	states []string
}

func (r *routingStates) follow(t *testing.T, f serviceFixture, jobID string) {
	t.Helper()
	sub := f.rdb.Subscribe(context.Background(), queue.ChannelRouting)
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range sub.Channel() {
			es, err := f.st.Endpoints(context.Background(), jobID)
			state := "gone"
			if err != nil {
				state = "error"
			} else if len(es) == 1 {
				state = string(es[0].State)
			}
			r.mu.Lock()
			if n := len(r.states); n == 0 || r.states[n-1] != state {
				r.states = append(r.states, state)
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-done })
}

func (r *routingStates) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.states...)
}

// TestServiceReplica runs a deployment's replica on a real worker: the
// model is fetched and mounted read-only, the endpoint becomes ready with
// an address the model server answers on (with the registry version), a
// cancel drains it (draining before it goes) and ends it canceled with its
// endpoint removed.
func TestServiceReplica(t *testing.T) {
	f := newServiceFixture(t)
	ctx := context.Background()
	deploy := f.rdb.Subscribe(ctx, queue.ChannelDeploy)
	defer deploy.Close()
	if _, err := deploy.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	j := f.placeService(t, api.JobSpec{Mode: api.ModeContainer, Image: f.image, Command: []string{"/bin/modelserver"}})
	var states routingStates
	states.follow(t, f, j.ID)
	e := f.waitReady(t, j)
	if e.Worker != serviceWorker || e.Deployment != "iris-dep" || e.Model != "iris" || e.Version != 1 || !strings.HasPrefix(e.Address, "127.0.0.1:") {
		t.Fatalf("endpoint %+v: want worker %s, deployment iris-dep, iris:1 on 127.0.0.1", e, serviceWorker)
	}
	out := infer(t, e.Address)
	if out["model_name"] != "iris-dep" || out["model_version"] != "1" {
		t.Fatalf("infer answered %v: want model_name iris-dep, model_version 1", out)
	}

	// The model is bound read-only at /model.
	conn, err := bindings.NewConnection(ctx, testenv.Podman(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := containers.Inspect(conn, worker.ContainerName(j.ID, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	var model string
	for _, m := range info.Mounts {
		if m.Destination == "/model" {
			model = fmt.Sprintf("rw=%v", m.RW)
		}
	}
	if model != "rw=false" {
		t.Fatalf("mount at /model: %q, want a read-only one (mounts %+v)", model, info.Mounts)
	}

	// Cancel: draining, then gone; the job ends canceled.
	if _, err := f.st.Cancel(ctx, j.Workspace, j.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Publish(ctx, queue.ChannelCancel, j.ID).Err(); err != nil {
		t.Fatal(err)
	}
	got := f.waitEnded(t, j)
	if got.Status != api.StatusCanceled {
		t.Fatalf("drained replica ended %s (%s), want canceled", got.Status, got.Reason)
	}
	if e := f.endpoint(t, j.ID); e != nil {
		t.Fatalf("endpoint %+v left after the replica ended", e)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		s := states.get()
		return len(s) > 0 && s[len(s)-1] == "gone"
	}, "routers never told the endpoint went (states %v)", states.get())
	s := strings.Join(states.get(), " ")
	if !strings.Contains(s, "ready draining gone") {
		t.Fatalf("endpoint states %q: want ready, then draining, then gone", s)
	}
	select {
	case <-deploy.Channel():
	case <-time.After(10 * time.Second):
		t.Fatal("the controller was not woken when the replica ended")
	}
}

// TestServiceReplicaThatExits: a replica that exits on its own (here one
// that tries to write to its read-only model) ends failed with reason
// exit_code, and its endpoint is removed.
func TestServiceReplicaThatExits(t *testing.T) {
	f := newServiceFixture(t)
	j := f.placeService(t, api.JobSpec{Mode: api.ModeContainer, Image: f.image, Command: []string{"/bin/toolbox", "write", "/model/x", "y"}})
	got := f.waitEnded(t, j)
	if got.Status != api.StatusFailed || got.ReasonCode != api.ReasonExitCode {
		t.Fatalf("exited replica ended %s (%s %s), want failed with %s", got.Status, got.ReasonCode, got.Reason, api.ReasonExitCode)
	}
	if log := f.jobLog(t, j); !strings.Contains(log, "read-only file system") {
		t.Fatalf("log: %q, want the write to /model refused (read-only file system)", log)
	}
	if e := f.endpoint(t, j.ID); e != nil {
		t.Fatalf("endpoint %+v left after the replica ended", e)
	}
}

// TestServiceReplicaProcess: a host-process replica gets the cached
// model's host path and serves from it.
func TestServiceReplicaProcess(t *testing.T) {
	f := newServiceFixture(t)
	bin := filepath.Join(t.TempDir(), "modelserver")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/modelserver")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build modelserver: %v\n%s", err, out)
	}
	j := f.placeService(t, api.JobSpec{Mode: api.ModeProcess, Command: []string{bin}})
	e := f.waitReady(t, j)
	if out := infer(t, e.Address); out["model_version"] != "1" {
		t.Fatalf("infer answered %v: want model_version 1", out)
	}
	ctx := context.Background()
	if _, err := f.st.Cancel(ctx, j.Workspace, j.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Publish(ctx, queue.ChannelCancel, j.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if got := f.waitEnded(t, j); got.Status != api.StatusCanceled {
		t.Fatalf("drained replica ended %s (%s), want canceled", got.Status, got.Reason)
	}
	if log := f.jobLog(t, j); !strings.Contains(log, "model.json") {
		t.Fatalf("log %q: want the server to name the model's host path", log)
	}
}

// TestServiceReplicaModelMismatch: a replica whose model files in the
// artifact store no longer match the version's SHA-256 does not start: it
// ends failed with input_unavailable.
func TestServiceReplicaModelMismatch(t *testing.T) {
	f := newServiceFixture(t)
	if err := f.arts.Put(context.Background(), artifact.ModelPrefix("default", "iris", 1)+"model.json", strings.NewReader(`{"kind":"tampered"}`)); err != nil {
		t.Fatal(err)
	}
	j := f.placeService(t, api.JobSpec{Mode: api.ModeContainer, Image: f.image, Command: []string{"/bin/modelserver"}})
	got := f.waitEnded(t, j)
	if got.Status != api.StatusFailed || got.ReasonCode != api.ReasonInputUnavailable || !strings.Contains(got.Reason, "sha256") {
		t.Fatalf("replica of a tampered model ended %s (%s %s), want failed with %s naming the sha256", got.Status, got.ReasonCode, got.Reason, api.ReasonInputUnavailable)
	}
}

// impostor is another program's server on a loopback port, answering 200
// on the readiness path: what a job of another workspace could bind in
// the moment between the worker closing a replica's port and the replica
// binding it.
type impostor struct {
	port int
	mu   sync.Mutex
	hits int
}

func newImpostor(t *testing.T) *impostor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	imp := &impostor{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imp.mu.Lock()
		imp.hits++
		imp.mu.Unlock()
		w.WriteHeader(http.StatusOK) // ready, on every path
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return imp
}

func (imp *impostor) probed() int {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	return imp.hits
}

// TestServiceReplicaImpostorPort: another program already listens on the
// port the worker gives a container replica (host networking) and answers
// the readiness probe with 200. The endpoint must never be ready (the
// routers would send the deployment's requests there); the model server
// cannot bind the port and the replica ends failed.
func TestServiceReplicaImpostorPort(t *testing.T) {
	imp := newImpostor(t)
	f := newServiceFixture(t, func(w *worker.Worker) { worker.SetPortPicker(w, func() int { return imp.port }) })
	j := f.placeService(t, api.JobSpec{Mode: api.ModeContainer, Image: f.image, Command: []string{"/bin/modelserver"}})
	var states routingStates
	states.follow(t, f, j.ID)
	got := f.waitEnded(t, j)
	if slices.Contains(states.get(), string(store.EndpointReady)) {
		t.Fatalf("endpoint states %v: the impostor's listener made the replica ready\n%s", states.get(), f.jobLog(t, j))
	}
	if got.Status != api.StatusFailed {
		t.Fatalf("replica ended %s (%s), want failed", got.Status, got.Reason)
	}
	if imp.probed() == 0 {
		t.Fatal("the readiness probe never reached the impostor: the test proves nothing")
	}
}

// TestServiceReplicaPortTaken: a process replica that stays up while
// another program holds its port is never ready, says so in its log, and
// fails once that lasted a few seconds (another attempt gets another port).
func TestServiceReplicaPortTaken(t *testing.T) {
	imp := newImpostor(t)
	f := newServiceFixture(t, func(w *worker.Worker) { worker.SetPortPicker(w, func() int { return imp.port }) })
	j := f.placeService(t, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "exec sleep 600"}})
	var states routingStates
	states.follow(t, f, j.ID)
	got := f.waitEnded(t, j)
	if slices.Contains(states.get(), string(store.EndpointReady)) {
		t.Fatalf("endpoint states %v: the impostor's listener made the replica ready", states.get())
	}
	if got.Status != api.StatusFailed || got.ReasonCode != api.ReasonExecutorError || !strings.Contains(got.Reason, "taken by another program") {
		t.Fatalf("replica ended %s (%s %s), want failed with %s saying its port was taken", got.Status, got.ReasonCode, got.Reason, api.ReasonExecutorError)
	}
	if log := f.jobLog(t, j); !strings.Contains(log, "another program took the port") {
		t.Fatalf("log %q: want a line saying another program took the port", log)
	}
}
