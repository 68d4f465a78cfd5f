package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func lifeStore(t *testing.T) (redis.UniversalClient, *store.Store) {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
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
	if err := st.Placed(ctx, j.Workspace, j.ID, 1, workerID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartBy(ctx, j.Workspace, j.ID, 1, workerID, instance, n, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetJobByID(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// faultyEnds is the store, for recording attempts' ends, with faults:
// fail says what the n-th call (from 1) fails with, nil for none.
type faultyEnds struct {
	endStore
	// mu guards the fields below.
	mu    sync.Mutex
	calls int
	fail  func(n int) error
}

func (f *faultyEnds) fault() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.fail(f.calls)
}

func (f *faultyEnds) setFail(fail func(int) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *faultyEnds) Finish(ctx context.Context, ws, id string, attempt int, o store.Outcome, now time.Time) error {
	if err := f.fault(); err != nil {
		return err
	}
	return f.endStore.Finish(ctx, ws, id, attempt, o, now)
}

func (f *faultyEnds) Requeue(ctx context.Context, ws, id string, attempt int, o store.Outcome, now time.Time) error {
	if err := f.fault(); err != nil {
		return err
	}
	return f.endStore.Requeue(ctx, ws, id, attempt, o, now)
}

// errBusy is what Redis answers while a script runs too long.
var errBusy = errors.New("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.")

// TestRecordEndWhateverTheError: an attempt's end is recorded through any
// error that may pass, not only a Redis that does not answer; one the store
// will never take (the job is gone) is dropped; and one that record gave up
// on is recorded by a later heartbeat, since no other delivery of its task
// may ever come (asynq gave up on it during an outage and acked the
// redelivery, which found the attempt held).
func TestRecordEndWhateverTheError(t *testing.T) {
	tests := []struct {
		name string
		fail func(n int) error
		// clearAfterFinish: the fault ends only once finish returned.
		clearAfterFinish bool
		wantFinishErr    bool
		want             api.Status
	}{
		{name: "busy for a while", fail: func(n int) error {
			if n <= 3 {
				return errBusy
			}
			return nil
		}, want: api.StatusSucceeded},
		{name: "job gone", fail: func(int) error { return store.ErrNotFound }, want: api.StatusRunning},
		{name: "record gives up, a heartbeat records", fail: func(int) error { return errBusy }, clearAfterFinish: true,
			wantFinishErr: true, want: api.StatusSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, st := lifeStore(t)
			w := New(Config{ID: "rec", SpoolDir: t.TempDir(), HeartbeatInterval: 50 * time.Millisecond, RecordRetryFor: 2 * time.Second},
				st.Redis(), st, artifact.Dir{Root: t.TempDir()}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			ends := &faultyEnds{endStore: st, fail: tt.fail}
			w.ends = ends
			job := runningJob(t, ctx, st, "rec", w.instance)
			w.hold(job.ID, 1)
			zero := 0
			err := w.finish(ctx, job, store.Outcome{Status: api.StatusSucceeded, ExitCode: &zero, Worker: "rec"})
			if (err != nil) != tt.wantFinishErr {
				t.Fatalf("finish: %v; want an error: %v", err, tt.wantFinishErr)
			}
			if tt.clearAfterFinish {
				ends.setFail(func(int) error { return nil })
				hb, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); w.heartbeat(hb) }()
				defer func() { stop(); <-done }()
			}
			testenv.Eventually(t, 10*time.Second, func() bool {
				held, _ := w.holding(job.ID, 1)
				_, statErr := os.Stat(w.endFile(job.ID, 1))
				return !held && os.IsNotExist(statErr)
			}, "the end is still held, or its file still there")
			got, err := st.GetJobByID(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want || got.Attempt != 1 {
				t.Fatalf("job: %s attempt %d; want %s attempt 1", got.Status, got.Attempt, tt.want)
			}
		})
	}
}

// TestRecoverOwnKeepsSavedEnd: an earlier life of the worker saved how an
// attempt ended but could not record it, and the store does not take it at
// the next start either: the attempt is not requeued as lost, and its end
// is recorded once the store takes it.
func TestRecoverOwnKeepsSavedEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, st := lifeStore(t)
	if err := st.RegisterWorker(ctx, store.Worker{ID: "keeper", Executor: "none", Slots: 1, StartedAt: time.Now()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	job := runningJob(t, ctx, st, "keeper", "earlier-life")
	w := New(Config{ID: "keeper", SpoolDir: t.TempDir(), HeartbeatInterval: 50 * time.Millisecond},
		st.Redis(), st, artifact.Dir{Root: t.TempDir()}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.ends = &faultyEnds{endStore: st, fail: func(n int) error {
		if n == 1 {
			return errBusy
		}
		return nil
	}}
	zero := 0
	b, _ := json.Marshal(attemptEnd{Workspace: job.Workspace, JobID: job.ID, Attempt: 1,
		Outcome: store.Outcome{Status: api.StatusSucceeded, ExitCode: &zero, Worker: "keeper", StartedAt: job.StartedAt}, At: time.Now()})
	if err := os.MkdirAll(w.endsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.endFile(job.ID, 1), b, 0o600); err != nil {
		t.Fatal(err)
	}

	w.recordSavedEnds(ctx)
	w.recoverOwn(ctx)
	if got, _ := st.GetJobByID(ctx, job.ID); got.Status != api.StatusRunning || got.Attempt != 1 {
		t.Fatalf("after recoverOwn the job is %s (%s) attempt %d; want still running attempt 1, its end saved", got.Status, got.Reason, got.Attempt)
	}
	hb, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.heartbeat(hb) }()
	defer func() { stop(); <-done }()
	var got *api.Job
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, _ = st.GetJobByID(ctx, job.ID)
		return got != nil && got.Status.Terminal()
	}, "the saved end was never recorded")
	hist, _ := st.Attempts(ctx, job.ID)
	if got.Status != api.StatusSucceeded || got.Attempt != 1 || len(hist) != 1 {
		t.Fatalf("job: %s (%s) attempt %d, history %+v; want succeeded on attempt 1", got.Status, got.Reason, got.Attempt, hist)
	}
	if _, err := os.Stat(w.endFile(job.ID, 1)); !os.IsNotExist(err) {
		t.Fatalf("the end's file is left: %v", err)
	}
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
