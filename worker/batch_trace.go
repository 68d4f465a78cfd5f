package worker

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// A batch (an HTTP batch or a batch-score job) is one trace: the gateway
// puts the W3C traceparent of the request that submitted it into the spec
// (BatchJob.TraceParent, BatchScore.TraceParent), and every attempt, on
// whichever worker, starts its span under it. Each mini-batch is a span
// of that one, and its request carries the context on to the router's and
// the model server's spans.

// batchTracer is the tracer of the worker's batch spans.
func batchTracer() trace.Tracer { return otel.Tracer("github.com/jobgate/jobgate/worker") }

// batchSpan starts the span of one attempt of a batch under the trace its
// submission began (traceparent; a new trace when it is empty or not valid).
func batchSpan(ctx context.Context, traceparent, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if traceparent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
	}
	return batchTracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

// tracedTransport sends the context's span on with each request
// (traceparent), and makes a client span of each.
func tracedTransport(rt http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(rt, otelhttp.WithPropagators(propagation.TraceContext{}))
}
