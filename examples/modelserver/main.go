// Command modelserver serves a model made by /bin/iris-train (model.json: a
// softmax regression) over the Open Inference Protocol (KServe V2) REST API,
// the server a jobgate deployment runs:
//
//	POST /v2/models/{name}/infer                  (and /versions/{version}/infer)
//	GET  /v2/models/{name}                        metadata: inputs and outputs
//	GET  /v2/models/{name}/ready                  (and /versions/{version}/ready)
//	GET  /v2/health/live, /v2/health/ready, /v2   server health and metadata
//
// The input is "input", FP32, shape [n,4] (sepal length and width, petal
// length and width, in cm; "data" flat or nested); the outputs are "label"
// (INT64 [n], the class index: 0 setosa, 1 versicolor, 2 virginica) and
// "probabilities" (FP32 [n,3]). Every answer to an infer names model_name
// and model_version; a refused request gets 400 (404 for another model) and
// {"error": "..."}.
//
// It is configured by the environment a deployment sets, or, without the
// JOBGATE_ prefix (which a job's own env may not use), by a plain job's:
//
//	JOBGATE_MODEL_PATH, MODEL_PATH        model.json, or a folder holding it (default /model)
//	JOBGATE_MODEL_NAME, MODEL_NAME        the name it serves the model under (default iris)
//	JOBGATE_MODEL_VERSION, MODEL_VERSION  the registry version it reports (default 1)
//	JOBGATE_PORT, PORT                    the port it listens on (default 8080)
//	JOBGATE_HOST, HOST                    the address it listens on (default: all)
//
// and traces every infer with OpenTelemetry (internal/telemetry.Setup: the
// OTEL_* variables, off by default): one server span per infer, in the trace
// of the request's W3C traceparent; health probes are not traced.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/jobgate/jobgate/internal/telemetry"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, logger); err != nil {
		logger.ErrorContext(ctx, "modelserver", slog.Any("error", err))
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	// env is the variable JOBGATE_name, else name.
	env := func(name string) string { return cmp.Or(getenv("JOBGATE_"+name), getenv(name)) }
	path := cmp.Or(env("MODEL_PATH"), "/model")
	m, err := loadModel(path)
	if err != nil {
		return err
	}
	shutdownTracing, err := telemetry.Setup(ctx, "modelserver")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	s := &server{
		model:   m,
		name:    cmp.Or(env("MODEL_NAME"), "iris"),
		version: cmp.Or(env("MODEL_VERSION"), "1"),
		tracer:  otel.GetTracerProvider(),
		prop:    otel.GetTextMapPropagator(),
	}
	addr := net.JoinHostPort(env("HOST"), cmp.Or(env("PORT"), "8080"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	logger.InfoContext(ctx, "serving", slog.String("model", s.name), slog.String("version", s.version),
		slog.String("path", path), slog.String("addr", ln.Addr().String()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		// Shutdown order: stop taking requests and drain the ones in flight,
		// then flush the spans.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = srv.Shutdown(sctx)
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(err, shutdownTracing(fctx))
}
