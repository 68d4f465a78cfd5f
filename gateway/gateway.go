// Package gateway is jobgate's REST API (labstack/echo): authentication,
// validation, job submission and queries, log streaming, and the scheduler
// that places queued jobs on workers. Any number of gateways may run against
// one Redis; one of them at a time leads the scheduler.
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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
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
	// DefaultTimeoutSeconds for jobs that set none; default 3600.
	DefaultTimeoutSeconds int
	// MaxTimeoutSeconds a job may ask for; default 7 days.
	MaxTimeoutSeconds int
	// MaxRetries a job may ask for; default 10.
	MaxRetries int
	// SchedulerID names this gateway in the scheduler election; default host-pid.
	SchedulerID string
	// WorkerLostAfter is the heartbeat silence after which a worker's jobs are
	// recovered; default 15s.
	WorkerLostAfter time.Duration
	// ShutdownTimeout for in-flight requests (log followers are cut); default 10s.
	ShutdownTimeout time.Duration
	// TLSCertFile and TLSKeyFile, when both set, make the API serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// CallbackPolicy says which addresses completion callbacks and other
	// outbound calls may reach; the zero value refuses loopback, link-local
	// and private addresses (`jobgate dev` allows loopback).
	CallbackPolicy webhook.AddressPolicy
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
}

// Validate says what is wrong with cfg in words a person can act on.
func (c Config) Validate() error {
	if c.AdminToken == "" {
		return errors.New("gateway: an admin token is required (set JOBGATE_TOKEN)")
	}
	if len(c.AdminToken) < 16 {
		return errors.New("gateway: the admin token must be at least 16 characters")
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

// Gateway serves the REST API and runs the scheduler.
type Gateway struct {
	cfg       Config
	rdb       redis.UniversalClient
	store     *store.Store
	artifacts artifact.Store
	logger    *slog.Logger
	echo      *echo.Echo
	sched     *Scheduler
	notify    *notifier
	// logs wakes log followers (GET /v1/jobs/:id/logs?follow=true).
	logs    *logHub
	limiter *redis_rate.Limiter
	// secrets encrypts workspace secrets; nil disables the secrets API.
	secrets *secretbox.Box
	now     func() time.Time
	// rules holds every route's access rule, keyed "METHOD /path".
	rules   map[string]access
	wsCache workspaceCache
	// rest is the REST API's route group.
	rest *routeGroup

	// touchMu guards the field below.
	touchMu sync.Mutex
	touched map[string]time.Time
}

// New returns a Gateway; Run serves it.
// secrets may be nil: the secrets API then answers 503 and jobs that use
// secrets are refused.
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, arts artifact.Store, secrets *secretbox.Box, logger *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var err error
	cfg.Addr = cmp.Or(cfg.Addr, DefaultAddr)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 1<<20)
	cfg.DefaultTimeoutSeconds = cmp.Or(cfg.DefaultTimeoutSeconds, 3600)
	cfg.MaxTimeoutSeconds = cmp.Or(cfg.MaxTimeoutSeconds, 7*24*3600)
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, 10)
	cfg.SchedulerID = cmp.Or(cfg.SchedulerID, fmt.Sprintf("%s-%d", host, os.Getpid()))
	cfg.WorkerLostAfter = cmp.Or(cfg.WorkerLostAfter, 15*time.Second)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 10*time.Second)
	cfg.DatastoreRoots = cleanRoots(cfg.DatastoreRoots)
	g := &Gateway{cfg: cfg, rdb: rdb, store: st, artifacts: arts, secrets: secrets, logger: logger, now: time.Now,
		limiter: redis_rate.NewLimiter(rdb), rules: map[string]access{}, touched: map[string]time.Time{},
		wsCache: workspaceCache{entries: map[string]cachedWorkspace{}}, logs: newLogHub(rdb, logger)}
	g.sched = NewScheduler(SchedulerConfig{ID: cfg.SchedulerID, WorkerLostAfter: cfg.WorkerLostAfter},
		rdb, st, asynq.NewClientFromRedisClient(rdb), logger)
	if g.notify, err = newNotifier(g, webhook.SenderConfig{}); err != nil {
		return nil, err
	}
	g.routes()
	return g, nil
}

// Handler is the HTTP handler, for tests that drive it in-process.
func (g *Gateway) Handler() http.Handler { return g.echo }

func (g *Gateway) routes() {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Errors: each route group renders its own (renderErrors, first in
	// every route's chain: the REST API's here, MLflow's in mlflowRoutes);
	// the handler and Recover below get what is left, the router's 404 and
	// 405 outside the groups, in the REST API's shape.
	e.HTTPErrorHandler = g.errorHandler
	e.Use(middleware.Recover())
	g.echo = e
	g.rest = g.newGroup(restErrors{})

	public := access{Public: true}
	g.route(http.MethodGet, "/healthz", public, func(c echo.Context) error { return c.JSON(http.StatusOK, api.Health{Status: "ok"}) })
	g.route(http.MethodGet, "/readyz", public, g.readyz)

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
	g.route(http.MethodGet, "/v1/jobs/:id/children", jobRead, g.jobChildren)
	g.mlflowRoutes(jobRead, jobSubmit)
	g.route(http.MethodGet, "/v1/experiments", read, g.listExperiments)
	g.route(http.MethodGet, "/v1/experiments/:name/jobs", read, g.experimentJobs)

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
	g.route(http.MethodDelete, "/v1/triggers/:name", admin, g.deleteTrigger)
	g.route(http.MethodGet, "/v1/triggers/:name/deliveries", read, g.triggerDeliveries)
	g.route(http.MethodPost, "/hooks/:id", public, g.receiveHook) // authenticated by signature

	// -- schedules (issue 6) --
	g.route(http.MethodPost, "/v1/schedules", submit, g.createSchedule)
	g.route(http.MethodGet, "/v1/schedules", read, g.listSchedules)
	g.route(http.MethodGet, "/v1/schedules/:name", read, g.getSchedule)
	g.route(http.MethodDelete, "/v1/schedules/:name", submit, g.deleteSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/pause", submit, g.pauseSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/resume", submit, g.resumeSchedule)
	g.route(http.MethodPost, "/v1/schedules/:name/run", submit, g.runSchedule)
	g.route(http.MethodGet, "/v1/schedules/:name/history", read, g.scheduleHistory)
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

func (g *Gateway) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
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

// Run serves HTTP and runs the scheduler until ctx is done or one of its
// parts fails, and returns the first failure. A TLS certificate and key
// that do not load are an error before it listens. Shutdown order: stop
// accepting requests and let in-flight ones finish (ShutdownTimeout), then
// stop the scheduler, the callback notifier and the schedules loop, and give
// up the scheduler lease.
func (g *Gateway) Run(ctx context.Context) error {
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
	srv := &http.Server{
		Handler:           g.echo,
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
	if err := g.ensureDefaultWorkspace(ctx); err != nil {
		ln.Close()
		return err
	}
	// The loops get a context of their own, canceled only once HTTP is
	// down; the first part to fail cancels parts (and so the rest).
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSched()
	eg, parts := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.sched.Run(schedCtx) })
	eg.Go(func() error { return g.notify.Run(schedCtx) })
	eg.Go(func() error { return g.runSchedules(schedCtx) })
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
		stopSched()
		return nil
	})
	g.logger.InfoContext(ctx, "gateway listening", slog.String("addr", ln.Addr().String()))
	return eg.Wait()
}
