package worker_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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

// graceExecutor records the stop grace of the attempts it is given.
type graceExecutor struct {
	mu    sync.Mutex
	grace map[string]time.Duration
}

var _ worker.Executor = (*graceExecutor)(nil)

func (e *graceExecutor) Run(_ context.Context, a worker.Attempt, _, _ io.Writer) (worker.Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.grace[a.JobID] = a.StopGrace
	return worker.Outcome{}, nil
}

func (e *graceExecutor) Cleanup(context.Context, string) error { return nil }
func (e *graceExecutor) Name() string                          { return "grace" }

func (e *graceExecutor) of(id string) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, ok := e.grace[id]
	return g, ok
}

// TestWorkerStopsWithTheTasksGrace: the worker registers its stop grace,
// and stops a workload with the grace its task carries (the one the task's
// deadline was computed with), its own only for a task without one.
func TestWorkerStopsWithTheTasksGrace(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exec := &graceExecutor{grace: map[string]time.Duration{}}
	w := worker.New(worker.Config{ID: "graceful", Slots: 1, StopGrace: 3 * time.Second, SpoolDir: t.TempDir(), CheckpointDir: t.TempDir()},
		rdb, st, artifact.Dir{Root: t.TempDir()}, map[api.Mode]worker.Executor{api.ModeContainer: exec}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var reg store.Worker
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		if len(ws) == 1 {
			reg = ws[0]
		}
		return len(ws) == 1
	}, "worker did not register")
	if reg.StopGrace != 3*time.Second {
		t.Fatalf("registered stop grace %s, want the worker's 3s", reg.StopGrace)
	}

	tests := []struct {
		name      string
		taskGrace time.Duration
		want      time.Duration
	}{
		{name: "task with a grace", taskGrace: 45 * time.Second, want: 45 * time.Second},
		{name: "task without one", taskGrace: 0, want: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := placeWithGrace(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeContainer, Image: "localhost/x:1", Command: []string{"x"}, TimeoutSeconds: 30}, "graceful", tt.taskGrace)
			var got time.Duration
			testenv.Eventually(t, 20*time.Second, func() bool {
				var ok bool
				got, ok = exec.of(j.ID)
				return ok
			}, "job %s did not run", j.ID)
			if got != tt.want {
				t.Fatalf("attempt's stop grace %s, want %s", got, tt.want)
			}
		})
	}
}

// placeWithGrace is place with the task carrying grace.
func placeWithGrace(t *testing.T, ctx context.Context, rdb redis.UniversalClient, st *store.Store, spec api.JobSpec, workerID string, grace time.Duration) *api.Job {
	t.Helper()
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "default"}); err != nil {
		t.Fatal(err)
	}
	j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "t", Experiment: "default",
		Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(), Spec: spec}
	if err := st.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	_, n, err := st.Reserve(ctx, j.ID, 1, workerID, "")
	if err != nil {
		t.Fatal(err)
	}
	p := queue.RunJobPayload{JobID: j.ID, Attempt: 1, Placement: n, StopGrace: grace}
	task, err := queue.NewRunJobTask(p, queue.RunJobDeadline(time.Duration(spec.TimeoutSeconds)*time.Second, grace))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, task, asynq.Queue(queue.WorkerQueue(workerID))); err != nil {
		t.Fatal(err)
	}
	if err := st.Placed(ctx, j.Workspace, j.ID, 1, workerID); err != nil {
		t.Fatal(err)
	}
	if err := queue.Notify(ctx, rdb, queue.WorkerChannel(workerID)); err != nil {
		t.Fatal(err)
	}
	return j
}
