package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/telemetry"
	"github.com/jobgate/jobgate/scoring"
)

// defaultScoringAddr is where `jobgate scoring` listens without --listen.
const defaultScoringAddr = "127.0.0.1:8090"

// scoringCommand is `jobgate scoring`: the scoring router alone, against
// the Redis the gateways and workers share.
func scoringCommand(getenv func(string) string, stderr io.Writer) *cobra.Command {
	var redisURL, redisCA, logLevel, listen, metricsAddr string
	var maxBodyMB, maxBufferedMB int64
	var cfg scoring.Config
	cmd := &cobra.Command{
		Use:   "scoring",
		Short: "Run the scoring router: /v2 inference for every deployment (any number, one Redis)",
		Long: `Serves the Open Inference Protocol (KServe V2) REST API of every deployment:
POST /v2/models/{name}/infer goes to a ready replica, chosen from a routing
table kept in memory and refreshed by Redis wake-ups. Tokens need the score
scope; $JOBGATE_TOKEN, the system admin token, acts in workspace default.
Tracing follows the standard OTEL_* variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger, rdb, err := startRedisComponent(ctx, stderr, logLevel, redisURL, redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			shutdownTracing, err := telemetry.Setup(ctx, "jobgate-scoring")
			if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = shutdownTracing(sctx)
			}()
			cfg.AdminToken = getenv("JOBGATE_TOKEN")
			cfg.MaxBodyBytes, cfg.MaxBufferedBytes = maxBodyMB<<20, maxBufferedMB<<20 // New checks them
			reg := metrics.NewRegistry()
			cfg.Metrics, cfg.MetricsGatherer = metrics.NewScoring(reg), reg // GET /metrics: JOBGATE_TOKEN only
			serveMetrics, err := metricsServer(metricsAddr, reg, logger)
			if err != nil {
				return err
			}
			router, err := scoring.New(cfg, rdb, store.New(rdb, store.Config{}), nil, logger)
			if err != nil {
				return err
			}
			defer router.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			// Shutdown order: stop intake (the HTTP server lets in-flight
			// requests finish, up to 10s), then the table loader and the
			// load reporter; deferred above: idle connections, telemetry
			// flushed, Redis closed.
			return runBeside(ctx, func(ctx context.Context) error { return serveScoring(ctx, ln, router, logger) }, serveMetrics)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", defaultScoringAddr, "address to serve /v2 on")
	fl.StringVar(&redisURL, "redis-url", "", redisURLHelp)
	fl.StringVar(&redisCA, "redis-ca-file", "", "CA certificate (PEM) that signed a rediss:// server's certificate")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&cfg.ID, "id", "", "this router's name in its load reports (default host name and process ID)")
	fl.DurationVar(&cfg.HoldTimeout, "hold-timeout", 0, "how long a request to a deployment scaled to zero is held while a replica starts (default 30s)")
	fl.Int64Var(&maxBodyMB, "max-body-mb", 0, "largest request body, kept for a retry; larger is a 413 (default 64)")
	fl.Int64Var(&maxBufferedMB, "max-buffered-mb", 0, "request bodies held at once over all requests; past it a 503 with Retry-After (default 1024)")
	fl.DurationVar(&cfg.DefaultDeadline, "default-deadline", 0, "deadline of a request without a "+scoring.HeaderDeadline+" header (default 60s)")
	fl.StringVar(&metricsAddr, "metrics-addr", "", metricsAddrUsage)
	return cmd
}

// serveScoring serves router on ln and runs it until ctx is done.
func serveScoring(ctx context.Context, ln net.Listener, router *scoring.Router, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           router,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	eg, gctx := errgroup.WithContext(ctx)
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	eg.Go(func() error { return router.Run(runCtx) })
	eg.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("scoring: serve HTTP on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	eg.Go(func() error {
		<-gctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(shut); err != nil {
			srv.Close()
		}
		stopRun()
		return nil
	})
	logger.InfoContext(ctx, "scoring router listening", slog.String("addr", ln.Addr().String()))
	return eg.Wait()
}

// withScoring serves the router's /v2 beside the API (jobgate dev).
func withScoring(router http.Handler) func(http.Handler) http.Handler {
	return func(apiHandler http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v2/") {
				router.ServeHTTP(w, r)
				return
			}
			apiHandler.ServeHTTP(w, r)
		})
	}
}

// scoreCmd is `jobgate score NAME -d @req.json|'{...}'`.
func (c *cli) scoreCmd() *cobra.Command {
	var f connFlags
	var data, version, scoringURL string
	cmd := &cobra.Command{
		Use:   "score NAME -d @req.json|'{...}'",
		Short: "Send an inference request (V2 JSON) to a deployment and print the answer",
		Long: `Posts the request to /v2/models/NAME/infer (or /versions/V/infer) of the
scoring router, by default at the gateway's address (jobgate dev serves both),
and prints the model server's answer; stderr says which version served it.
-d @FILE reads the request from FILE, -d @- from stdin.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("score", func(ctx context.Context, args []string) error {
		body, err := readData(data, cmd.InOrStdin())
		if err != nil {
			return err
		}
		if scoringURL != "" {
			f.url = scoringURL
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		res, err := cl.ScoreVersion(ctx, args[0], version, body)
		if err != nil {
			return err
		}
		if res.ModelVersion != "" {
			fmt.Fprintf(c.stderr, "served by %s\n", res.ModelVersion)
		}
		out := res.Body
		if len(out) > 0 && out[len(out)-1] != '\n' && strings.HasPrefix(res.ContentType, "application/json") {
			out = append(out, '\n')
		}
		_, err = c.stdout.Write(out)
		return err
	})
	c.addConnFlags(cmd, &f)
	fl := cmd.Flags()
	fl.StringVarP(&data, "data", "d", "", "the request: JSON, @FILE, or @- for stdin (required)")
	fl.StringVar(&version, "version", "", "send to this model version of the deployment only")
	fl.StringVar(&scoringURL, "scoring-url", c.env("JOBGATE_SCORING_URL"), "scoring router base URL, when not the gateway's (env JOBGATE_SCORING_URL)")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}

// readData is -d's value: inline, @FILE, or @- for stdin.
func readData(d string, stdin io.Reader) ([]byte, error) {
	name, ok := strings.CutPrefix(d, "@")
	switch {
	case !ok:
		return []byte(d), nil
	case name == "-":
		return io.ReadAll(stdin)
	default:
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		return b, nil
	}
}
