package placement_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

// TestIdleSchedulerIgnoresBacklog: with a backlog no worker has room for,
// a leading scheduler's ticks read the registry and nothing else — no
// pending job, however many wait — and a submit makes it read the new job
// only. So its cost does not grow with the backlog (counted in commands,
// per tick, not timed).
func TestIdleSchedulerIgnoresBacklog(t *testing.T) {
	const backlog = 1000 // as many as one pass reads
	url := testenv.Redis(t)
	client := func() redis.UniversalClient { return testenv.RedisClient(t, url) }
	rdb, other := client(), client()
	calls := testenv.CountCalls(rdb)
	st, ost := store.New(rdb, store.Config{}), store.New(other, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Now()
	// One worker, full: every job waits for a slot.
	if err := ost.RegisterWorker(ctx, store.Worker{ID: "full", Executor: "podman", Slots: 0, StartedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	newJob := func(i int) *api.Job {
		return &api.Job{ID: fmt.Sprintf("job%05d", i), Workspace: "default", Name: "n", Experiment: "e", Status: api.StatusQueued,
			Reason: "waiting for the scheduler", Attempt: 1, CreatedAt: now.Add(time.Duration(i) * time.Millisecond).UTC(),
			Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer, TimeoutSeconds: 60}}
	}
	for i := range backlog {
		if err := ost.CreateJob(ctx, newJob(i)); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	el := leader.New(leader.Config{ID: "test", Interval: 10 * time.Millisecond}, ost, logger)
	go el.Run(ctx)
	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Hour, Tick: 5 * time.Millisecond}, el, rdb, st,
		asynq.NewClientFromRedisClient(rdb), logger)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	waitsForSlot := func(id string) bool {
		j, err := ost.GetJobByID(ctx, id)
		return err == nil && j.ReasonCode == api.ReasonWaitingForSlot
	}
	// The first pass looks at the whole backlog (the last job is the proof).
	testenv.Eventually(t, 30*time.Second, func() bool { return waitsForSlot(newJob(backlog - 1).ID) }, "the first pass gave the backlog its reason")

	// Idle: count the commands of 50 ticks (one TIME each).
	calls.Reset()
	testenv.Eventually(t, 60*time.Second, func() bool { return calls.Count("TIME") >= 50 }, "50 ticks")
	ticks, cmds, reads := calls.Count("TIME"), calls.CommandCount(), len(calls.Commands("{jobgate}:job:"+newJob(0).ID))
	t.Logf("idle with %d pending jobs: %d commands in %d ticks", backlog, cmds, ticks)
	// A tick: TIME, then the registry (ZRANGE, and HGETALL, SMEMBERS,
	// HGETALL of its one worker), then the pending IDs (one ZRANGE, so
	// that a job whose wake-up was lost is seen); a little slack for ticks
	// counted half.
	if perTick := float64(cmds) / float64(ticks); perTick > 7 || reads > 0 {
		t.Fatalf("idle ticks cost %.1f commands each, and read the oldest pending job %d times; want at most 7 and none", perTick, reads)
	}

	// A submit (high priority: among the first 1000 a pass reads): the
	// new job is read, the backlog is not.
	calls.Reset()
	j := newJob(backlog)
	j.Spec.Priority = api.PriorityHigh
	if err := ost.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := queue.Notify(ctx, other, queue.ChannelScheduler); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return waitsForSlot(j.ID) }, "the new job got its reason")

	// A job whose wake-up was lost (pub/sub drops messages across a
	// reconnect): a tick looks at it all the same.
	lost := newJob(backlog + 1)
	lost.Spec.Priority = api.PriorityHigh
	if err := ost.CreateJob(ctx, lost); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return waitsForSlot(lost.ID) }, "a job submitted without a wake-up was never looked at")
	cancel()
	<-done
	if n, old := len(calls.Commands("{jobgate}:job:"+j.ID)), len(calls.Commands("{jobgate}:job:"+newJob(0).ID)); old > 0 || n == 0 {
		t.Fatalf("after a submit the scheduler sent %d commands about the new job and %d about the oldest; want some and none", n, old)
	}
}
