package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A job is one trace: the scheduler's job.place span travels in its
// run-job task's headers as a W3C trace context (traceparent, and
// tracestate when set), and the worker's job.attempt span continues from
// them (TraceContext). A task without them (tracing off, or a task of an
// older scheduler) runs as before.

// TraceHeaders is the W3C trace context of ctx's span as task headers:
// traceparent, and tracestate when set; nil when ctx holds no valid span
// context (tracing off).
func TraceHeaders(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, h)
	return h
}

// TraceContext is ctx with the remote span context that headers carry (as
// TraceHeaders wrote them); ctx itself when they carry none or an invalid
// one.
func TraceContext(ctx context.Context, headers map[string]string) context.Context {
	if headers["traceparent"] == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(headers))
}

// NewRunJobTaskWithHeaders is NewRunJobTask with task headers: the
// scheduler's trace context (TraceHeaders), nil for none.
func NewRunJobTaskWithHeaders(p RunJobPayload, deadline time.Duration, headers map[string]string) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode run-job payload: %w", err)
	}
	return asynq.NewTaskWithHeaders(TypeRunJob, b, headers, runJobOptions(p, deadline)...), nil
}
