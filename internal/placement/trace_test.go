package placement_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

// TestPlacementContinuesTheJobsTrace: placing a job whose submit stored a
// trace context makes a job.place span, a child of the submit's span in
// the same trace, with the worker's ID; the run-job task carries the place
// span's context in its traceparent header (and the stored tracestate). A
// job stored without a context (before jobs kept one) is placed too, in a
// trace of its own. A scheduler without a TracerProvider makes no span
// and sends no headers.
func TestPlacementContinuesTheJobsTrace(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	now := time.Now()
	if err := st.RegisterWorker(ctx, store.Worker{ID: "w", Executor: "podman", Slots: 4, StartedAt: now}, now); err != nil {
		t.Fatal(err)
	}
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		submit  = "00f067aa0ba902b7"
	)
	create := func(id, traceparent string) {
		t.Helper()
		if err := st.CreateJob(ctx, &api.Job{ID: id, Workspace: "default", Name: id, Experiment: "default", Status: api.StatusQueued,
			Attempt: 1, CreatedAt: now, Spec: api.JobSpec{Mode: api.ModeContainer, Image: "localhost/x:1", Command: []string{"x"}, TimeoutSeconds: 60},
			TraceParent: traceparent, TraceState: map[bool]string{true: "vendor=abc"}[traceparent != ""]}); err != nil {
			t.Fatal(err)
		}
	}
	create("01traced", "00-"+traceID+"-"+submit+"-01")
	create("02old", "")
	rec := tracetest.NewSpanRecorder()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))}, nil, rdb, st, asynq.NewClientFromRedisClient(rdb), logger)
	if err := s.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	// A third job placed by a scheduler that does not trace.
	create("03untraced", "00-"+traceID+"-"+submit+"-01")
	off := placement.New(placement.Config{ID: "off", WorkerLostAfter: time.Minute}, nil, rdb, st, asynq.NewClientFromRedisClient(rdb), logger)
	if err := off.Pass(ctx); err != nil {
		t.Fatal(err)
	}

	headers := map[string]map[string]string{}
	tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(queue.WorkerQueue("w"))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		p, err := queue.ParseRunJobPayload(task.Payload)
		if err != nil {
			t.Fatal(err)
		}
		headers[p.JobID] = task.Headers
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		if sp.Name() == "job.place" {
			attrs := attribute.NewSet(sp.Attributes()...)
			id, _ := attrs.Value("job.id")
			spans[id.AsString()] = sp
			if w, _ := attrs.Value("worker.id"); w.AsString() != "w" {
				t.Errorf("job.place of %s: worker.id %q, want w", id.AsString(), w.AsString())
			}
		}
	}
	if len(spans) != 2 || len(headers) != 3 {
		t.Fatalf("job.place spans of %d jobs, want 2 (01traced, 02old); tasks of %d jobs, want 3", len(spans), len(headers))
	}

	traced := spans["01traced"]
	if traced == nil {
		t.Fatal("no job.place span of 01traced")
	}
	if got := traced.SpanContext().TraceID().String(); got != traceID || traced.Parent().SpanID().String() != submit {
		t.Errorf("job.place of 01traced: trace %s, parent %s; want trace %s, parent %s (the submit's)", got, traced.Parent().SpanID(), traceID, submit)
	}
	if want := "00-" + traceID + "-" + traced.SpanContext().SpanID().String() + "-01"; headers["01traced"]["traceparent"] != want || headers["01traced"]["tracestate"] != "vendor=abc" {
		t.Errorf("task of 01traced: headers %v, want traceparent %s (the place span's) and tracestate vendor=abc", headers["01traced"], want)
	}
	old := spans["02old"]
	if old == nil || old.Parent().IsValid() || old.SpanContext().TraceID().String() == traceID {
		t.Errorf("job.place of 02old (stored without a context): %v, want a root span of a trace of its own", old)
	} else if sc := trace.SpanContextFromContext(queue.TraceContext(ctx, headers["02old"])); sc.SpanID() != old.SpanContext().SpanID() {
		t.Errorf("task of 02old: headers %v, want its place span's context", headers["02old"])
	}
	if h := headers["03untraced"]; len(h) != 0 {
		t.Errorf("task placed without tracing: headers %v, want none", h)
	}
}
