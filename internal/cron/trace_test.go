package cron_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/cron"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestTickStartsTheJobsTrace: a fired tick is a schedule.tick span, the
// root of a new trace, and the job it makes keeps that span's context:
// its trace ID is the tick's (the job service here traces nothing itself:
// the job keeps its caller's context).
func TestTickStartsTheJobsTrace(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	clock := func() time.Time { return t0.Add(time.Second) }
	logger := slog.New(slog.DiscardHandler)
	if err := st.CreateSchedule(ctx, store.Schedule{ID: "sch_1", Workspace: "ws", Name: "nightly", Cron: "*/1 * * * * *", Timezone: "UTC",
		ConcurrencyPolicy: cron.PolicyAllow, Job: api.JobSpec{Image: "localhost/x:1", Command: []string{"run"}}, CreatedAt: t0, Since: t0}, 100); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	c := cron.New(cron.Config{ID: "g1", Now: clock, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))},
		nil, st, job.New(job.Config{Now: clock}, rdb, st, logger), logger)
	c.Fire(ctx, clock())

	sc, err := st.Schedule(ctx, "ws", "nightly")
	if err != nil || sc.LastJob == "" {
		t.Fatalf("schedule after the tick: %+v, %v; want a job", sc, err)
	}
	j, err := st.GetJobByID(ctx, sc.LastJob)
	if err != nil {
		t.Fatal(err)
	}
	var tick sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "schedule.tick" {
			tick = s
		}
	}
	if tick == nil {
		t.Fatalf("no schedule.tick span among %d", len(rec.Ended()))
	}
	if tick.Parent().IsValid() || j.TraceID == "" || j.TraceID != tick.SpanContext().TraceID().String() {
		t.Errorf("tick span parent %v, trace %s; job's trace ID %q; want a root span whose trace the job keeps",
			tick.Parent().SpanID(), tick.SpanContext().TraceID(), j.TraceID)
	}
}
