package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
)

// TestStoppedWorkerRunningJobIsRecovered: a worker that said it stopped
// while an attempt is still running on it (it could not stop it in time) has
// that attempt requeued too, with a history that says it may still run.
func TestStoppedWorkerRunningJobIsRecovered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := f.st
	now := time.Now()
	if err := st.RegisterWorker(ctx, store.Worker{ID: "quitter", Executor: "podman", Slots: 4, StartedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	var running api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &running)
	_, n, err := st.Reserve(ctx, running.ID, 1, "quitter", "")
	if err != nil {
		t.Fatal(err)
	}
	st.Placed(ctx, DefaultWorkspace, running.ID, 1, "quitter")
	if err := st.Start(ctx, DefaultWorkspace, running.ID, 1, "quitter", n, now); err != nil {
		t.Fatal(err)
	}
	if err := st.StopWorker(ctx, "quitter"); err != nil {
		t.Fatal(err)
	}
	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, f.st.Redis(), st,
		asynq.NewClientFromRedisClient(f.st.Redis()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := st.GetJobByID(ctx, running.ID)
	hist, _ := st.Attempts(ctx, running.ID)
	if r.Status != api.StatusQueued || r.Attempt != 2 || len(hist) != 1 || !strings.HasPrefix(hist[0].Reason, api.ReasonWorkerStopped) ||
		!strings.Contains(hist[0].Note, "may still be running") {
		t.Fatalf("running job of a stopped worker: %s attempt %d, history %+v; want queued attempt 2, attempt 1 worker_stopped and may still be running",
			r.Status, r.Attempt, hist)
	}
}

// TestLostWorkerJobsAreRecovered: a worker that stops heartbeating is marked
// lost; its running job is requeued as a new attempt and its placed but not
// started job goes back to the pending set, with their GPUs freed.
func TestLostWorkerJobsAreRecovered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := f.st
	long := time.Now().Add(-time.Hour)
	ghost := store.Worker{ID: "ghost", Executor: "podman", Slots: 4, StartedAt: long,
		GPUs: []store.WorkerGPU{{Index: 0, Model: "sim"}, {Index: 1, Model: "sim"}}}
	if err := st.RegisterWorker(ctx, ghost, long); err != nil {
		t.Fatal(err)
	}
	var running, placed api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &running)
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &placed)
	_, n, err := st.Reserve(ctx, running.ID, 1, "ghost", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Placed(ctx, DefaultWorkspace, running.ID, 1, "ghost")
	if err := st.Start(ctx, DefaultWorkspace, running.ID, 1, "ghost", n, long); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Reserve(ctx, placed.ID, 1, "ghost", "", 1); err != nil {
		t.Fatal(err)
	}
	st.Placed(ctx, DefaultWorkspace, placed.ID, 1, "ghost")

	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, f.st.Redis(), st,
		asynq.NewClientFromRedisClient(f.st.Redis()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := st.GetJobByID(ctx, running.ID)
	hist, _ := st.Attempts(ctx, running.ID)
	if r.Status != api.StatusQueued || r.Attempt != 2 || len(hist) != 1 || !strings.HasPrefix(hist[0].Reason, api.ReasonWorkerLost) {
		t.Fatalf("running job of a lost worker: %s attempt %d, history %+v; want queued attempt 2, attempt 1 worker_lost", r.Status, r.Attempt, hist)
	}
	// It now says why it waits: no live worker.
	if !strings.Contains(r.Reason, "waiting for a worker") {
		t.Fatalf("reason %q", r.Reason)
	}
	p, _ := st.GetJobByID(ctx, placed.ID)
	if p.Status != api.StatusQueued || p.Attempt != 1 || st.PendingPosition(ctx, placed.ID) < 0 {
		t.Fatalf("placed job of a lost worker: %s attempt %d, pending at %d", p.Status, p.Attempt, st.PendingPosition(ctx, placed.ID))
	}
	ws, _ := st.Workers(ctx)
	for _, g := range ws[0].GPUs {
		if g.JobID != "" {
			t.Fatalf("GPU %d still held by %s", g.Index, g.JobID)
		}
	}
	if len(ws[0].Jobs) != 0 {
		t.Fatalf("lost worker still holds jobs %v", ws[0].Jobs)
	}
}
