package placement

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobgate/jobgate/api"
)

// tracerName names the scheduler's tracer.
const tracerName = "github.com/jobgate/jobgate/internal/placement"

// tracePlace starts the job.place span of placing job's attempt on worker
// workerID (placement numbers the reservation) when the scheduler has a
// TracerProvider. The span is a child of the job's submit (the trace
// context stored with the job), not a link: placement is a step of the
// job's one trace, which a trace view then shows whole, from the request
// to the workload's own spans; the time between submit and placement is
// the wait in the queue. A job stored without a context (tracing was off
// at its submit, or a job of an earlier release) starts a trace here.
// With no provider ctx is returned as it is, with a no-op span.
func (s *Scheduler) tracePlace(ctx context.Context, job *api.Job, workerID string, placement int64) (context.Context, trace.Span) {
	tp := s.cfg.TracerProvider
	if tp == nil {
		return ctx, noop.Span{}
	}
	if job.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": job.TraceParent, "tracestate": job.TraceState})
	}
	return tp.Tracer(tracerName).Start(ctx, "job.place", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("job.id", job.ID), attribute.String("job.workspace", job.Workspace), attribute.Int("job.attempt", job.Attempt),
		attribute.String("worker.id", workerID), attribute.Int64("job.placement", placement)))
}
