package worker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func lifeStore(t *testing.T) (*redis.Client, *store.Store) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb, store.New(rdb, store.Config{})
}

// runningJob makes a job whose attempt 1 runs on workerID, started by
// instance, as the scheduler and that worker process would.
func runningJob(t *testing.T, ctx context.Context, st *store.Store, workerID, instance string) *api.Job {
	t.Helper()
	j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "t", Experiment: "default",
		Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
		Spec: api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/true"}, TimeoutSeconds: 60}}
	if err := st.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	_, n, err := st.Reserve(ctx, j.ID, 1, workerID, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Placed(ctx, j.ID, 1, workerID); err != nil {
		t.Fatal(err)
	}
	if err := st.StartBy(ctx, j.Workspace, j.ID, 1, workerID, instance, n, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetJobByID(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestHeartbeatsUseRedisClock: a worker whose clock is an hour behind
// still heartbeats at Redis's time, the clock the scheduler reads: a
// skewed clock does not make a worker look lost (or alive) for good.
func TestHeartbeatsUseRedisClock(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb, st := lifeStore(t)
	w := New(Config{ID: "skewed", SpoolDir: t.TempDir(), HeartbeatInterval: 50 * time.Millisecond},
		rdb, st, artifact.Dir{Root: t.TempDir()}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.now = func() time.Time { return time.Now().Add(-time.Hour) }
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var beat time.Time
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		if len(ws) != 1 {
			return false
		}
		beat = ws[0].LastHeartbeat
		return true
	}, "the worker did not register")
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := now.Sub(beat); d < -time.Minute || d > time.Minute {
		t.Fatalf("last heartbeat %s, Redis's clock %s: %s apart; want stamped by Redis", beat, now, d.Round(time.Second))
	}
}
