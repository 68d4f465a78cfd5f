package placement_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

// TestServiceJobTaskDeadline: a service job (a deployment's replica) has no
// timeout; its task gets the long fixed deadline of queue.ServiceDeadline
// (and the worker's grace and the margin), which asynq takes, while a
// batch job's task keeps its timeout's.
func TestServiceJobTaskDeadline(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	now := time.Now()
	const grace = 7 * time.Second
	if err := st.RegisterWorker(ctx, store.Worker{ID: "w", Executor: "podman", Slots: 4, StartedAt: now, StopGrace: grace}, now); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "default"}); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]struct {
		spec api.JobSpec
		want time.Duration
	}{
		"01svc": {spec: api.JobSpec{Mode: api.ModeContainer, Image: "localhost/x:1", Command: []string{"x"},
			Service: &api.Service{Deployment: "iris", Replica: "r1", Revision: 1, Model: "iris", Version: 1}},
			want: queue.RunJobDeadline(queue.ServiceDeadline, grace)},
		"02batch": {spec: api.JobSpec{Mode: api.ModeContainer, Image: "localhost/x:1", Command: []string{"x"}, TimeoutSeconds: 120},
			want: queue.RunJobDeadline(120*time.Second, grace)},
	}
	for id, j := range jobs {
		if err := st.CreateJob(ctx, &api.Job{ID: id, Workspace: "default", Name: id, Experiment: "default", Status: api.StatusQueued,
			Attempt: 1, CreatedAt: now, Spec: j.spec}); err != nil {
			t.Fatal(err)
		}
	}
	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, rdb, st,
		asynq.NewClientFromRedisClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(queue.WorkerQueue("w"))
	if err != nil || len(tasks) != len(jobs) {
		t.Fatalf("pending tasks of w: %d, %v; want %d", len(tasks), err, len(jobs))
	}
	for _, task := range tasks {
		p, err := queue.ParseRunJobPayload(task.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if want := jobs[p.JobID].want; task.Timeout != want {
			t.Errorf("task of %s: deadline %s, want %s", p.JobID, task.Timeout, want)
		}
	}
}
