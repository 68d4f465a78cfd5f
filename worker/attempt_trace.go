package worker

import (
	"context"
	"strings"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/queue"
)

// A job is one trace (queue.TraceHeaders): each attempt is a job.attempt
// span, continued from the trace context its task's headers carry (the
// scheduler's job.place span, a child of the job's submit), so a retry is
// a new attempt span in the same trace. The workload gets the attempt
// span's context as TRACEPARENT (and TRACESTATE) in its environment, which
// an OpenTelemetry SDK reads: a training script's own spans join the trace.

// tracerName names the worker's attempt tracer.
const attemptTracerName = "github.com/jobgate/jobgate/worker"

// traceAttempt starts the job.attempt span of attempt p.Attempt of job,
// under the context task's headers carry, when the worker has a
// TracerProvider. A task without them (from a scheduler that does not
// trace) continues the submit's context stored with the job, and one of a
// job stored without any starts a trace of its own. With no provider, ctx
// is returned as it is, with a no-op span: tracing off adds nothing, to
// the workload's environment either.
func (w *Worker) traceAttempt(ctx context.Context, t *asynq.Task, job *api.Job, p queue.RunJobPayload, resumed bool) (context.Context, trace.Span) {
	tp := w.cfg.TracerProvider
	if tp == nil {
		return ctx, noop.Span{}
	}
	h := t.Headers()
	if h["traceparent"] == "" && job.TraceParent != "" {
		h = map[string]string{"traceparent": job.TraceParent, "tracestate": job.TraceState}
	}
	ctx = queue.TraceContext(ctx, h)
	return tp.Tracer(attemptTracerName).Start(ctx, "job.attempt", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("job.id", job.ID), attribute.String("job.workspace", job.Workspace), attribute.Int("job.attempt", p.Attempt),
		attribute.String("job.mode", string(job.Spec.Mode)), attribute.String("worker.id", w.cfg.ID), attribute.Bool("job.resumed", resumed)))
}

// traceEnded records e, the attempt's end, on the attempt span ctx holds:
// status, reason and exit code, and an error status unless it succeeded.
func traceEnded(ctx context.Context, e *attemptEnd) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	o := e.Outcome
	span.SetAttributes(attribute.String("job.status", string(o.Status)), attribute.String("job.reason_code", o.ReasonCode),
		attribute.Bool("job.requeued", e.Requeue))
	if o.ExitCode != nil {
		span.SetAttributes(attribute.Int("process.exit.code", *o.ExitCode))
	}
	if o.Status != api.StatusSucceeded {
		span.SetStatus(codes.Error, o.Reason)
	}
}

// traceEnv gives the workload the W3C context of the attempt span ctx
// holds, as TRACEPARENT and (when set) TRACESTATE, the variables
// OpenTelemetry's SDKs read; unless the job sets its own. Nothing when ctx
// holds no valid span (tracing off).
func traceEnv(ctx context.Context, env map[string]string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	h := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, h)
	for k, v := range h {
		if name := strings.ToUpper(k); env[name] == "" {
			env[name] = v
		}
	}
}
