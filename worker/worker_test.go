package worker_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
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

// place does what the scheduler does, through the queue contract.
func place(t *testing.T, ctx context.Context, rdb redis.UniversalClient, st *store.Store, spec api.JobSpec, workerID string) *api.Job {
	t.Helper()
	// The workspace record the gateway would have made; mode process needs
	// its grant (the worker checks it).
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "default", AllowHostProcess: true}); err != nil {
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
	task, err := queue.NewRunJobTask(queue.RunJobPayload{JobID: j.ID, Attempt: 1, Placement: n}, time.Minute)
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

// TestIdleWorkerIsWokenNotPolled gives the worker an idle wait of an hour:
// asynq's own poll would not look again for that long, so a job placed after
// the worker went idle only runs if the wake-up reaches the dequeue.
func TestIdleWorkerIsWokenNotPolled(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := worker.New(worker.Config{ID: "idle", Slots: 1, AllowHostProcess: true, IdleWait: time.Hour, SpoolDir: t.TempDir()},
		rdb, st, artifact.Dir{Root: t.TempDir()},
		map[api.Mode]worker.Executor{api.ModeProcess: worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir()}, slog.Default())},
		nil, slog.Default())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Let the worker go idle: it registered and has looked at its empty queue.
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1
	}, "worker did not register")
	for i := range 3 {
		j := place(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/echo", "woken", string(rune('a' + i))}, TimeoutSeconds: 30}, "idle")
		var got *api.Job
		testenv.Eventually(t, 20*time.Second, func() bool {
			got, _ = st.GetJobByID(ctx, j.ID)
			return got != nil && got.Status.Terminal()
		}, "job %d was not picked up: the idle worker did not wake", i)
		if got.Status != api.StatusSucceeded {
			t.Fatalf("job %d: %s (%s)", i, got.Status, got.Reason)
		}
	}
}

// TestWorkerRefusesHostProcessWithoutWorkspaceGrant: a worker that runs
// host processes still fails a process job whose workspace lacks
// allow_host_process (taken back after submit, say) with mode_not_allowed,
// without running it.
func TestWorkerRefusesHostProcessWithoutWorkspaceGrant(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "default"}); err != nil { // no grant
		t.Fatal(err)
	}
	w := worker.New(worker.Config{ID: "hp", Slots: 1, AllowHostProcess: true, SpoolDir: t.TempDir()},
		rdb, st, artifact.Dir{Root: t.TempDir()},
		map[api.Mode]worker.Executor{api.ModeProcess: worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir()}, slog.Default())},
		nil, slog.Default())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	marker := t.TempDir() + "/ran"
	run := func() *api.Job {
		t.Helper()
		j := place(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "touch " + marker}, TimeoutSeconds: 30}, "hp")
		var got *api.Job
		testenv.Eventually(t, 20*time.Second, func() bool {
			got, _ = st.GetJobByID(ctx, j.ID)
			return got != nil && got.Status.Terminal()
		}, "job %s did not end", j.ID)
		return got
	}
	got := run()
	if got.Status != api.StatusFailed || !strings.HasPrefix(got.Reason, api.ReasonModeRefused+": workspace default") {
		t.Fatalf("process job without the grant: %s (%s), want failed with %s", got.Status, got.Reason, api.ReasonModeRefused)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused job ran")
	}
	if _, err := st.SetWorkspaceHostProcess(ctx, "default", true); err != nil {
		t.Fatal(err)
	}
	if got := run(); got.Status != api.StatusSucceeded {
		t.Fatalf("process job with the grant: %s (%s)", got.Status, got.Reason)
	}
}

// processWorker is a worker over rdb and st that runs host-process jobs
// (cfg.AllowHostProcess and a spool folder are set for it).
func processWorker(t *testing.T, cfg worker.Config, rdb redis.UniversalClient, st *store.Store) *worker.Worker {
	t.Helper()
	cfg.AllowHostProcess, cfg.SpoolDir = true, t.TempDir()
	return worker.New(cfg, rdb, st, artifact.Dir{Root: t.TempDir()},
		map[api.Mode]worker.Executor{api.ModeProcess: worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir()}, slog.Default())},
		nil, slog.Default())
}

// runWorker runs w until stop, which ends ctx's worker and waits for Run to
// return, and waits until w registered.
func runWorker(t *testing.T, ctx context.Context, w *worker.Worker, st *store.Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = func() { cancel(); <-done }
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1
	}, "worker did not register")
	return stop
}
