package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// TestPlacedTaskCarriesWorkersStopGrace: the task placed on a worker has the
// deadline of the job's timeout, the stop grace the worker registered and
// queue.RunJobMargin, and carries that grace to the worker; a worker that
// registered none (an older release) gets the scheduler's StopGrace.
func TestPlacedTaskCarriesWorkersStopGrace(t *testing.T) {
	tests := []struct {
		name       string
		registered time.Duration
		want       time.Duration
	}{
		{name: "registered grace", registered: 45 * time.Second, want: 45 * time.Second},
		{name: "older worker without one", registered: 0, want: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			now := time.Now()
			if err := f.st.RegisterWorker(ctx, store.Worker{ID: "w", Executor: "podman", Slots: 1, StartedAt: now, StopGrace: tt.registered}, now); err != nil {
				t.Fatal(err)
			}
			var job api.Job
			f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"timeout_seconds":120}`, &job)
			rdb := f.st.Redis()
			s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, rdb, f.st,
				asynq.NewClientFromRedisClient(rdb), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err := s.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(queue.WorkerQueue("w"))
			if err != nil || len(tasks) != 1 {
				t.Fatalf("pending tasks of w: %v, %v; want the job's one", tasks, err)
			}
			p, err := queue.ParseRunJobPayload(tasks[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if want := queue.RunJobDeadline(120*time.Second, tt.want); p.StopGrace != tt.want || tasks[0].Timeout != want {
				t.Fatalf("task: stop grace %s, deadline %s; want %s and %s", p.StopGrace, tasks[0].Timeout, tt.want, want)
			}
		})
	}
}
