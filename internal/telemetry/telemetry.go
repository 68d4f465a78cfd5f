// Package telemetry sets up OpenTelemetry tracing for a jobgate process, from
// the standard OpenTelemetry environment variables, in one call: Setup.
package telemetry

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// installed is the provider the last Setup installed; nil when tracing is off.
var installed atomic.Pointer[sdktrace.TracerProvider]

// Provider is the tracer provider the last Setup installed, or nil when
// tracing is off (OTEL_TRACES_EXPORTER=none, the default, or
// OTEL_SDK_DISABLED=true): a component given nil adds no instrumentation,
// so tracing off costs nothing (gateway.Config.TracerProvider).
func Provider() trace.TracerProvider {
	if tp := installed.Load(); tp != nil {
		return tp
	}
	return nil
}

// Setup installs the process's tracer provider and the W3C tracecontext
// propagator as OpenTelemetry's globals, configured by the standard
// variables:
//
//   - OTEL_TRACES_EXPORTER: none (the default: no provider is made, spans
//     cost nothing), otlp (OTLP over HTTP/protobuf, to
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
//     default http://localhost:4318) or console (spans as JSON on stdout);
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: always_on,
//     always_off, traceidratio, parentbased_always_on (the default),
//     parentbased_always_off, parentbased_traceidratio; the argument is the
//     ratio, 0 to 1 (default 1);
//   - OTEL_SERVICE_NAME: the service name, serviceName when unset;
//   - OTEL_SDK_DISABLED=true: tracing off, whatever the others say.
//
// A value it does not know is an error that names the variable. shutdown
// flushes and stops the exporter; call it last, on a bounded context.
func Setup(ctx context.Context, serviceName string) (shutdown func(context.Context) error, err error) {
	return setup(ctx, serviceName, os.Getenv, os.Stdout)
}

func setup(ctx context.Context, serviceName string, getenv func(string) string, stdout io.Writer) (func(context.Context) error, error) {
	// The propagator is set even when tracing is off, so a process passes on
	// the trace context it receives.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	installed.Store(nil)
	noop := func(context.Context) error { return nil }
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return noop, nil // the standard switch: off, whatever else is set
	}

	exporter := strings.ToLower(strings.TrimSpace(cmp.Or(getenv("OTEL_TRACES_EXPORTER"), "none")))
	sampler, err := samplerFrom(getenv)
	if err != nil {
		return noop, err
	}
	var exp sdktrace.SpanExporter
	switch exporter {
	case "none":
		return noop, nil
	case "otlp":
		// otlptracehttp reads OTEL_EXPORTER_OTLP_ENDPOINT and the other
		// OTEL_EXPORTER_OTLP_* variables itself.
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return noop, fmt.Errorf("otlp trace exporter: %w", err)
		}
	case "console":
		if exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout)); err != nil {
			return noop, fmt.Errorf("console trace exporter: %w", err)
		}
	default:
		return noop, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp, console or none", exporter)
	}

	res := resource.NewSchemaless(semconv.ServiceName(cmp.Or(getenv("OTEL_SERVICE_NAME"), serviceName)))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	installed.Store(tp)
	return tp.Shutdown, nil
}

// samplerFrom reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(cmp.Or(getenv("OTEL_TRACES_SAMPLER"), "parentbased_always_on")))
	ratio := 1.0
	if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}
