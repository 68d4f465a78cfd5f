package queue_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/queue"
)

// TestRunJobTaskCarriesTraceContext: a run-job task made under a span
// carries that span's W3C context in its headers (traceparent, and the
// tracestate it was given), and the worker's side reads the same span
// context back from them as a remote parent; a task made with no span
// carries no headers, and its headers give no context.
func TestRunJobTaskCarriesTraceContext(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	ctx, span := tp.Tracer("t").Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "job.place")
	defer span.End()
	p := queue.RunJobPayload{JobID: "j1", Attempt: 2, Placement: 3}

	task, err := queue.NewRunJobTaskWithHeaders(p, time.Minute, queue.TraceHeaders(ctx))
	if err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	h := task.Headers()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; h["traceparent"] != want || h["tracestate"] != "vendor=abc" {
		t.Fatalf("task headers %v, want traceparent %s and tracestate vendor=abc", h, want)
	}
	if got := trace.SpanContextFromContext(queue.TraceContext(context.Background(), h)); !got.Equal(sc.WithRemote(true)) {
		t.Errorf("span context read from the headers: %+v, want the placing span's %+v", got, sc)
	}
	if got, err := queue.ParseRunJobPayload(task.Payload()); err != nil || got != p || task.Type() != queue.TypeRunJob {
		t.Errorf("task %s payload %+v, %v; want %s %+v", task.Type(), got, err, queue.TypeRunJob, p)
	}

	bare, err := queue.NewRunJobTask(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if h := queue.TraceHeaders(context.Background()); h != nil || len(bare.Headers()) != 0 {
		t.Errorf("untraced: headers %v, task headers %v; want none", h, bare.Headers())
	}
	if got := trace.SpanContextFromContext(queue.TraceContext(context.Background(), bare.Headers())); got.IsValid() {
		t.Errorf("a task without headers gave span context %+v", got)
	}
}
