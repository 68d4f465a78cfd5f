package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	return store.New(rdb, store.Config{})
}

func newJob(t *testing.T, s *store.Store, mutate ...func(*api.Job)) *api.Job {
	t.Helper()
	j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "n", Experiment: "e",
		Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
		Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer, TimeoutSeconds: 60}}
	for _, m := range mutate {
		m(j)
	}
	if err := s.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

func start(t *testing.T, s *store.Store, j *api.Job, attempt int, worker string) {
	t.Helper()
	ctx := context.Background()
	w, n, err := s.Reserve(ctx, j.ID, attempt, worker, "")
	if err != nil || w != worker {
		t.Fatalf("reserve: %s, %v", w, err)
	}
	if err := s.Placed(ctx, j.Workspace, j.ID, attempt, worker); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, j.Workspace, j.ID, attempt, worker, n, time.Now()); err != nil {
		t.Fatalf("start: %v", err)
	}
}

func TestJobEndsExactlyOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)
	start(t, s, j, 1, "w1")

	statuses := []api.Status{api.StatusSucceeded, api.StatusFailed, api.StatusCanceled}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Finish(ctx, j.Workspace, j.ID, 1, store.Outcome{Status: statuses[i%3]}, time.Now())
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("finish: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d finishes took effect, want exactly 1", wins)
	}
	hist, err := s.Attempts(ctx, j.ID)
	if err != nil || len(hist) != 1 {
		t.Fatalf("history: %+v, %v; want one record", hist, err)
	}
	entries, err := s.ReadLogs(ctx, j.ID, "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	ends := 0
	for _, e := range entries {
		if e.End != "" {
			ends++
		}
	}
	if ends != 1 {
		t.Fatalf("%d end markers in the log stream, want 1", ends)
	}
	// An ended job cannot be requeued or canceled.
	if err := s.Requeue(ctx, j.Workspace, j.ID, 1, store.Outcome{Status: api.StatusFailed}, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("requeue of ended job: %v, want ErrConflict", err)
	}
	if res, err := s.Cancel(ctx, j.Workspace, j.ID, time.Now()); err != nil || res != store.CancelAlreadyEnded {
		t.Fatalf("cancel of ended job: %v, %v", res, err)
	}
}

func TestStalePlacementsAndAttemptsAreRefused(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)

	_, first, err := s.Reserve(ctx, j.ID, 1, "w1", "")
	if err != nil {
		t.Fatal(err)
	}
	// A second reservation returns the first.
	if w, n, err := s.Reserve(ctx, j.ID, 1, "w2", ""); err != nil || w != "w1" || n != first {
		t.Fatalf("second reserve: %s %d %v; want w1 %d", w, n, err, first)
	}
	// The worker left: the job goes back and is placed again under a new number.
	if err := s.Unreserve(ctx, j, "w1", "gone"); err != nil {
		t.Fatal(err)
	}
	_, second, err := s.Reserve(ctx, j.ID, 1, "w1", "")
	if err != nil || second == first {
		t.Fatalf("re-reserve: %d, %v; want a new placement number", second, err)
	}
	if err := s.Start(ctx, j.Workspace, j.ID, 1, "w1", first, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("start with a stale placement: %v, want ErrConflict", err)
	}
	if err := s.Start(ctx, j.Workspace, j.ID, 1, "w1", second, time.Now()); err != nil {
		t.Fatalf("start: %v", err)
	}
	// Requeue makes attempt 2; attempt 1 can no longer end the job.
	if err := s.Requeue(ctx, j.Workspace, j.ID, 1, store.Outcome{Status: api.StatusFailed, Reason: "exit_code: 1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetJobByID(ctx, j.ID)
	if got.Status != api.StatusQueued || got.Attempt != 2 {
		t.Fatalf("after requeue: %s attempt %d; want queued attempt 2", got.Status, got.Attempt)
	}
	if err := s.Finish(ctx, j.Workspace, j.ID, 1, store.Outcome{Status: api.StatusSucceeded}, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finish of attempt 1 after requeue: %v, want ErrConflict", err)
	}
	if pos := s.PendingPosition(ctx, j.ID); pos != 0 {
		t.Fatalf("requeued job at pending position %d, want 0", pos)
	}
}

// TestStartBeforePlacedKeepsTheJobOnItsWorker: the worker may take a task
// off its queue before the scheduler's Placed runs. The started job must
// still be on the worker's list (what recovery walks when the worker is
// lost), out of the pending set and counted against its workspace; the
// late Placed then changes nothing. Before the fix such a job was on no
// worker's list, and a worker killed under it left it running for ever.
func TestStartBeforePlacedKeepsTheJobOnItsWorker(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.RegisterWorker(ctx, store.Worker{ID: "w1", Slots: 2}, time.Now()); err != nil {
		t.Fatal(err)
	}
	j := newJob(t, s)
	_, n, err := s.Reserve(ctx, j.ID, 1, "w1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, j.Workspace, j.ID, 1, "w1", n, time.Now()); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := s.Placed(ctx, j.Workspace, j.ID, 1, "w1"); err != nil {
		t.Fatalf("placed after start: %v", err)
	}
	check := func(when string) {
		t.Helper()
		workers, err := s.Workers(ctx)
		if err != nil || len(workers) != 1 {
			t.Fatalf("%s: workers %+v, %v", when, workers, err)
		}
		if got := workers[0].Jobs; len(got) != 1 || got[0] != j.ID {
			t.Errorf("%s: w1's jobs %v, want [%s]", when, got, j.ID)
		}
		if ids, _ := s.Pending(ctx, 10); len(ids) != 0 {
			t.Errorf("%s: pending %v, want none", when, ids)
		}
		if jobs, _, _ := s.RunningUse(ctx, j.Workspace); jobs != 1 {
			t.Errorf("%s: workspace running %d, want 1", when, jobs)
		}
	}
	check("started before placed")
	// The usual order counts it once too.
	k := newJob(t, s)
	start(t, s, k, 1, "w1")
	if err := s.Finish(ctx, k.Workspace, k.ID, 1, store.Outcome{Status: api.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	check("after another job came and went")
}

func TestCancelQueuedNeverStarts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	j := newJob(t, s)
	_, n, _ := s.Reserve(ctx, j.ID, 1, "w1", "")
	if res, err := s.Cancel(ctx, j.Workspace, j.ID, time.Now()); err != nil || res != store.CancelDone {
		t.Fatalf("cancel: %v %v", res, err)
	}
	if err := s.Start(ctx, j.Workspace, j.ID, 1, "w1", n, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("start after cancel: %v, want ErrConflict", err)
	}
	if ids, _ := s.Pending(ctx, 10); len(ids) != 0 {
		t.Fatalf("pending after cancel: %v", ids)
	}
	// A running job only gets the request; its worker ends it.
	r := newJob(t, s)
	start(t, s, r, 1, "w1")
	if res, err := s.Cancel(ctx, r.Workspace, r.ID, time.Now()); err != nil || res != store.CancelRequested {
		t.Fatalf("cancel running: %v %v", res, err)
	}
	if got, _ := s.GetJobByID(ctx, r.ID); got.Status != api.StatusRunning || !got.CancelRequested {
		t.Fatalf("running job after cancel request: %s requested=%v", got.Status, got.CancelRequested)
	}
}

// TestCancelForCarriesTheReason: a cancel with a reason (a sweep's early
// termination) ends a queued job with it, and leaves it with a running
// job's request for its worker to end the attempt with; a plain cancel
// keeps canceled.
func TestCancelForCarriesTheReason(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	why := api.Reason{Code: api.ReasonEarlyTerminated, Detail: "median_stopping at interval 3: ..."}
	q := newJob(t, s)
	if res, err := s.CancelFor(ctx, q.Workspace, q.ID, why, time.Now()); err != nil || res != store.CancelDone {
		t.Fatalf("cancel queued: %v %v", res, err)
	}
	if got, _ := s.GetJobByID(ctx, q.ID); got.Status != api.StatusCanceled || got.ReasonCode != api.ReasonEarlyTerminated || got.Reason != why.String() {
		t.Errorf("queued job canceled for a reason: %s %q (%s), want canceled %q", got.Status, got.ReasonCode, got.Reason, why.String())
	}
	r := newJob(t, s)
	start(t, s, r, 1, "w1")
	if res, err := s.CancelFor(ctx, r.Workspace, r.ID, why, time.Now()); err != nil || res != store.CancelRequested {
		t.Fatalf("cancel running: %v %v", res, err)
	}
	if got, err := s.CancelReason(ctx, r.ID); err != nil || got != why {
		t.Errorf("the running job's cancel reason: %+v %v, want %+v", got, err, why)
	}
	plain := newJob(t, s)
	start(t, s, plain, 1, "w1")
	if _, err := s.Cancel(ctx, plain.Workspace, plain.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CancelReason(ctx, plain.ID); err != nil || got != (api.Reason{}) {
		t.Errorf("a plain cancel's reason: %+v %v, want none", got, err)
	}
	p := newJob(t, s)
	if _, err := s.Cancel(ctx, p.Workspace, p.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetJobByID(ctx, p.ID); got.ReasonCode != api.ReasonCanceled {
		t.Errorf("a plain cancel of a queued job: %q, want canceled", got.ReasonCode)
	}
}

func TestPendingOrderIsPriorityThenAge(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := time.Now().UTC()
	mk := func(p api.Priority, age time.Duration) string {
		return newJob(t, s, func(j *api.Job) { j.Spec.Priority = p; j.CreatedAt = base.Add(-age) }).ID
	}
	lowOld := mk(api.PriorityLow, time.Hour)
	normal := mk(api.PriorityNormal, time.Minute)
	high := mk(api.PriorityHigh, 0)
	normalOld := mk(api.PriorityNormal, time.Hour)
	got, err := s.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{high, normalOld, normal, lowOld}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pending order = %v, want %v", got, want)
	}
}

func TestOtherWorkspaceIsNotFound(t *testing.T) {
	s := newStore(t)
	j := newJob(t, s)
	if _, err := s.GetJob(context.Background(), "team-b", j.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get from another workspace: %v, want ErrNotFound", err)
	}
	for _, id := range []string{"", "../x", "a b", strings.Repeat("a", 100)} {
		if _, err := s.GetJobByID(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("id %q: %v, want ErrNotFound", id, err)
		}
	}
}

func TestLeadershipHasOneHolder(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.AcquireLeadership(ctx, "a", time.Minute)
	b, _ := s.AcquireLeadership(ctx, "b", time.Minute)
	if !a || b {
		t.Fatalf("a leads %v, b leads %v; want only a", a, b)
	}
	if err := s.ReleaseLeadership(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.AcquireLeadership(ctx, "b", time.Minute); !b {
		t.Fatal("b did not take over after a released the lease")
	}
}

func TestAGPUIsNeverReservedTwice(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b := newJob(t, s), newJob(t, s)
	if _, _, err := s.Reserve(ctx, a.ID, 1, "w1", "", 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(ctx, b.ID, 1, "w1", "", 1); !errors.Is(err, store.ErrGPUTaken) {
		t.Fatalf("second reservation of GPU 1: %v, want ErrGPUTaken", err)
	}
	// All or nothing: b took neither GPU.
	if got, _ := s.GetJobByID(ctx, b.ID); got.GPUs != nil || got.Status != api.StatusQueued {
		t.Fatalf("refused job holds %v", got.GPUs)
	}
	// Ending a frees its GPUs for b.
	if err := s.Finish(ctx, a.Workspace, a.ID, 1, store.Outcome{Status: api.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Reserve(ctx, b.ID, 1, "w1", "", 1); err != nil {
		t.Fatalf("reserve after release: %v", err)
	}
	if got, _ := s.GetJobByID(ctx, b.ID); fmt.Sprint(got.GPUs) != "[1]" {
		t.Fatalf("b holds %v, want [1]", got.GPUs)
	}
	// A requeue frees them too.
	if err := s.Placed(ctx, b.Workspace, b.ID, 1, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Requeue(ctx, b.Workspace, b.ID, 1, store.Outcome{Status: api.StatusFailed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := newJob(t, s)
	if _, _, err := s.Reserve(ctx, c.ID, 1, "w1", "", 0, 1); err != nil {
		t.Fatalf("GPUs not freed by requeue: %v", err)
	}
}

// TestJobsOf: the jobs of one workspace among the IDs, in one read; a
// missing ID, a malformed one and another workspace's job are left out.
func TestJobsOf(t *testing.T) {
	s := newStore(t)
	a := newJob(t, s)
	other := newJob(t, s, func(j *api.Job) { j.Workspace = "team-b" })
	got, err := s.JobsOf(context.Background(), a.Workspace, []string{a.ID, other.ID, "01nosuchjob0000000000000000", "bad id"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[a.ID] == nil || got[a.ID].ID != a.ID {
		t.Fatalf("JobsOf: %v, want only %s", got, a.ID)
	}
}
