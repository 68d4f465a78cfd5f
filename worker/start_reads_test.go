package worker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
	"github.com/jobgate/jobgate/worker"
)

// TestAttemptReadsItsJobOnce: from its task to its end, an attempt reads its
// job record once; the start script answers what the worker needs after the
// start (a cancel or preemption asked for meanwhile), so nothing reads the
// record again.
func TestAttemptReadsItsJobOnce(t *testing.T) {
	url := testenv.Redis(t)
	rdb := testenv.RedisClient(t, url)
	st := store.New(rdb, store.Config{})
	// The worker's own client, counted.
	wrdb := testenv.RedisClient(t, url)
	calls := testenv.CountCalls(wrdb)
	wst := store.New(wrdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := processWorker(t, worker.Config{ID: "reads", Slots: 1}, wrdb, wst)
	defer runWorker(t, ctx, w, st)()

	j := place(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/echo", "once"}, TimeoutSeconds: 30}, "reads")
	var got *api.Job
	testenv.Eventually(t, 20*time.Second, func() bool {
		got, _ = st.GetJobByID(ctx, j.ID)
		return got != nil && got.Status.Terminal()
	}, "job did not end")
	if got.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", got.Status, got.Reason)
	}
	key := "{jobgate}:job:" + j.ID
	cmds := calls.Commands(key)
	reads := slices.DeleteFunc(slices.Clone(cmds), func(c string) bool { return c != "HGETALL" && c != "HGET" && c != "HMGET" })
	t.Logf("commands on %s: %v (%d round trips)", key, cmds, calls.TripsTouching(key))
	if len(reads) != 1 {
		t.Fatalf("the attempt read its job record %d times (%v), want once", len(reads), reads)
	}
}

// slowStartAnswer starts attempts through the store, and runs meanwhile
// once, after the first start and before its answer; with lose, that answer
// is lost then (Redis started the attempt, the worker never heard).
type slowStartAnswer struct {
	worker.StartStore
	lose      bool
	once      sync.Once
	meanwhile func(id string)
}

func (l *slowStartAnswer) StartBy(ctx context.Context, ws, id string, attempt int, workerID, instance string, placement int64, now time.Time) (store.Started, error) {
	got, err := l.StartStore.StartBy(ctx, ws, id, attempt, workerID, instance, placement, now)
	first := false
	l.once.Do(func() { first = true })
	if err != nil || !first {
		return got, err
	}
	l.meanwhile(id)
	if l.lose {
		return store.Started{}, errors.New("read tcp 127.0.0.1:6379: connection reset by peer")
	}
	return got, nil
}

// TestCancelRightAfterStartIsSeen: a cancel asked for once the attempt
// runs, before its start's answer is in, stops it: the attempt listens for
// cancels before it starts. When that answer is lost (the attempt runs as
// far as Redis knows), the task's next delivery runs the attempt, and a
// cancel asked for in between, when nothing on the worker listened, still
// stops it: the resumed attempt reads the record.
func TestCancelRightAfterStartIsSeen(t *testing.T) {
	for _, lose := range []bool{false, true} {
		name := "answer late"
		if lose {
			name = "answer lost"
		}
		t.Run(name, func(t *testing.T) {
			rdb := testenv.RedisClient(t, testenv.Redis(t))
			st := store.New(rdb, store.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := processWorker(t, worker.Config{ID: "slow-answer", Slots: 1}, rdb, st)
			published := make(chan struct{})
			worker.SetStartStore(w, &slowStartAnswer{StartStore: st, lose: lose, meanwhile: func(jobID string) {
				defer close(published)
				if res, err := st.Cancel(ctx, "default", jobID, time.Now()); err != nil || res != store.CancelRequested {
					t.Errorf("cancel the started attempt: %v, %v; want it requested", res, err)
				}
				// What the gateway does; wait until the worker's
				// subscription has it, so that it cannot come after the
				// answer.
				sub := rdb.Subscribe(ctx, queue.ChannelCancel)
				defer sub.Close()
				if _, err := sub.Receive(ctx); err != nil {
					t.Error(err)
				}
				// A Cluster node counts only its own subscribers, and the
				// worker's may be on another.
				_, cluster := rdb.(*redis.ClusterClient)
				if n, err := rdb.Publish(ctx, queue.ChannelCancel, jobID).Result(); err != nil || (n < 2 && !cluster) {
					t.Errorf("publish the cancel: %d receivers, %v; want the worker's too", n, err)
				}
				if _, err := sub.ReceiveMessage(ctx); err != nil {
					t.Error(err)
				}
			}})
			defer runWorker(t, ctx, w, st)()

			j := place(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sleep", "60"}, TimeoutSeconds: 120}, "slow-answer")
			<-published
			var got *api.Job
			testenv.Eventually(t, 30*time.Second, func() bool {
				got, _ = st.GetJobByID(ctx, j.ID)
				return got != nil && got.Status.Terminal()
			}, "the job did not end: the cancel was missed")
			if got.Status != api.StatusCanceled || got.Attempt != 1 {
				t.Fatalf("job: %s (%s) attempt %d; want canceled in attempt 1", got.Status, got.Reason, got.Attempt)
			}
		})
	}
}
