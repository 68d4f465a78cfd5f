package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// irisInfer holds rows 1, 51 and 101 of Fisher's table: setosa, versicolor,
// virginica.
const irisInfer = `{"id": "chain", "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4],
	"data": [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]}]}`

// inferAnswer is what the chain reads of a V2 infer answer.
type inferAnswer struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	Outputs      []struct {
		Name string    `json:"name"`
		Data []float64 `json:"data"`
	} `json:"outputs"`
}

// infer sends irisInfer to the scoring router and returns the answer, or
// an error naming what went wrong (status and body).
func (c *cluster) infer(ctx context.Context, name, traceparent string) (inferAnswer, error) {
	var got inferAnswer
	req, err := http.NewRequestWithContext(ctx, "POST", c.scoringURL+"/v2/models/"+name+"/infer", strings.NewReader(irisInfer))
	if err != nil {
		return got, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return got, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return got, fmt.Errorf("infer: %d %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		return got, fmt.Errorf("infer answer %q: %w", b, err)
	}
	if len(got.Outputs) == 0 || got.Outputs[0].Name != "label" || fmt.Sprint(got.Outputs[0].Data) != "[0 1 2]" {
		return got, fmt.Errorf("infer: wrong classes in %s", b)
	}
	return got, nil
}

// deployment reads a deployment through the API.
func (c *cluster) deployment(name string) (api.Deployment, int) {
	c.t.Helper()
	var d api.Deployment
	code := c.do("GET", "/v1/deployments/"+name, "", &d)
	return d, code
}

// tracedToJaeger starts Jaeger and points every process the test starts
// (in-process, child processes, the containers' model servers given the
// same env) at it, exporting every 100 ms rather than every 5 s.
func tracedToJaeger(t *testing.T) *testenv.JaegerService {
	t.Helper()
	jaeger := testenv.Jaeger(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.OTLPEndpoint)
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	return jaeger
}

// waitDeployment polls deployment name until cond holds.
func (c *cluster) waitDeployment(name string, within time.Duration, what string, cond func(api.Deployment) bool) api.Deployment {
	c.t.Helper()
	var d api.Deployment
	testenv.Eventually(c.t, within, func() bool { d, _ = c.deployment(name); return cond(d) },
		"deployment %s never %s; last: %s\n%s", name, what, lazy(func() string { b, _ := json.Marshal(d); return string(b) }),
		lazy(func() string { return c.replicaJobs(d) }))
	return d
}

// replicaJobs describes the jobs of d's replicas, with their logs' tails:
// why a replica is not ready is often only there.
func (c *cluster) replicaJobs(d api.Deployment) string {
	var b strings.Builder
	for _, r := range d.Replicas {
		j, err := c.api.Get(context.Background(), r.JobID)
		if err != nil {
			fmt.Fprintf(&b, "replica %s job %s: %v\n", r.ID, r.JobID, err)
			continue
		}
		fmt.Fprintf(&b, "replica %s job %s: %s (%s), attempt %d on %s\n", r.ID, r.JobID, j.Status, j.Reason, j.Attempt, j.Worker)
		rc, err := c.api.Logs(context.Background(), r.JobID, false)
		if err != nil {
			fmt.Fprintf(&b, "  logs: %v\n", err)
			continue
		}
		logs, _ := io.ReadAll(io.LimitReader(rc, 8<<10))
		rc.Close()
		fmt.Fprintf(&b, "  logs:\n%s\n", logs)
	}
	return b.String()
}

// load keeps n clients inferring until stop is called, which returns how
// many requests were answered and the failures (at most 10 kept).
func (c *cluster) load(name string, n int) (stop func() (ok int64, failures []string)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var answered atomic.Int64
	var mu sync.Mutex
	var failed []string
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, err := c.infer(ctx, name, "")
				switch {
				case ctx.Err() != nil:
				case err != nil:
					mu.Lock()
					if len(failed) < 10 {
						failed = append(failed, err.Error())
					}
					mu.Unlock()
				default:
					answered.Add(1)
				}
			}
		}()
	}
	return func() (int64, []string) {
		cancel()
		wg.Wait()
		return answered.Load(), failed
	}
}

// killReplica SIGKILLs the model server of replica job jobID in its
// container, as a crash would.
func (c *cluster) killReplica(jobID string) {
	c.t.Helper()
	ctx, err := bindings.NewConnection(context.Background(), c.podman)
	if err != nil {
		c.t.Fatal(err)
	}
	list, err := containers.List(ctx, new(containers.ListOptions).WithFilters(map[string][]string{"label": {"jobgate.job=" + jobID}}))
	if err != nil || len(list) != 1 {
		c.t.Fatalf("container of replica job %s: %d found, %v", jobID, len(list), err)
	}
	if err := containers.Kill(ctx, list[0].ID, new(containers.KillOptions).WithSignal("KILL")); err != nil {
		c.t.Fatalf("kill replica %s: %v", jobID, err)
	}
}

// startScoringProcess runs `jobgate scoring` as a real child process (its
// own tracer provider, service jobgate-scoring) and points c.scoringURL at it.
func (c *cluster) startScoringProcess(extra ...string) {
	c.t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		c.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(os.Args[0], append([]string{"scoring", "--listen", addr, "--redis-url", c.redisAt(), "--log-level", "warn"}, extra...)...)
	cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	c.scoringURL = "http://" + addr
	testenv.Eventually(c.t, 20*time.Second, func() bool {
		resp, err := http.Get(c.scoringURL + "/v2/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "scoring router did not become ready")
}

// TestScoringChain is issue 12's Done-when, for real: iris-train trains in a
// container job; iris:1 and iris:2 are registered and iris@production names
// 1; a deployment of two replicas (container jobs running /bin/modelserver
// with the model mounted read-only) serves rows of three classes through the
// scoring router; the client's traceparent is found in a real Jaeger as one
// trace with the router's server span, its upstream client span and the
// model server's span; a replica SIGKILLed under load costs no request and
// is restarted; a rolling update to version 2 under load costs none; a 90/10
// split serves that proportion over 1,000 requests; the deployment scales to
// zero when idle and its next request is held and answered; delete drains
// and ends every replica.
func TestScoringChain(t *testing.T) {
	jaeger := tracedToJaeger(t)
	c := newCluster(t)
	c.startWorker("w1", "--slots", "8")
	c.startScoringProcess()
	ctx := context.Background()

	// Train, register twice, alias.
	train := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if train.Status != api.StatusSucceeded {
		t.Fatalf("iris-train: %s (%s)\n%s", train.Status, train.Reason, c.logs(train.ID))
	}
	for want := 1; want <= 2; want++ {
		if v, err := c.api.RegisterModel(ctx, "iris", train.ID, "model.json"); err != nil || v.Version != want {
			t.Fatalf("register: %+v, %v", v, err)
		}
	}
	if _, err := c.api.SetModelAlias(ctx, "iris", "production", 1); err != nil {
		t.Fatal(err)
	}

	// Deploy two replicas of iris@production.
	spec := fmt.Sprintf(`{"name": "iris", "model": "iris@production", "image": %q, "command": ["/bin/modelserver"],
		"replicas": 2, "env": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": %q, "OTEL_BSP_SCHEDULE_DELAY": "100"}}`,
		testenv.ExampleImage, jaeger.OTLPEndpoint)
	var created api.Deployment
	if code := c.do("POST", "/v1/deployments", spec, &created); code != http.StatusCreated {
		t.Fatalf("create deployment: %d %+v", code, created)
	}
	t.Cleanup(func() { c.do("DELETE", "/v1/deployments/iris", "", nil) })
	d := c.waitDeployment("iris", 180*time.Second, "ready with 2 replicas", func(d api.Deployment) bool {
		return d.Status == api.DeploymentReady && d.ReadyReplicas == 2
	})
	if len(d.Targets) != 1 || d.Targets[0].Version != 1 {
		t.Fatalf("targets: %+v, want iris@production resolved to version 1", d.Targets)
	}

	// One traced infer: the classes, and the trace in Jaeger.
	const traceID = "5a1e0c7f3b8d4e2a9c6b1d0f7e3a2b41"
	got, err := c.infer(ctx, "iris", "00-"+traceID+"-00f067aa0ba902b7-01")
	if err != nil {
		t.Fatal(err)
	}
	if got.ModelName != "iris" || got.ModelVersion != "1" {
		t.Fatalf("infer answered %+v, want iris version 1", got)
	}
	// The router's server span (the client's span its parent), its client
	// span to the replica, and the model server's span under that one.
	var router, upstream, server *testenv.JaegerSpan
	var tr *testenv.JaegerTrace
	testenv.Eventually(t, 30*time.Second, func() bool {
		if tr, err = jaeger.Trace(traceID); err != nil {
			return false
		}
		router, upstream, server = nil, nil, nil
		for i := range tr.Spans {
			s := &tr.Spans[i]
			switch svc, kind := tr.Service(*s), s.Tag("span.kind"); {
			case svc == "jobgate-scoring" && kind == "server":
				router = s
			case svc == "jobgate-scoring" && kind == "client":
				upstream = s
			case svc == "modelserver" && kind == "server":
				server = s
			}
		}
		return router != nil && upstream != nil && server != nil
	}, "trace %s in Jaeger lacks the router's, its upstream's or the model server's span: %s", traceID, lazy(func() string {
		b, _ := json.Marshal(tr)
		return string(b)
	}))
	if router.Parent() != "00f067aa0ba902b7" || upstream.Parent() != router.SpanID || server.Parent() != upstream.SpanID {
		t.Errorf("trace %s: router span's parent %s (want the client's 00f067aa0ba902b7), upstream's %s (want the router's %s), model server's %s (want the upstream's %s)",
			traceID, router.Parent(), upstream.Parent(), router.SpanID, server.Parent(), upstream.SpanID)
	}
	if router.OperationName != "POST /v2/models/{name}/infer" {
		t.Errorf("router span named %q, want its route", router.OperationName)
	}

	// SIGKILL one replica under load: no failed request, and it restarts.
	stop := c.load("iris", 4)
	victim := d.Replicas[0]
	c.killReplica(victim.JobID)
	c.waitDeployment("iris", 90*time.Second, "restarted its killed replica", func(d api.Deployment) bool {
		for _, r := range d.Replicas {
			if r.ID == victim.ID && r.Restarts >= 1 && r.State == api.ReplicaReady && r.JobID != victim.JobID {
				return d.ReadyReplicas == 2
			}
		}
		return false
	})
	if n, failed := stop(); len(failed) > 0 || n == 0 {
		t.Fatalf("replica killed under load: %d answered, failures: %q", n, failed)
	} else {
		t.Logf("replica killed under load: %d requests answered, none failed", n)
	}
	if j := c.get(victim.JobID); j.Status != api.StatusFailed {
		t.Errorf("killed replica's job: %s (%s), want failed", j.Status, j.Reason)
	}

	// Rolling update to version 2 under load: no failed request.
	stop = c.load("iris", 4)
	if code := c.do("PATCH", "/v1/deployments/iris", `{"model": "iris:2"}`, nil); code != http.StatusOK {
		t.Fatalf("patch to iris:2: %d", code)
	}
	c.waitDeployment("iris", 120*time.Second, "rolled to version 2", func(d api.Deployment) bool {
		if d.Status != api.DeploymentReady || d.ReadyReplicas != 2 || len(d.Replicas) != 2 {
			return false
		}
		for _, r := range d.Replicas {
			if r.Version != 2 || r.State != api.ReplicaReady {
				return false
			}
		}
		return true
	})
	if n, failed := stop(); len(failed) > 0 || n == 0 {
		t.Fatalf("rolling update under load: %d answered, failures: %q", n, failed)
	} else {
		t.Logf("rolling update under load: %d requests answered, none failed", n)
	}
	if got, err := c.infer(ctx, "iris", ""); err != nil || got.ModelVersion != "2" {
		t.Fatalf("after the update: %+v, %v; want version 2", got, err)
	}

	// A 90/10 split between versions 1 and 2.
	if code := c.do("PATCH", "/v1/deployments/iris", `{"traffic": {"iris:1": 90, "iris:2": 10}, "replicas": 1}`, nil); code != http.StatusOK {
		t.Fatalf("patch to a 90/10 split: %d", code)
	}
	c.waitDeployment("iris", 120*time.Second, "served both versions", func(d api.Deployment) bool {
		versions := map[int]int{}
		for _, r := range d.Replicas {
			if r.State == api.ReplicaReady {
				versions[r.Version]++
			}
		}
		return d.Status == api.DeploymentReady && len(d.Replicas) == 2 && versions[1] == 1 && versions[2] == 1
	})
	served := map[string]int{}
	for range 1000 {
		got, err := c.infer(ctx, "iris", "")
		if err != nil {
			t.Fatal(err)
		}
		served[got.ModelVersion]++
	}
	if share := float64(served["2"]) / 10; math.Abs(share-10) > 5 || served["1"]+served["2"] != 1000 {
		t.Errorf("90/10 split served %v over 1,000 requests: %.1f%% version 2, want 10±5", served, share)
	} else {
		t.Logf("90/10 split served %v", served)
	}

	// Autoscale from zero: idle → scaled_to_zero; the next request is held
	// while a replica starts, and answered.
	if code := c.do("PATCH", "/v1/deployments/iris", `{"model": "iris:2", "autoscale": {"min": 0, "max": 2, "target_concurrency": 8, "scale_down_delay_seconds": 1}}`, nil); code != http.StatusOK {
		t.Fatalf("patch to autoscale from zero: %d", code)
	}
	c.waitDeployment("iris", 120*time.Second, "scaled to zero", func(d api.Deployment) bool {
		return d.Status == api.DeploymentScaledToZero && len(d.Replicas) == 0
	})
	began := time.Now()
	if got, err := c.infer(ctx, "iris", ""); err != nil || got.ModelVersion != "2" {
		t.Fatalf("first request after scale to zero: %+v, %v", got, err)
	}
	t.Logf("cold start from zero: first answer after %v", time.Since(began).Round(time.Millisecond))
	c.waitDeployment("iris", 30*time.Second, "scaled back up", func(d api.Deployment) bool { return d.ReadyReplicas >= 1 })

	// Delete: every replica drains and its job ends.
	d, _ = c.deployment("iris")
	if code := c.do("DELETE", "/v1/deployments/iris", "", nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d", code)
	}
	testenv.Eventually(t, 60*time.Second, func() bool { _, code := c.deployment("iris"); return code == http.StatusNotFound },
		"deployment iris was not removed")
	for _, r := range d.Replicas {
		if j := c.waitEnded(r.JobID); j.Status != api.StatusCanceled {
			t.Errorf("replica %s's job %s: %s (%s), want canceled", r.ID, r.JobID, j.Status, j.Reason)
		}
	}
	// The routers drop it when the controller removes it (a wake-up, or
	// their next reload).
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := c.infer(ctx, "iris", "")
		return err != nil && strings.Contains(err.Error(), "infer: 404")
	}, "infer after delete never answered 404")
}
