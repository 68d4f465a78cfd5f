package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

type jobWithHistory struct {
	api.Job
	Attempts []store.AttemptRecord `json:"attempts"`
}

func (c *cluster) history(id string) jobWithHistory {
	c.t.Helper()
	var j jobWithHistory
	if code := c.do("GET", "/v1/jobs/"+id, "", &j); code != http.StatusOK {
		c.t.Fatalf("get %s: %d", id, code)
	}
	return j
}

func gpuJob(n int, script string) api.JobSpec {
	return api.JobSpec{Mode: api.ModeProcess, Resources: api.Resources{GPUs: n}, Command: []string{"/bin/sh", "-c", script}}
}

// TestGPUsAreNeverShared: 3 one-GPU jobs on 2 GPUs never run 3 at once, and
// jobs that run together hold different GPUs and see only their own.
func TestGPUsAreNeverShared(t *testing.T) {
	c := newCluster(t)
	c.startWorker("g1", "--simulate-gpus", "2:H100")
	var ids []string
	for range 3 {
		ids = append(ids, c.submit(gpuJob(1, `echo "gpu=$CUDA_VISIBLE_DEVICES nv=$NVIDIA_VISIBLE_DEVICES"; sleep 0.6`)).ID)
	}
	// A container job sees its GPU too (simulated: variables, no device).
	ctr := c.submit(api.JobSpec{Resources: api.Resources{GPUs: 1, GPUModel: "h100"}, Command: toolbox("env", "CUDA_VISIBLE_DEVICES")})
	ids = append(ids, ctr.ID)
	testenv.Eventually(t, 60*time.Second, func() bool {
		ended := 0
		for _, id := range ids {
			if c.get(id).Status.Terminal() {
				ended++
			}
		}
		return ended == len(ids)
	}, "GPU jobs did not all end")
	// Who held which GPU when, from each job's recorded attempt: jobs read
	// one after the other are no snapshot (one may end and the next start
	// on its GPU between two reads).
	type span struct {
		id         string
		gpu        int
		start, end time.Time
	}
	var spans []span
	for _, id := range ids {
		h := c.history(id)
		if len(h.Attempts) != 1 || h.Attempts[0].StartedAt == nil || len(h.GPUs) != 1 {
			t.Fatalf("job %s: %d attempts, gpus %v; want one attempt on one GPU", id, len(h.Attempts), h.GPUs)
		}
		spans = append(spans, span{id, h.GPUs[0], *h.Attempts[0].StartedAt, h.Attempts[0].FinishedAt})
	}
	for _, a := range spans {
		for _, b := range spans {
			if a.id < b.id && a.gpu == b.gpu && a.start.Before(b.end) && b.start.Before(a.end) {
				t.Fatalf("GPU %d given to %s and %s at once", a.gpu, a.id, b.id)
			}
		}
	}
	// How many ran at once: an end sorts before a start at the same instant.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, sp := range spans {
		edges = append(edges, edge{sp.start, 1}, edge{sp.end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), a.delta-b.delta) })
	running, maxTogether := 0, 0
	for _, e := range edges {
		running += e.delta
		maxTogether = max(maxTogether, running)
	}
	if maxTogether > 2 {
		t.Fatalf("%d one-GPU jobs ran at once on 2 GPUs", maxTogether)
	}
	for _, id := range ids {
		j := c.get(id)
		if j.Status != api.StatusSucceeded || len(j.GPUs) != 1 {
			t.Fatalf("job %s: %s (%s), gpus %v", id, j.Status, j.Reason, j.GPUs)
		}
		want := fmt.Sprintf("gpu=%d nv=%d\n", j.GPUs[0], j.GPUs[0])
		if id == ctr.ID {
			want = fmt.Sprintf("%d\n", j.GPUs[0])
		}
		if got := c.logs(id); got != want {
			t.Fatalf("job %s saw %q, want %q", id, got, want)
		}
	}
	// The registry shows the simulated GPUs, free again.
	var reg struct {
		Workers []store.Worker `json:"workers"`
	}
	c.do("GET", "/v1/workers", "", &reg)
	if len(reg.Workers) != 1 || len(reg.Workers[0].GPUs) != 2 || !reg.Workers[0].GPUs[0].Simulated || reg.Workers[0].GPUs[1].JobID != "" {
		t.Fatalf("workers: %+v", reg.Workers)
	}
	// A job that asked for no GPU sees none.
	none := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", `echo "[$CUDA_VISIBLE_DEVICES]"`}}).ID)
	if got := c.logs(none.ID); got != "[]\n" {
		t.Fatalf("GPU-less job sees %q", got)
	}
}

func TestUnsatisfiableGPURequestsAreRefused(t *testing.T) {
	c := newCluster(t)
	c.startWorker("g1", "--simulate-gpus", "2:H100")
	tests := []struct {
		name     string
		res      api.Resources
		mentions string
	}{
		{"too many", api.Resources{GPUs: 3}, "needs 3 GPUs on one worker; workers have g1: 2×"},
		{"wrong model", api.Resources{GPUs: 1, GPUModel: "A100"}, "needs 1 GPU A100"},
		{"too little memory", api.Resources{GPUs: 1, GPUMemoryMB: 200_000}, "with >= 200000 MB"},
	}
	for _, tt := range tests {
		spec := gpuJob(tt.res.GPUs, "true")
		spec.Resources = tt.res
		_, err := c.api.Submit(context.Background(), spec, "")
		var ce *client.Error
		if !asClientError(err, &ce) || ce.StatusCode != 422 || !strings.Contains(ce.Message, tt.mentions) {
			t.Errorf("%s: %v; want 422 mentioning %q", tt.name, err, tt.mentions)
		}
	}
}

// TestHighPriorityPreemptsLow: a high job waiting for the GPU of a low one
// gets it; the low one is stopped, requeued with reason preempted, and later
// finishes, resuming from its checkpoint folder.
func TestHighPriorityPreemptsLow(t *testing.T) {
	c := newCluster(t)
	c.startWorker("g1", "--simulate-gpus", "1")
	low := gpuJob(1, `trap 'echo got TERM; exit 143' TERM
echo "attempt $JOBGATE_ATTEMPT"
if [ -f "$JOBGATE_CHECKPOINT_DIR/state" ]; then echo "resumed from $(cat "$JOBGATE_CHECKPOINT_DIR/state")"; exit 0; fi
echo step-41 > "$JOBGATE_CHECKPOINT_DIR/state"
while true; do sleep 0.1; done`)
	low.Priority = api.PriorityLow
	lj := c.submit(low)
	c.waitFor(lj.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.logs(lj.ID), "attempt 1") }, "low job never printed")

	high := gpuJob(1, `echo high ran`)
	high.Priority = api.PriorityHigh
	hj := c.submit(high)
	if done := c.waitEnded(hj.ID); done.Status != api.StatusSucceeded {
		t.Fatalf("high job: %s (%s)", done.Status, done.Reason)
	}
	lowDone := c.waitEnded(lj.ID)
	if lowDone.Status != api.StatusSucceeded || lowDone.Attempt != 2 {
		t.Fatalf("low job: %s (%s) attempt %d; want succeeded on attempt 2", lowDone.Status, lowDone.Reason, lowDone.Attempt)
	}
	h := c.history(lj.ID)
	if len(h.Attempts) < 2 || !strings.HasPrefix(h.Attempts[0].Reason, "preempted") || !strings.Contains(h.Attempts[0].Reason, hj.ID) {
		t.Fatalf("low job's history: %+v; want attempt 1 preempted by %s", h.Attempts, hj.ID)
	}
	logs := c.logs(lj.ID)
	for _, want := range []string{"attempt 1", "got TERM", "attempt 2", "resumed from step-41"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("low job's log %q lacks %q", logs, want)
		}
	}
}

func TestGPUQuotaHoldsJobs(t *testing.T) {
	c := newCluster(t)
	c.startWorker("g1", "--simulate-gpus", "2")
	tc := c.asToken(c.workspaceAdmin("team-g", api.Quotas{MaxGPUs: 1}))
	var ids []string
	for range 2 {
		ids = append(ids, tc.submit(gpuJob(1, "sleep 0.5; echo ok")).ID)
	}
	sawReason := tc.runUnderQuota(ids, 1, "workspace quota: 1 of 1 GPUs in use")
	for _, id := range ids {
		if j := tc.get(id); j.Status != api.StatusSucceeded {
			t.Fatalf("job %s: %s (%s)", id, j.Status, j.Reason)
		}
	}
	if !sawReason {
		t.Fatal("no job said it waits for the GPU quota")
	}
}

// TestTwoOneGPUWorkersBothBusy: a queue of one-GPU jobs keeps both workers
// working at the same time; no worker sits on a job it cannot start.
func TestTwoOneGPUWorkersBothBusy(t *testing.T) {
	c := newCluster(t)
	c.startWorker("a", "--simulate-gpus", "1")
	c.startWorker("b", "--simulate-gpus", "1")
	var ids []string
	for range 6 {
		ids = append(ids, c.submit(gpuJob(1, "sleep 0.4")).ID)
	}
	both := false
	testenv.Eventually(t, 60*time.Second, func() bool {
		on := map[string]bool{}
		ended := 0
		for _, id := range ids {
			j := c.get(id)
			if j.Status == api.StatusRunning {
				on[j.Worker] = true
			}
			if j.Status.Terminal() {
				ended++
			}
		}
		both = both || (on["a"] && on["b"])
		return ended == len(ids)
	}, "jobs did not all end")
	if !both {
		t.Fatal("the two one-GPU workers never ran jobs at the same time")
	}
	workers := map[string]int{}
	for _, id := range ids {
		j := c.get(id)
		if j.Status != api.StatusSucceeded {
			t.Fatalf("job %s: %s (%s)", id, j.Status, j.Reason)
		}
		workers[j.Worker]++
	}
	if len(workers) != 2 || slices.Contains([]int{workers["a"], workers["b"]}, 0) {
		t.Fatalf("jobs per worker: %v", workers)
	}
}

func asClientError(err error, target **client.Error) bool { return errors.As(err, target) }

// TestGPUTelemetry: while a GPU job runs, its GPUs' utilization and memory
// are sampled into its metrics and into the worker registry.
func TestGPUTelemetry(t *testing.T) {
	c := newCluster(t)
	c.startWorker("g1", "--simulate-gpus", "2", "--gpu-sample-every", "50ms")
	j := c.submit(gpuJob(2, "sleep 1"))
	done := c.waitEnded(j.ID)
	if done.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", done.Status, done.Reason)
	}
	var m api.JobMetrics
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/metrics", "", &m); code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	for _, name := range []string{"gpu_utilization", "gpu_memory_used_mb"} {
		if len(m.Metrics[name]) < 2 {
			t.Fatalf("%s has %d samples over a 1 s job sampled every 50 ms: %+v", name, len(m.Metrics[name]), m.Metrics)
		}
	}
	var reg struct {
		Workers []store.Worker `json:"workers"`
	}
	c.do("GET", "/v1/workers", "", &reg)
	if g := reg.Workers[0].GPUs[0]; g.UtilizationPct == nil || g.MemoryUsedMB == nil {
		t.Fatalf("worker GPU shows no usage: %+v", g)
	}
}
