package main

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/gateway"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/worker"
)

// runGateway runs a gateway process: the HTTP API, the control plane's
// components and its leader elector, and, for `jobgate dev`, a worker (nil
// for `jobgate gateway`), and more parts that stop with the HTTP API (dev's
// scoring router, whose /v2 the API's server serves). It runs them until ctx is done or one of them
// fails, and returns the first failure. All of them are in the one errgroup
// below; the failure of one cancels gctx, which stops the rest in the order
// written above it.
func runGateway(ctx context.Context, gw *gateway.Gateway, plane *control.Plane, wk *worker.Worker, parts ...func(context.Context) error) error {
	// Shutdown order, when ctx is done or a part failed:
	//  1. Stop intake: the HTTP server stops accepting requests and lets
	//     in-flight ones finish (the gateway's ShutdownTimeout; log
	//     followers are cut).
	//  2. Stop taking tasks, and drain: at the same time, dev's worker stops
	//     taking tasks and lets its running jobs end, or stops them and hands
	//     them back (the worker's ShutdownTimeout).
	//  3. Stop the controllers once both are done, so nothing a request or
	//     a job started is cut short: placement, the cron loop (a tick once
	//     claimed is still fired), the deployment controller (what it
	//     asked of the job service stays asked), the callback notifier (deliveries in
	//     flight are left to another gateway) and the log hub.
	//  4. Stop the elector last: it gives up the lease once nothing leads on
	//     it, so another gateway takes over at once.
	//  5. The caller's defers close the Redis client (and dev's GPUs, podman
	//     and redis-server), and last flush the spans still buffered
	//     (startTelemetry's stop, deferred first).
	//
	// Before any of it: the HTTP API listens (and loads its certificate),
	// and a gateway that cannot serve fails here, having run nothing.
	if err := gw.Listen(ctx); err != nil {
		return err
	}
	eg, gctx := errgroup.WithContext(ctx)
	controllersCtx, stopControllers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopControllers()
	electorCtx, stopElector := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElector()

	var intake, controllers sync.WaitGroup
	intakeParts := append([]func(context.Context) error{gw.Run}, parts...)
	if wk != nil {
		intakeParts = append(intakeParts, wk.Run)
	}
	for _, run := range intakeParts {
		intake.Add(1)
		eg.Go(func() error { defer intake.Done(); return run(gctx) })
	}
	for _, run := range []func(context.Context) error{plane.Placement.Run, plane.Cron.Run, plane.Deploy.Run, plane.Sweeps.Run, plane.Notifier.Run, plane.Logs.Run} {
		controllers.Add(1)
		eg.Go(func() error { defer controllers.Done(); return run(controllersCtx) })
	}
	eg.Go(func() error { return plane.Elector.Run(electorCtx) })
	eg.Go(func() error {
		<-gctx.Done()
		intake.Wait()
		stopControllers()
		controllers.Wait()
		stopElector()
		return nil
	})
	return eg.Wait()
}
