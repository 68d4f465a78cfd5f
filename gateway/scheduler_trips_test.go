package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestPassRoundTripsDoNotGrowWithPendingJobs: a scheduling pass reads the
// pending jobs in one pipeline and writes their wait reasons in one, so its
// round trips to Redis are as many for 30 waiting jobs as for 3.
func TestPassRoundTripsDoNotGrowWithPendingJobs(t *testing.T) {
	trips := func(n int) (first, again int) {
		rdb := testenv.RedisClient(t, testenv.Redis(t))
		calls := testenv.CountCalls(rdb)
		st := store.New(rdb, store.Config{})
		ctx := context.Background()
		now := time.Now()
		// One worker, full: every job waits for a slot.
		if err := st.RegisterWorker(ctx, store.Worker{ID: "full", Executor: "podman", Slots: 0, StartedAt: now}, now); err != nil {
			t.Fatal(err)
		}
		for range n {
			j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: DefaultWorkspace, Name: "n", Experiment: "e",
				Status: api.StatusQueued, Reason: "waiting for the scheduler", Attempt: 1, CreatedAt: time.Now().UTC(),
				Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer, TimeoutSeconds: 60}}
			if err := st.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, rdb, st,
			asynq.NewClientFromRedisClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
		calls.Reset()
		if err := s.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		first = calls.Trips()
		calls.Reset()
		if err := s.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		again = calls.Trips()
		pending, _ := st.Pending(ctx, 100)
		for _, id := range pending {
			j, _ := st.GetJobByID(ctx, id)
			if !strings.HasPrefix(j.Reason, "waiting for a free slot") {
				t.Fatalf("job %s waits with reason %q, want waiting for a free slot", id, j.Reason)
			}
		}
		return first, again
	}
	few1, few2 := trips(3)
	many1, many2 := trips(30)
	t.Logf("round trips per pass: 3 pending jobs: %d, then %d; 30 pending jobs: %d, then %d", few1, few2, many1, many2)
	if many1 != few1 || many2 != few2 {
		t.Fatalf("a pass over 30 pending jobs took %d and %d round trips, over 3 %d and %d: want as many", many1, many2, few1, few2)
	}
}

// TestWaitReasonsHaveCodes: why a queued job waits is a code (reason_code)
// beside the reason people read, which reads as it always did.
func TestWaitReasonsHaveCodes(t *testing.T) {
	tests := []struct {
		name       string
		workers    []store.Worker
		body       string
		wantCode   string
		wantReason string
	}{
		{name: "no worker", body: jobBody, wantCode: api.ReasonNoWorker,
			wantReason: "waiting for a worker: none is running (start one with `jobgate worker`)"},
		{name: "no free slot", workers: []store.Worker{{ID: "full", Executor: "podman", Slots: 0}}, body: jobBody,
			wantCode: api.ReasonWaitingForSlot, wantReason: "waiting for a free slot: 0 of 0 free on 1 workers"},
		{name: "no free GPU", workers: []store.Worker{{ID: "g", Executor: "podman", Slots: 2, GPUs: []store.WorkerGPU{{Index: 0, Model: "H100", MemoryMB: 80000}}}},
			body: `{"image":"localhost/x:1","command":["x"],"resources":{"gpus":2,"gpu_model":"H100"}}`, wantCode: api.ReasonWaitingForGPU,
			wantReason: "needs 2 GPUs H100: none of 1 running workers has that many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			now := time.Now()
			for _, w := range tt.workers {
				w.StartedAt = now
				if err := f.st.RegisterWorker(ctx, w, now); err != nil {
					t.Fatal(err)
				}
			}
			// A GPU job is refused at submit unless some worker could run
			// it: register it before, take the GPU away after.
			var j map[string]any
			if tt.wantCode == api.ReasonWaitingForGPU {
				big := tt.workers[0]
				big.GPUs = append(big.GPUs, store.WorkerGPU{Index: 1, Model: "H100", MemoryMB: 80000})
				big.StartedAt = now
				if err := f.st.RegisterWorker(ctx, big, now); err != nil {
					t.Fatal(err)
				}
				f.mustCall("POST", "/v1/jobs", systemToken, tt.body, &j)
				w := tt.workers[0]
				w.StartedAt = now
				if err := f.st.RegisterWorker(ctx, w, now); err != nil {
					t.Fatal(err)
				}
			} else {
				f.mustCall("POST", "/v1/jobs", systemToken, tt.body, &j)
			}
			s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, f.st.Redis(), f.st,
				asynq.NewClientFromRedisClient(f.st.Redis()), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err := s.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			f.mustCall("GET", "/v1/jobs/"+j["id"].(string), systemToken, "", &got)
			if got["reason"] != tt.wantReason || got["reason_code"] != tt.wantCode {
				t.Fatalf("reason %q, reason_code %v; want %q, %q", got["reason"], got["reason_code"], tt.wantReason, tt.wantCode)
			}
		})
	}
}
