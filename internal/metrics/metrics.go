// Package metrics is the one place jobgate's Prometheus metrics are
// defined: their names (all jobgate_...), help texts, label sets and
// buckets. Each server process makes a Registry (NewRegistry), hands it to
// the sets of the parts it runs (NewControl for a gateway's API and control
// plane, NewWorker, NewScoring) and serves it on /metrics (Handler, Serve).
// There are no globals and no use of Prometheus's default registry, so any
// number of processes' parts run side by side in one test binary.
//
// A nil set means "metrics off": every method of *Control, *Worker and
// *Scoring does nothing on a nil receiver, so a part made without one (most
// tests) pays nothing.
//
// Label cardinality is bounded by design: no job, attempt, request or
// delivery ID is ever a label. The free-form labels are workspace and
// deployment names, which only admins create (a handful to a few hundred);
// a deployment label is set only for a deployment that exists, never from a
// name a request made up. Every other label takes a value from a short
// fixed list (a status, a priority, an outcome, a reason code, an HTTP
// status code).
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric: jobgate_<name>.
const namespace = "jobgate"

// NewRegistry is a process's registry, with the Go runtime's and the
// process's own collectors (go_*, process_*) already in it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g in Prometheus's text format (or OpenMetrics, when the
// scraper asks for it).
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Serve serves g on GET /metrics of addr (the --metrics-addr flag) until
// ctx is done, then shuts the listener down within 5s. Anyone who reaches
// addr may read it: bind it where only the Prometheus server can (the API
// port's /metrics asks for the system admin token instead). An address that
// cannot be bound is an error at once.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, g, logger)
}

// ServeListener is Serve on ln, which it closes.
func ServeListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if logger != nil {
		logger.InfoContext(ctx, "metrics served", slog.String("url", "http://"+ln.Addr().String()+"/metrics"))
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// register registers c on reg and returns it; when reg already holds a
// collector of the same description (another set of this process made it:
// dev's gateway and worker both count ended jobs), that one is returned
// instead, so both count into one series. Any other registration error is
// a bug in this package (a name defined twice differently) and panics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("metrics: " + err.Error())
}

func counterVec(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels))
}

func histogramVec(reg prometheus.Registerer, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels))
}

// jobsFinished is jobgate_jobs_finished_total, counted by the worker that
// ran a job and by the control plane that ended one no worker ran (canceled
// while queued).
func jobsFinished(reg prometheus.Registerer) *prometheus.CounterVec {
	return counterVec(reg, "jobs_finished_total",
		"Jobs that ended, by workspace and final status (succeeded, failed, canceled).",
		"workspace", "status")
}
