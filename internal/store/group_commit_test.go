package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// holdHook holds every pipeline that queues a job until release is closed,
// and counts them and the jobs in them.
type holdHook struct {
	release        chan struct{}
	trips, pending atomic.Int64
}

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}
func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hmget" && len(cmd.Args()) > 1 && cmd.Args()[1] == workspacesKey {
			h.trips.Add(1)
			h.pending.Add(int64(len(cmd.Args()) - 2))
			<-h.release
		}
		return next(ctx, cmd)
	}
}
func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := int64(0)
		for _, c := range cmds {
			if c.Name() == "zadd" && len(c.Args()) > 1 && c.Args()[1] == pendingKey {
				n++
			}
		}
		if n > 0 {
			h.trips.Add(1)
			h.pending.Add(n)
			<-h.release
		}
		return next(ctx, cmds)
	}
}

// heldStore is a Store on a fresh Redis whose submit batches and
// workspace reads hold's hook keeps until its release is closed.
func heldStore(t *testing.T) (*Store, redis.UniversalClient, *holdHook) {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	hold := &holdHook{release: make(chan struct{})}
	rdb.AddHook(hold)
	return New(rdb, Config{}), rdb, hold
}

// queuedJob is the i-th of a test's queued container jobs, created i ms
// after now.
func queuedJob(i int, now time.Time) *api.Job {
	return &api.Job{ID: fmt.Sprintf("job%03d", i), Workspace: "default", Status: api.StatusQueued, Attempt: 1,
		CreatedAt: now.Add(time.Duration(i) * time.Millisecond),
		Spec:      api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer}}
}

// TestSubmitsShareRoundTrips: submits that arrive while others are on
// their way to Redis go out together, in one MULTI, however many; each is
// answered with its place in the queue once Redis has it.
func TestSubmitsShareRoundTrips(t *testing.T) {
	const n = 40
	s, rdb, hold := heldStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var wg sync.WaitGroup
	pos := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := queuedJob(i, now)
			pos[i], errs[i] = s.SubmitJob(ctx, j, Submission{Audit: &api.AuditEntry{Workspace: "default", Action: "job.submit", Target: j.ID}})
		}()
	}
	// Every submit is queued, or in a batch held on its way.
	testenv.Eventually(t, 30*time.Second, func() bool {
		s.submits.mu.Lock()
		defer s.submits.mu.Unlock()
		return int64(len(s.submits.queue))+hold.pending.Load() == n
	}, "%d submits waiting", n)
	close(hold.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("submit %d: %v", i, errs[i])
		}
	}
	// Each place is the job's when its batch was executed.
	if slices.Min(pos) < 0 || slices.Max(pos) >= n {
		t.Fatalf("queue places %v: want each in 0 to %d", pos, n-1)
	}
	if got, _ := rdb.ZCard(ctx, pendingKey).Result(); got != n {
		t.Fatalf("%d jobs pending, want %d", got, n)
	}
	// At most one batch per committer was held; then one takes the rest.
	if trips := hold.trips.Load(); trips > maxCommitters+1 {
		t.Fatalf("%d submits took %d round trips, want at most %d", n, trips, maxCommitters+1)
	}
	t.Logf("%d submits in %d round trips", n, hold.trips.Load())
}

// TestWorkspaceReadsShareRoundTrips: Workspace calls that arrive while
// others are on their way go out together, in one HMGET; each gets its
// own workspace, or ErrNotFound.
func TestWorkspaceReadsShareRoundTrips(t *testing.T) {
	const n = 40
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	s := New(rdb, Config{})
	ctx := context.Background()
	if err := s.CreateWorkspace(ctx, api.Workspace{Name: "a", Quotas: api.Quotas{MaxRunningJobs: 3}}); err != nil {
		t.Fatal(err)
	}
	hold := &holdHook{release: make(chan struct{})}
	rdb.AddHook(hold)
	var wg sync.WaitGroup
	got := make([]*api.Workspace, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "a"
			if i%2 == 1 {
				name = "missing"
			}
			got[i], errs[i] = s.Workspace(ctx, name)
		}()
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		s.wsReads.mu.Lock()
		defer s.wsReads.mu.Unlock()
		return int64(len(s.wsReads.queue))+hold.pending.Load() == n
	}, "%d reads waiting", n)
	close(hold.release)
	wg.Wait()
	for i := range n {
		switch {
		case i%2 == 0 && (errs[i] != nil || got[i].Quotas.MaxRunningJobs != 3):
			t.Fatalf("read %d of a: %+v, %v", i, got[i], errs[i])
		case i%2 == 1 && !errors.Is(errs[i], ErrNotFound):
			t.Fatalf("read %d of missing: %+v, %v; want ErrNotFound", i, got[i], errs[i])
		}
	}
	if trips := hold.trips.Load(); trips > maxCommitters+1 {
		t.Fatalf("%d reads took %d round trips, want at most %d", n, trips, maxCommitters+1)
	}
	t.Logf("%d reads in %d round trips", n, hold.trips.Load())
}

// TestSubmitGivenUpIsNotWritten: a submit whose caller gives up (its
// context ends) while it still waits for a batch is taken out of the queue
// and never written, so the caller's error is the truth and a retry makes
// no duplicate.
func TestSubmitGivenUpIsNotWritten(t *testing.T) {
	s, rdb, hold := heldStore(t)
	now := time.Now().UTC()
	newJob := func(i int) *api.Job { return queuedJob(i, now) }
	// Every committer holds a batch of one on its way to Redis (one at a
	// time, so that each starts a committer of its own).
	var wg sync.WaitGroup
	for i := range maxCommitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.SubmitJob(context.Background(), newJob(i), Submission{}); err != nil {
				t.Errorf("submit %d: %v", i, err)
			}
		}()
		testenv.Eventually(t, 30*time.Second, func() bool { return hold.pending.Load() == int64(i+1) }, "batch %d held", i+1)
	}
	// One more waits in the queue; its caller gives up.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { _, err := s.SubmitJob(ctx, newJob(99), Submission{}); gaveUp <- err }()
	testenv.Eventually(t, 30*time.Second, func() bool {
		s.submits.mu.Lock()
		defer s.submits.mu.Unlock()
		return len(s.submits.queue) == 1
	}, "the fifth submit queued")
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("given-up submit: %v, want context.Canceled", err)
	}
	close(hold.release)
	wg.Wait()
	if n, _ := rdb.Exists(context.Background(), jobKey(newJob(99).ID)).Result(); n != 0 {
		t.Fatalf("the submit whose caller gave up was written")
	}
	if got, _ := rdb.ZCard(context.Background(), pendingKey).Result(); got != maxCommitters {
		t.Fatalf("%d jobs pending, want %d", got, maxCommitters)
	}
}
