// Package scoring is the scoring router: it serves the Open Inference
// Protocol (KServe V2) REST API for every deployment and passes each
// inference request, byte for byte, to one ready replica of it.
//
// The router keeps an in-memory routing table — per (workspace,
// deployment): the traffic targets and their ready replicas — reloaded from
// Redis when a worker or the controller publishes on queue.ChannelRouting
// (debounced) and on a timer, so the hot path reads no Redis; tokens are
// checked through a short-TTL cache (authcache). A replica is chosen by
// weighted random over the targets with a ready replica, then least
// outstanding requests among that target's replicas. A request whose
// replica fails before answering is retried once on another. A deployment
// that scales from zero has its requests held (the activator) while a
// replica starts. Every request has a server span named by its route and a
// client span for the upstream call, with W3C traceparent forwarded.
package scoring

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/authcache"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/traffic"
	"github.com/jobgate/jobgate/queue"
)

// DefaultWorkspace is the workspace of the system admin token.
const DefaultWorkspace = "default"

// Request and response headers of the router.
const (
	// HeaderDeadline is a request's deadline in milliseconds, for the hold
	// and the upstream call together; Config.DefaultDeadline without it.
	HeaderDeadline = "Jobgate-Deadline-Ms"
	// HeaderModelVersion says which version served: "iris:2".
	HeaderModelVersion = "Jobgate-Model-Version"
)

// Config configures a Router. The zero value works.
type Config struct {
	// ID names this router in its load reports; default the host name and
	// the process ID.
	ID string
	// AdminToken is the system admin token (workspace default, every
	// scope); empty: only issued tokens.
	AdminToken string
	// HoldTimeout is how long a request to a deployment scaled to zero is
	// held while a replica starts, before a 503; default 30s.
	HoldTimeout time.Duration
	// DefaultDeadline bounds a request without a Jobgate-Deadline-Ms header
	// (hold and upstream call); default 60s.
	DefaultDeadline time.Duration
	// MaxDeadline caps what a Jobgate-Deadline-Ms header may ask; default
	// 10m.
	MaxDeadline time.Duration
	// RefreshInterval is how often the table is reloaded without a
	// wake-up; default 1s.
	RefreshInterval time.Duration
	// Debounce is how long a wake-up waits for more before the reload;
	// default 5ms.
	Debounce time.Duration
	// ReportInterval is how often the load of each deployment is written
	// for the autoscaler; default 1s.
	ReportInterval time.Duration
	// MaxBodyBytes caps a request body (it is kept for a retry); default
	// 64 MiB, past it 413.
	MaxBodyBytes int64
	// MaxBufferedBytes caps the request bodies held at once, over every
	// request (held ones included); default 1 GiB, past it 503.
	MaxBufferedBytes int64
	// MaxIdleConnsPerHost is the idle keep-alive connections kept to each
	// replica; default 256 (Go's default of 2 makes every request past the
	// second concurrent one dial).
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to a replica; default 2s.
	DialTimeout time.Duration
	// TracerProvider and Propagator default to OpenTelemetry's globals
	// (telemetry.Setup).
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Metrics counts the inference requests by deployment, version and
	// code, with their latency; nil: off.
	Metrics *metrics.Scoring
	// MetricsGatherer, when set, is served on GET /metrics to AdminToken
	// only (workspace and deployment names are in the labels); nil: no
	// such route.
	MetricsGatherer prometheus.Gatherer
}

// Validate says what is wrong with cfg.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"hold timeout", c.HoldTimeout}, {"default deadline", c.DefaultDeadline}, {"max deadline", c.MaxDeadline},
		{"refresh interval", c.RefreshInterval}, {"report interval", c.ReportInterval}, {"debounce", c.Debounce}, {"dial timeout", c.DialTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("scoring: the %s must not be negative, not %s", d.name, d.v)
		}
	}
	if c.MaxBodyBytes < 0 || c.MaxBufferedBytes < 0 || c.MaxIdleConnsPerHost < 0 {
		return errors.New("scoring: the body limit and the idle connections per host must not be negative")
	}
	return nil
}

// routeStore is what the router reads and writes in Redis (store.Store).
type routeStore interface {
	DeploymentNames(ctx context.Context, ws string) ([][2]string, error)
	Deployment(ctx context.Context, ws, name string) (*store.DeploymentRecord, store.DeploymentState, error)
	ReplicaSlots(ctx context.Context, ws, name string) ([]store.ReplicaSlot, error)
	Endpoints(ctx context.Context, jobIDs ...string) ([]store.Endpoint, error)
	ReportLoad(ctx context.Context, ws, name, router string, l store.RouterLoad) error
}

// tokenCache checks issued tokens (authcache.Cache).
type tokenCache interface {
	Token(ctx context.Context, secret string) (*api.Token, error)
}

var (
	_ routeStore        = (*store.Store)(nil)
	_ tokenCache        = (*authcache.Cache)(nil)
	_ http.Handler      = (*Router)(nil)
	_ http.RoundTripper = (*retryTransport)(nil)
)

// Router is the scoring router. ServeHTTP serves the V2 API; Run keeps its
// table and reports its load.
type Router struct {
	cfg       Config
	rdb       redis.UniversalClient
	store     routeStore
	tokens    tokenCache
	logger    *slog.Logger
	adminHash [sha256.Size]byte
	tracer    trace.Tracer
	// served is the traced part of ServeHTTP (otelhttp's server span).
	served    http.Handler
	proxy     *httputil.ReverseProxy
	transport *http.Transport

	// table is the routing table; nil until the first load.
	table atomic.Pointer[table]
	// retried counts the requests sent again to another replica.
	retried atomic.Int64
	// buffered is the memory the request bodies held now take.
	buffered atomic.Int64
	// traffic counts each deployment's inference requests for the
	// gateway's deployment view; nil without Redis (benchmarks).
	traffic *traffic.Recorder
	// reportNow asks the reporter for a report at once (a request found no
	// ready replica).
	reportNow chan struct{}

	// mu guards the fields below.
	mu sync.Mutex
	// stats outlive table reloads: the load of each deployment, and the
	// outstanding requests of each replica.
	stats    map[depKey]*depStats
	replicas map[string]*replica
}

// New returns a Router over st (store.Store); tokens may be nil (one is
// made over st). Run must run for it to route anything.
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, tokens *authcache.Cache, logger *slog.Logger) (*Router, error) {
	var tc tokenCache = tokens
	if tokens == nil {
		tc = authcache.New(authcache.Config{}, st)
	}
	return newRouter(cfg, rdb, st, tc, logger)
}

func newRouter(cfg Config, rdb redis.UniversalClient, st routeStore, tokens tokenCache, logger *slog.Logger) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	cfg.ID = cmp.Or(cfg.ID, fmt.Sprintf("%s-%d", cmp.Or(host, "router"), os.Getpid()))
	cfg.HoldTimeout = cmp.Or(cfg.HoldTimeout, 30*time.Second)
	cfg.DefaultDeadline = cmp.Or(cfg.DefaultDeadline, 60*time.Second)
	cfg.MaxDeadline = cmp.Or(cfg.MaxDeadline, 10*time.Minute)
	cfg.RefreshInterval = cmp.Or(cfg.RefreshInterval, time.Second)
	cfg.Debounce = cmp.Or(cfg.Debounce, 5*time.Millisecond)
	cfg.ReportInterval = cmp.Or(cfg.ReportInterval, time.Second)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 64<<20)
	cfg.MaxBufferedBytes = max(cmp.Or(cfg.MaxBufferedBytes, 1<<30), cfg.MaxBodyBytes)
	cfg.MaxIdleConnsPerHost = cmp.Or(cfg.MaxIdleConnsPerHost, 256)
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, 2*time.Second)
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = otel.GetTextMapPropagator()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{cfg: cfg, rdb: rdb, store: st, tokens: tokens, logger: logger,
		tracer:    cfg.TracerProvider.Tracer("github.com/jobgate/jobgate/scoring"),
		reportNow: make(chan struct{}, 1), stats: map[depKey]*depStats{}, replicas: map[string]*replica{}}
	if rdb != nil {
		r.traffic = traffic.NewRecorder(rdb, logger)
	}
	if cfg.AdminToken != "" {
		r.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	r.transport = newTransport(cfg)
	upstream := otelhttp.NewTransport(r.transport,
		otelhttp.WithTracerProvider(cfg.TracerProvider),
		otelhttp.WithPropagators(cfg.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, req *http.Request) string {
			if rc := fromContext(req.Context()); rc != nil {
				return rc.route
			}
			return req.Method
		}))
	r.proxy = &httputil.ReverseProxy{
		Rewrite:        r.rewrite,
		Transport:      &retryTransport{r: r, next: upstream},
		ModifyResponse: r.modifyResponse,
		ErrorHandler:   r.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	r.served = otelhttp.NewHandler(http.HandlerFunc(r.serveTraced), "scoring",
		otelhttp.WithTracerProvider(cfg.TracerProvider),
		otelhttp.WithPropagators(cfg.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, req *http.Request) string {
			if rc := fromContext(req.Context()); rc != nil {
				return rc.route
			}
			return req.Method
		}))
	return r, nil
}

// newTransport is the tuned transport to the replicas: plain HTTP/1.1
// keep-alive, enough idle connections per replica for the concurrency it
// gets, bodies passed through as they are (no compression).
func newTransport(cfg Config) *http.Transport {
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no limit across replicas
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
		ExpectContinueTimeout: 0,
		// A replica runs a job's code: its headers are bounded as a
		// client's are (Go's default for a client is 10 MiB).
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// Close releases the idle connections to the replicas.
func (r *Router) Close() { r.transport.CloseIdleConnections() }

// Ready reports whether the routing table has been loaded.
func (r *Router) Ready() bool { return r.table.Load() != nil }

// Run keeps the routing table (reloaded on each queue.ChannelRouting
// wake-up, debounced, and every RefreshInterval) and reports the load of
// each deployment every ReportInterval, until ctx is done. It returns an
// error only when it cannot subscribe to the wake-ups.
func (r *Router) Run(ctx context.Context) error {
	waker, err := queue.NewWaker(ctx, r.rdb, queue.ChannelRouting)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("scoring: subscribe to %s: %w", queue.ChannelRouting, err)
	}
	defer waker.Close()
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { r.loadLoop(ctx, waker); return nil })
	eg.Go(func() error { r.reportLoop(ctx); return nil })
	if r.traffic != nil {
		eg.Go(func() error { r.traffic.Run(ctx, time.Second); return nil })
	}
	return eg.Wait()
}

// loadLoop reloads the table until ctx is done. The generation is taken
// before each load, so a wake-up during a load causes another.
func (r *Router) loadLoop(ctx context.Context, waker *queue.Waker) {
	for ctx.Err() == nil {
		gen := waker.Gen()
		if err := r.reload(ctx); err != nil && ctx.Err() == nil {
			r.logger.WarnContext(ctx, "scoring: load routing table", slog.Any("error", err))
		}
		if waker.Wait(ctx, gen, r.cfg.RefreshInterval) {
			// More wake-ups usually follow one (a rollout): take them in one load.
			t := time.NewTimer(r.cfg.Debounce)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// ServeHTTP serves the V2 API: health without a token or a span, every
// other route with a bearer token with the score scope and a server span.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/metrics" && r.cfg.MetricsGatherer != nil {
		r.serveMetrics(w, req)
		return
	}
	rt, ok := parseRoute(req.Method, req.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", req.Method, req.URL.Path)
		return
	}
	switch rt.kind {
	case routeLive:
		writeJSONBytes(w, http.StatusOK, []byte(`{"live":true}`))
		return
	case routeReady:
		if !r.Ready() {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "the scoring router has not loaded its routing table yet")
			return
		}
		writeJSONBytes(w, http.StatusOK, []byte(`{"ready":true}`))
		return
	case routeBadMethod:
		w.Header().Set("Allow", rt.allow)
		writeError(w, http.StatusMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", req.Method, req.URL.Path, rt.allow)
		return
	}
	r.serveRoute(w, req, &reqCtx{route: rt.pattern, rt: rt})
}

func (r *Router) serveRoute(w http.ResponseWriter, req *http.Request, rc *reqCtx) {
	if (r.cfg.Metrics != nil || r.traffic != nil) && rc.rt.kind == routeInfer {
		r.serveMeasured(w, req.WithContext(withReqCtx(req.Context(), rc)), rc)
		return
	}
	r.served.ServeHTTP(w, req.WithContext(withReqCtx(req.Context(), rc)))
}

// ServeInfer serves req, a POST /v2/models/{name}[/versions/{v}]/infer, for
// a caller the gateway has already authenticated in workspace ws (its
// "try it" route): no bearer token is read. Any other path is a 404.
func (r *Router) ServeInfer(w http.ResponseWriter, req *http.Request, ws string) {
	rt, ok := parseRoute(req.Method, req.URL.Path)
	if !ok || rt.kind != routeInfer {
		writeError(w, http.StatusNotFound, "no such inference endpoint: %s %s", req.Method, req.URL.Path)
		return
	}
	r.serveRoute(w, req, &reqCtx{route: rt.pattern, rt: rt, trusted: &principal{workspace: ws}})
}

// principal is who a request acts as.
type principal struct {
	workspace string
}

// authenticate resolves the bearer token: the system admin token (workspace
// default), or an issued one with the score or admin scope.
func (r *Router) authenticate(ctx context.Context, req *http.Request) (principal, int, string) {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return principal{}, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>"
	}
	if r.cfg.AdminToken != "" {
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], r.adminHash[:]) == 1 {
			return principal{workspace: DefaultWorkspace}, 0, ""
		}
	}
	t, err := r.tokens.Token(ctx, tok)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return principal{}, http.StatusUnauthorized, "invalid bearer token"
	case errors.Is(err, authcache.ErrExpired):
		return principal{}, http.StatusUnauthorized, fmt.Sprintf("token %s expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	case err != nil:
		r.logger.ErrorContext(ctx, "scoring: token lookup", slog.Any("error", err))
		return principal{}, http.StatusServiceUnavailable, "cannot check the token now; retry"
	}
	for _, s := range t.Scopes {
		if s == api.ScopeScore || s == api.ScopeAdmin {
			return principal{workspace: t.Workspace}, 0, ""
		}
	}
	return principal{}, http.StatusForbidden, fmt.Sprintf("this token lacks the %q scope", api.ScopeScore)
}
