package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jobgate/jobgate/internal/telemetry"
)

// telemetryFlushTimeout bounds the flush of the spans still buffered when a
// process stops.
const telemetryFlushTimeout = 5 * time.Second

// startTelemetry sets up this process's tracing as service (telemetry.Setup,
// from the standard OTEL_* variables; off by default). A command defers the
// stop it returns before anything else, so that it runs last, once every
// part has stopped (runGateway's shutdown order): it flushes the spans still
// buffered, within telemetryFlushTimeout.
func startTelemetry(ctx context.Context, service string, stderr io.Writer) (stop func(), err error) {
	shutdown, err := telemetry.Setup(ctx, service)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return func() {
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlushTimeout)
		defer cancel()
		if err := shutdown(flush); err != nil {
			fmt.Fprintf(stderr, "telemetry: flush spans: %v\n", err)
		}
	}, nil
}
