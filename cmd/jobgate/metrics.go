package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobgate/jobgate/internal/metrics"
)

// metricsServer is the --metrics-addr listener of a server process, bound
// at start so that an address taken fails the command at once; its run
// serves reg until ctx is done. addr "" (the default): nil, and run
// serves nothing.
func metricsServer(addr string, reg prometheus.Gatherer, logger *slog.Logger) (run func(context.Context) error, err error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	return func(ctx context.Context) error { return metrics.ServeListener(ctx, ln, reg, logger) }, nil
}

// runBeside runs main until it returns, with beside (nil: nothing) running
// alongside; beside is stopped once main has returned, so the metrics of a
// process can be scraped through its whole shutdown.
func runBeside(ctx context.Context, main, beside func(context.Context) error) error {
	if beside == nil {
		return main(ctx)
	}
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- beside(bctx) }()
	err := main(ctx)
	stop()
	return errors.Join(err, <-done)
}

const metricsAddrUsage = "serve Prometheus metrics on http://ADDR/metrics, to anyone who reaches ADDR (default: off; the API port's GET /metrics answers the system admin token)"
