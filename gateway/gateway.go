// Package gateway is jobgate's REST API (labstack/echo): authentication,
// job submission and queries (through the job service), log streaming,
// artifacts, tracking, triggers and schedules. It serves HTTP only: the
// components beside it (placement, the cron loop, the callback notifier, the
// log hub, the leader elector) are internal/control's, run by cmd/jobgate;
// the gateway reads from them. Any number of gateways may run against one
// Redis.
package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/authcache"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/cron"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/loghub"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
)

// DefaultAddr is where a Gateway listens unless Config.Addr says otherwise.
const DefaultAddr = "127.0.0.1:8080"

// Config configures a Gateway. Zero values get the defaults on each field.
type Config struct {
	// Addr to listen on; default DefaultAddr. Ignored when Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests, port 0).
	Listener net.Listener
	// AdminToken authenticates the default workspace's admin. Required.
	AdminToken string
	// MaxBodyBytes caps request bodies; default 1 MiB.
	MaxBodyBytes int64
	// MaxRunArtifactBytes caps what MLflow's artifact proxy stores for one
	// run, its files together; default 10 GiB, as a worker's
	// --max-output-mb. An upload is streamed, so only the artifact store's
	// disk is at stake, not the gateway's memory.
	MaxRunArtifactBytes int64
	// ShutdownTimeout for in-flight requests (log followers are cut); default 10s.
	ShutdownTimeout time.Duration
	// TLSCertFile and TLSKeyFile, when both set, make the API serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// DatastoreRoots are the absolute folders below which workspace admins
	// may register datastores: "/srv/data" for every workspace, or
	// "team-a=/srv/data/team-a" for one. The system admin may register any
	// absolute path. Empty: only the system admin registers datastores.
	DatastoreRoots []string
	// HostProcessDefault grants the workspace default allow_host_process
	// when Run starts (`jobgate dev` sets it; `jobgate gateway
	// --allow-host-process-default`). False leaves the record as it is: a
	// grant made through PATCH /v1/workspaces/default stays.
	HostProcessDefault bool
	// Around, when set, wraps the handler Run serves: `jobgate dev` serves
	// the scoring router's /v2 on the API's address with it.
	Around func(http.Handler) http.Handler
	// Scoring, when set, serves POST /v1/deployments/:name/infer in
	// process (`jobgate dev` gives its scoring router); nil: that route
	// answers 503.
	Scoring Inferer
	// TracerProvider, when set, gives every request but the health and
	// readiness probes a server span named by route (telemetry.Provider()
	// in cmd/jobgate). Nil: no tracing at all, at no cost.
	TracerProvider trace.TracerProvider
	// Metrics counts what the API sees (webhook deliveries); nil: off.
	Metrics *metrics.Control
	// MetricsGatherer, when set, is served on GET /metrics to the system
	// admin token only (workspace names are in the labels); nil: no such
	// route. cmd/jobgate gives the process's registry.
	MetricsGatherer prometheus.Gatherer
}

// Validate says what is wrong with cfg in words a person can act on.
func (c Config) Validate() error {
	if c.AdminToken == "" {
		return errors.New("gateway: an admin token is required (set JOBGATE_TOKEN)")
	}
	if len(c.AdminToken) < 16 {
		return errors.New("gateway: the admin token must be at least 16 characters")
	}
	if c.MaxRunArtifactBytes < 0 {
		return errors.New("gateway: --max-run-artifacts-mb must not be negative")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("gateway: --tls-cert and --tls-key go together")
	}
	for _, r := range c.DatastoreRoots {
		ws, root := splitRoot(r)
		if !filepath.IsAbs(root) || strings.IndexByte(root, 0) >= 0 {
			return fmt.Errorf("gateway: datastore root %q must be an absolute path, for one workspace as WORKSPACE=/path (--datastore-root /srv/data, --datastore-root team-a=/srv/data/team-a)", r)
		}
		if strings.HasPrefix(r, "=") || (ws != "" && !wsNameRE.MatchString(ws)) {
			return fmt.Errorf("gateway: datastore root %q: %q is not a workspace name", r, ws)
		}
	}
	return nil
}

// workerStates says what state a registered worker is in
// (placement.Scheduler).
type workerStates interface {
	WorkerState(w store.Worker, now time.Time) string
}

// scheduleFirer fires a schedule by hand under its firing lock (cron.Cron).
type scheduleFirer interface {
	Lock(ctx context.Context, sc *store.Schedule) (unlock func(), err error)
	Start(ctx context.Context, sc *store.Schedule, run store.ScheduleRun) (*api.Job, string, error)
}

// logFollower wakes log followers (loghub.Hub).
type logFollower interface {
	Follow(ctx context.Context, id string) (wake <-chan struct{}, stop func())
}

var (
	_ workerStates  = (*placement.Scheduler)(nil)
	_ scheduleFirer = (*cron.Cron)(nil)
	_ logFollower   = (*loghub.Hub)(nil)
)

// Gateway serves the REST API.
type Gateway struct {
	cfg       Config
	rdb       redis.UniversalClient
	store     *store.Store
	artifacts artifact.Store
	logger    *slog.Logger
	echo      *echo.Echo
	// handler is echo, wrapped in tracing when cfg.TracerProvider is set.
	handler http.Handler
	// jobs submits and cancels every job the API, triggers and schedules make.
	jobs *job.Service
	// sweeps runs the sweeps the API makes (internal/sweep).
	sweeps *sweep.Controller
	// workers says what state the workers view shows a worker in.
	workers workerStates
	// cron fires a schedule by hand (POST /v1/schedules/:name/run).
	cron scheduleFirer
	// logs wakes log followers (GET /v1/jobs/:id/logs?follow=true).
	logs    logFollower
	limiter *redis_rate.Limiter
	// secrets encrypts workspace secrets; nil disables the secrets API.
	secrets *secretbox.Box
	now     func() time.Time
	// rules holds every route's access rule, keyed "METHOD /path".
	rules   map[string]access
	wsCache workspaceCache
	// rest is the REST API's route group.
	rest *routeGroup
	// ln and tlsConfig are what Listen made for Run to serve (ln nil
	// before).
	ln        net.Listener
	tlsConfig *tls.Config
	// modelUsers says whether a model version is in use (by a deployment).
	modelUsers modelUsers

	// tokens caches issued tokens' lookups for authenticate.
	tokens *authcache.Cache

	// touchMu guards the field below.
	touchMu sync.Mutex
	touched map[string]time.Time
}

// New returns a Gateway over plane (control.New), whose job service it
// submits through and whose components it reads from; Run serves it, and
// the caller runs the plane's components. secrets may be nil: the secrets
// API then answers 503 (plane refuses jobs that use secrets).
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, arts artifact.Store, secrets *secretbox.Box, plane *control.Plane, logger *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Addr = cmp.Or(cfg.Addr, DefaultAddr)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 1<<20)
	cfg.MaxRunArtifactBytes = cmp.Or(cfg.MaxRunArtifactBytes, 10<<30)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 10*time.Second)
	cfg.DatastoreRoots = cleanRoots(cfg.DatastoreRoots)
	g := &Gateway{cfg: cfg, rdb: rdb, store: st, artifacts: arts, secrets: secrets, logger: logger, now: time.Now,
		limiter: redis_rate.NewLimiter(rdb), rules: map[string]access{}, touched: map[string]time.Time{},
		wsCache: workspaceCache{entries: map[string]cachedWorkspace{}},
		jobs:    plane.Jobs, sweeps: plane.Sweeps, workers: plane.Placement, cron: plane.Cron, logs: plane.Logs, modelUsers: deployedModels{st},
		tokens: authcache.New(authcache.Config{}, st)}
	g.routes()
	return g, nil
}

// Handler is the HTTP handler, for tests that drive it in-process.
func (g *Gateway) Handler() http.Handler { return g.handler }

func (g *Gateway) routes() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Errors: each route group renders its own (renderErrors, first in
	// every route's chain: the REST API's here, MLflow's in mlflowRoutes);
	// the handler and Recover below get what is left, the router's 404 and
	// 405 outside the groups, in the REST API's shape.
	e.HTTPErrorHandler = g.errorHandler
	e.Use(middleware.Recover())
	if g.cfg.TracerProvider != nil {
		e.Use(g.nameSpanByRoute)
	}
	g.echo, g.handler = e, g.traced(e)
	g.rest = g.newGroup(restErrors{})

	public := access{Public: true}
	g.route(http.MethodGet, "/healthz", public, func(c echo.Context) error { return c.JSON(http.StatusOK, api.Health{Status: "ok"}) })
	g.route(http.MethodGet, "/readyz", public, g.readyz)
	g.route(http.MethodGet, "/v1/openapi.json", public, g.openAPI("json"))
	g.route(http.MethodGet, "/v1/openapi.yaml", public, g.openAPI("yaml"))
	if g.cfg.MetricsGatherer != nil {
		g.route(http.MethodGet, "/metrics", access{System: true}, echo.WrapHandler(metrics.Handler(g.cfg.MetricsGatherer)))
	}

	read, submit, admin := access{Scope: api.ScopeRead}, access{Scope: api.ScopeSubmit}, access{Scope: api.ScopeAdmin}
	// What a job's own token (JOBGATE_JOB_TOKEN) may do, in its job tree.
	jobRead, jobSubmit := access{Scope: api.ScopeRead, Job: true}, access{Scope: api.ScopeSubmit, Job: true}
	g.route(http.MethodPost, "/v1/jobs", jobSubmit, g.submitJob)
	g.route(http.MethodGet, "/v1/jobs", read, g.listJobs)
	g.route(http.MethodGet, "/v1/jobs/:id", jobRead, g.getJob)
	g.route(http.MethodPost, "/v1/jobs/:id/cancel", jobSubmit, g.cancelJob)
	g.route(http.MethodPost, "/v1/jobs/:id/exec", submit, g.execJob)
	g.route(http.MethodGet, "/v1/jobs/:id/logs", jobRead, g.jobLogs)
	g.route(http.MethodGet, "/v1/jobs/:id/artifacts", jobRead, g.listArtifacts)
	g.route(http.MethodGet, "/v1/jobs/:id/artifacts/*", jobRead, g.getArtifact)
	g.route(http.MethodGet, "/v1/jobs/:id/metrics", jobRead, g.jobMetrics)
	g.route(http.MethodPost, "/v1/jobs/:id/metrics", jobSubmit, g.postMetrics)
	g.route(http.MethodPost, "/v1/jobs/:id/params", jobSubmit, g.postParams)
	g.route(http.MethodPost, "/v1/jobs/:id/tags", jobSubmit, g.postTags)
	g.route(http.MethodGet, "/v1/workers", read, g.listWorkers)
	g.route(http.MethodGet, "/v1/queue", read, g.getQueue)
	g.route(http.MethodGet, "/v1/jobs/:id/children", jobRead, g.jobChildren)
	g.mlflowRoutes(jobRead, jobSubmit)
	g.route(http.MethodGet, "/v1/experiments", read, g.listExperiments)
	g.route(http.MethodGet, "/v1/experiments/:name/jobs", read, g.experimentJobs)

	// -- the model registry (issue 12) --
	g.route(http.MethodPost, "/v1/models", submit, g.registerModel)
	g.route(http.MethodGet, "/v1/models", read, g.listModels)
	g.route(http.MethodGet, "/v1/models/:name", read, g.getModel)
	g.route(http.MethodGet, "/v1/models/:name/versions/:v", read, g.getModelVersion)
	g.route(http.MethodGet, "/v1/models/:name/versions/:v/download", read, g.downloadModelVersion)
	g.route(http.MethodDelete, "/v1/models/:name", submit, g.deleteModel)
	g.route(http.MethodDelete, "/v1/models/:name/versions/:v", submit, g.deleteModelVersion)
	g.route(http.MethodPut, "/v1/models/:name/aliases/:alias", submit, g.setModelAlias)
	g.route(http.MethodDelete, "/v1/models/:name/aliases/:alias", submit, g.deleteModelAlias)

	// -- deployments (issue 12) --
	g.route(http.MethodPost, "/v1/deployments", submit, g.createDeployment)
	g.route(http.MethodGet, "/v1/deployments", read, g.listDeployments)
	g.route(http.MethodGet, "/v1/deployments/:name", read, g.getDeployment)
	g.route(http.MethodPatch, "/v1/deployments/:name", submit, g.patchDeployment)
	g.route(http.MethodDelete, "/v1/deployments/:name", submit, g.deleteDeployment)
	g.route(http.MethodPost, "/v1/deployments/:name/infer", submit, g.inferDeployment)

	// -- batches (issue 13) --
	g.route(http.MethodPost, "/v1/deployments/:name/batch", access{Scope: api.ScopeSubmit, Stream: true}, g.submitBatch)
	g.route(http.MethodGet, "/v1/batches/:id", read, g.getBatch)
	g.route(http.MethodPost, "/v1/batches/:id/cancel", submit, g.cancelBatch)
	g.route(http.MethodGet, "/v1/batches/:id/results", read, g.batchResults)

	// -- sweeps (issue 17) --
	g.route(http.MethodPost, "/v1/sweeps", submit, g.createSweep)
	g.route(http.MethodGet, "/v1/sweeps", read, g.listSweeps)
	g.route(http.MethodGet, "/v1/sweeps/:id", read, g.getSweep)
	g.route(http.MethodGet, "/v1/sweeps/:id/trials", read, g.sweepTrials)
	g.route(http.MethodPost, "/v1/sweeps/:id/cancel", submit, g.cancelSweep)

	g.route(http.MethodPost, "/v1/workspaces", access{System: true}, g.createWorkspace)
	g.route(http.MethodGet, "/v1/workspaces", read, g.listWorkspaces)
	g.route(http.MethodPatch, "/v1/workspaces/:ws", access{System: true}, g.updateWorkspace)
	g.route(http.MethodPost, "/v1/workspaces/:ws/tokens", admin, g.createToken)
	g.route(http.MethodGet, "/v1/workspaces/:ws/tokens", admin, g.listTokens)
	g.route(http.MethodDelete, "/v1/workspaces/:ws/tokens/:id", admin, g.deleteToken)
	g.route(http.MethodPost, "/v1/secrets", admin, g.putSecret)
	g.route(http.MethodGet, "/v1/secrets", admin, g.listSecrets)
	g.route(http.MethodDelete, "/v1/secrets/:name", admin, g.deleteSecret)
	g.route(http.MethodGet, "/v1/audit", admin, g.auditLog)
	g.route(http.MethodPost, "/v1/datastores", admin, g.createDatastore)
	g.route(http.MethodGet, "/v1/datastores", read, g.listDatastores)
	g.route(http.MethodGet, "/v1/datastores/:name", read, g.getDatastore)
	g.route(http.MethodDelete, "/v1/datastores/:name", admin, g.deleteDatastore)

	// -- triggers (issue 6) --
	g.route(http.MethodPost, "/v1/triggers", admin, g.createTrigger)
	g.route(http.MethodGet, "/v1/triggers", read, g.listTriggers)
	g.route(http.MethodGet, "/v1/triggers/:name", read, g.getTrigger)
	g.route(http.MethodPatch, "/v1/triggers/:name", admin, g.patchTrigger)
	g.route(http.MethodDelete, "/v1/triggers/:name", admin, g.deleteTrigger)
	g.route(http.MethodGet, "/v1/triggers/:name/deliveries", read, g.triggerDeliveries)
	g.route(http.MethodPost, "/hooks/:id", public, g.receiveHook) // authenticated by signature

	// -- schedules (issue 6) --
	g.route(http.MethodPost, "/v1/schedules", submit, g.createSchedule)
	g.route(http.MethodGet, "/v1/schedules", read, g.listSchedules)
	g.route(http.MethodGet, "/v1/schedules/:name", read, g.getSchedule)
	g.route(http.MethodPatch, "/v1/schedules/:name", submit, g.patchSchedule)
	g.route(http.MethodDelete, "/v1/schedules/:name", submit, g.deleteSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/pause", submit, g.pauseSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/resume", submit, g.resumeSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/run", submit, g.runSchedule)
	g.route(http.MethodGet, "/v1/schedules/:name/history", read, g.scheduleHistory)

	// -- the web portal (issue 16) --
	g.portalRoutes()
}

// limitBody caps every request body; reading past the cap yields a 413.
func (g *Gateway) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > g.cfg.MaxBodyBytes {
			return api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", g.cfg.MaxBodyBytes)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, g.cfg.MaxBodyBytes)
		return next(c)
	}
}

// readyz answers 503 when Redis does not answer a PING within 750 ms: well
// within the 1 s a worker cut off from Redis gives this answer before it
// stops its jobs (worker/fence.go), so that a Redis that is away for
// everyone (a restart, a host down) reads as that, not as "ready".
func (g *Gateway) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 750*time.Millisecond)
	defer cancel()
	if err := g.store.Ping(ctx); err != nil {
		return api.Errorf(api.CodeUnavailable, "redis is not reachable")
	}
	return c.JSON(http.StatusOK, api.Health{Status: "ready"})
}

// ensureDefaultWorkspace creates the workspace default, and grants it
// allow_host_process when the configuration says so.
func (g *Gateway) ensureDefaultWorkspace(ctx context.Context) error {
	w := api.Workspace{Name: DefaultWorkspace, AllowHostProcess: g.cfg.HostProcessDefault, CreatedAt: g.now().UTC()}
	if err := g.store.EnsureWorkspace(ctx, w); err != nil {
		return fmt.Errorf("create default workspace: %w", err)
	}
	if !g.cfg.HostProcessDefault {
		return nil
	}
	cur, err := g.store.Workspace(ctx, DefaultWorkspace)
	if err != nil {
		return fmt.Errorf("read default workspace: %w", err)
	}
	if cur.AllowHostProcess {
		return nil
	}
	if _, err := g.store.SetWorkspaceHostProcess(ctx, DefaultWorkspace, true); err != nil {
		return fmt.Errorf("grant default workspace host processes: %w", err)
	}
	g.auditAs(ctx, DefaultWorkspace, "gateway-config", "workspace.update", DefaultWorkspace+": allow_host_process=true")
	return nil
}

// Listen readies the gateway to serve: it loads the TLS certificate and key
// (an error when they do not load), listens (or takes cfg.Listener) and
// makes the default workspace. Run calls it when it was not called; a
// process calls it first, so that a gateway that cannot serve fails before
// anything beside it (the controllers, the elector) starts, as it did while
// Run ran them.
func (g *Gateway) Listen(ctx context.Context) error {
	var tlsConfig *tls.Config
	if g.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLSCertFile, g.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("gateway: TLS certificate %s with key %s: %w", g.cfg.TLSCertFile, g.cfg.TLSKeyFile, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln := g.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", g.cfg.Addr, err)
		}
	}
	if err := g.ensureDefaultWorkspace(ctx); err != nil {
		ln.Close()
		return err
	}
	g.ln, g.tlsConfig = ln, tlsConfig
	return nil
}

// Run serves HTTP until ctx is done or serving fails, and returns the
// failure. A TLS certificate and key that do not load are an error before
// it listens (see Listen, which it calls unless the caller did). When ctx
// is done it stops accepting requests and lets in-flight ones finish
// (ShutdownTimeout; log followers are cut), then returns.
func (g *Gateway) Run(ctx context.Context) error {
	if g.ln == nil {
		if err := g.Listen(ctx); err != nil {
			return err
		}
	}
	ln, tlsConfig := g.ln, g.tlsConfig
	// The scoring router's /v2 (Around) is outside the gateway's tracing:
	// the router names its own spans.
	handler := g.handler
	if g.cfg.Around != nil {
		handler = g.cfg.Around(handler)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		// Log follows lift this for themselves (they stream for as long as
		// the job runs); every other answer must be written within it.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		TLSConfig:      tlsConfig,
	}
	// Serving failing ends Run as ctx ending does.
	eg, parts := errgroup.WithContext(ctx)
	eg.Go(func() error {
		serve := func() error { return srv.Serve(ln) }
		if tlsConfig != nil {
			serve = func() error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: serve HTTP on %s: %w", ln.Addr(), err)
		}
		return nil
	})
	eg.Go(func() error {
		<-parts.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shut); err != nil {
			srv.Close()
		}
		return nil
	})
	g.logger.InfoContext(ctx, "gateway listening", slog.String("addr", ln.Addr().String()))
	return eg.Wait()
}
