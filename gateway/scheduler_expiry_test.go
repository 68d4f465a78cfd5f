package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestLostWorkerRecoveredAtItsExpiry: the running scheduler recovers the job
// of a worker that fell silent when the silence reaches WorkerLostAfter, not
// at its next Tick (an hour here) nor when something happens to wake it:
// nothing does here. Before, a lost worker's job waited for the tick after
// the expiry.
func TestLostWorkerRecoveredAtItsExpiry(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := f.st
	now, err := st.Time(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterWorker(ctx, store.Worker{ID: "silent", Executor: "podman", Slots: 4, StartedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	var running api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &running)
	_, n, err := st.Reserve(ctx, running.ID, 1, "silent", "")
	if err != nil {
		t.Fatal(err)
	}
	st.Placed(ctx, DefaultWorkspace, running.ID, 1, "silent")
	if err := st.Start(ctx, DefaultWorkspace, running.ID, 1, "silent", n, now); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	el := leader.New(leader.Config{ID: "expiry", TTL: 5 * time.Second, Interval: 100 * time.Millisecond}, st, logger)
	go el.Run(ctx)
	testenv.Eventually(t, 10*time.Second, el.Leading, "the elector did not lead")
	s := placement.New(placement.Config{ID: "expiry", WorkerLostAfter: 2 * time.Second, Tick: time.Hour}, el, f.st.Redis(), st,
		asynq.NewClientFromRedisClient(f.st.Redis()), logger)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testenv.Eventually(t, 20*time.Second, func() bool {
		j, err := st.GetJobByID(ctx, running.ID)
		return err == nil && j.Attempt == 2
	}, "the silent worker's job was not recovered")
	hist, _ := st.Attempts(ctx, running.ID)
	if len(hist) != 1 || hist[0].ReasonCode != api.ReasonWorkerLost {
		t.Fatalf("history %+v; want attempt 1 worker_lost", hist)
	}
}
