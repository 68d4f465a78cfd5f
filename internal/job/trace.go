package job

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobgate/jobgate/api"
)

// tracerName names the job service's tracer.
const tracerName = "github.com/jobgate/jobgate/internal/job"

// traceSubmit starts the job.submit span of new job j under ctx's span (the
// API's server span, a delivery's, a schedule's tick) when the service has
// a TracerProvider, and stores the W3C context of the span ctx then holds
// in j (TraceParent, TraceState, TraceID): the job's placement and attempts
// continue its trace from there, however much later. With no provider and
// no span in ctx (tracing off) j gets no context, and the span returned
// is a no-op one.
func (s *Service) traceSubmit(ctx context.Context, j *api.Job) (context.Context, trace.Span) {
	span := trace.Span(noop.Span{})
	if tp := s.cfg.TracerProvider; tp != nil {
		ctx, span = tp.Tracer(tracerName).Start(ctx, "job.submit", trace.WithAttributes(
			attribute.String("job.id", j.ID), attribute.String("job.workspace", j.Workspace),
			attribute.String("job.mode", string(j.Spec.Mode)), attribute.String("job.priority", string(j.Spec.Priority))))
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ctx, span
	}
	h := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, h)
	j.TraceParent, j.TraceState, j.TraceID = h["traceparent"], h["tracestate"], sc.TraceID().String()
	// A client's tracestate (up to 32 entries of 512 bytes in W3C's
	// syntax) would be kept with the job, sent in each task and put in
	// the workload's environment: past maxTraceState it is dropped.
	if len(j.TraceState) > maxTraceState {
		j.TraceState = ""
	}
	return ctx, span
}

// maxTraceState bounds the tracestate a job keeps (W3C suggests
// propagating at least 512 characters).
const maxTraceState = 512
