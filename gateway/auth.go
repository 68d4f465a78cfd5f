package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/authcache"
	"github.com/jobgate/jobgate/internal/store"
)

// DefaultWorkspace holds everything the system admin token creates.
const DefaultWorkspace = "default"

// TokenPrefix starts every token jobgate issues, so secret scanners can find
// leaked ones.
const TokenPrefix = "jgt_"

// principal is who a request acts as.
type principal struct {
	Workspace string
	// Actor names the token in the audit log.
	Actor   string
	TokenID string
	Scopes  []api.Scope
	// System is the system admin (JOBGATE_TOKEN): every scope in every
	// workspace, and the only one who creates workspaces.
	System bool
	// JobID is set for a job token (JOBGATE_JOB_TOKEN): it reaches only
	// routes that allow job tokens, and only that job and its descendants.
	JobID string
}

// can reports whether p holds scope; admin implies every other scope.
func (p principal) can(s api.Scope) bool {
	return p.System || slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, api.ScopeAdmin)
}

const principalKey = "jobgate.principal"

func principalOf(c echo.Context) principal {
	p, _ := c.Get(principalKey).(principal)
	return p
}

// access is the rule of one route: who may call it.
type access struct {
	// Scope the caller's token needs in its workspace.
	Scope api.Scope
	// System: only the system admin.
	System bool
	// Public: no token at all.
	Public bool
	// Job: a job's own token may call it too (for that job's tree only).
	Job bool
	// Stream: the handler caps its body itself (a JSON-lines upload of
	// any size), not limitBody.
	Stream bool
}

// route registers a REST API handler with its access rule.
func (g *Gateway) route(method, path string, rule access, h echo.HandlerFunc) {
	g.rest.route(method, path, rule, h)
}

// routeGroup is a set of routes that answer errors in one dialect: each
// route's chain starts with the group's renderer, so what the handler and
// the middleware after it return is written in the group's shape.
type routeGroup struct {
	g      *Gateway
	errors errorRenderer
	// paths holds the group's paths, for its own 404 and 405.
	paths map[string][]string
}

func (g *Gateway) newGroup(r errorRenderer) *routeGroup {
	return &routeGroup{g: g, errors: r, paths: map[string][]string{}}
}

// route registers a handler with its access rule; every route goes through
// here, and the isolation test fails for a route without a rule.
func (rg *routeGroup) route(method, path string, rule access, h echo.HandlerFunc) {
	g := rg.g
	g.rules[method+" "+path] = rule
	rg.paths[path] = append(rg.paths[path], method)
	chain := []echo.MiddlewareFunc{g.renderErrors(rg.errors),
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableErrorHandler: true})}
	if !rule.Stream {
		chain = append(chain, g.limitBody)
	}
	if !rule.Public {
		chain = append(chain, g.authenticate, g.authorize(rule), g.rateLimit)
	}
	g.echo.Add(method, path, h, chain...)
}

// notFound answers the paths under prefix that no route of the group
// serves in the group's dialect: a 404, or a 405 for a path of the group
// called with another method. (echo's RouteNotFound would take the 405s
// of the group's paths for 404s.)
func (rg *routeGroup) notFound(prefix string) {
	rg.g.rules[echo.RouteNotFound+" "+prefix+"*"] = access{Public: true}
	rg.g.echo.RouteNotFound(prefix+"*", func(c echo.Context) error {
		if methods, ok := rg.paths[c.Request().URL.Path]; ok {
			// As echo's router answers a path it serves: OPTIONS is a 204,
			// and Allow names OPTIONS first, then the methods in its order.
			c.Response().Header().Set(echo.HeaderAllow, allowHeader(methods))
			if c.Request().Method == http.MethodOptions {
				return c.NoContent(http.StatusNoContent)
			}
			return echo.ErrMethodNotAllowed
		}
		return echo.ErrNotFound
	}, rg.g.renderErrors(rg.errors))
}

// allowHeader is the Allow header echo's router writes for a path served
// with methods: OPTIONS, then the methods in echo's order.
func allowHeader(methods []string) string {
	out := []string{http.MethodOptions}
	for _, m := range []string{http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch,
		http.MethodPost, "PROPFIND", http.MethodPut, http.MethodTrace, "REPORT"} {
		if slices.Contains(methods, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// authenticate resolves the bearer token to a principal. The system token is
// compared by hash in constant time; issued tokens are looked up by the hash
// of their secret (only hashes are stored), through a cache that keeps an
// answer for at most a second (authcache).
func (g *Gateway) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		// A call the web portal's /ui/api mirror passes on carries its
		// session in the request's context (only the gateway itself can put
		// it there), not a bearer token.
		if s, ok := ctx.Value(portalSessionKey{}).(*portalSession); ok {
			p, err := g.sessionPrincipal(ctx, s)
			if err != nil {
				return err
			}
			c.Set(principalKey, p)
			return next(c)
		}
		tok, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			return api.Errorf(api.CodeUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
		}
		p, err := g.principalFor(ctx, tok)
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// principalFor resolves a token secret to the principal it acts as: the
// system token, compared by hash in constant time; a job token, while its
// attempt runs; an issued token, looked up by the hash of its secret.
func (g *Gateway) principalFor(ctx context.Context, tok string) (principal, error) {
	want := sha256.Sum256([]byte(g.cfg.AdminToken))
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
		return principal{Workspace: DefaultWorkspace, Actor: "system-admin", System: true}, nil
	}
	if strings.HasPrefix(tok, store.JobTokenPrefix) {
		jt, err := g.store.JobTokenBySecret(ctx, tok)
		if errors.Is(err, store.ErrNotFound) {
			return principal{}, api.Errorf(api.CodeUnauthorized, "invalid or expired job token (a job token works only while its attempt runs)")
		}
		if err != nil {
			return principal{}, err
		}
		// The token is its attempt's: once that attempt is over (its
		// worker lost, say, and the job requeued), it is dead too.
		j, err := g.store.GetJobByID(ctx, jt.JobID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return principal{}, err
		}
		if err != nil || j.Status != api.StatusRunning || j.Attempt != jt.Attempt {
			return principal{}, api.Errorf(api.CodeUnauthorized, "job token of an attempt that is no longer running")
		}
		return principal{Workspace: jt.Workspace, Actor: "job:" + jt.JobID, JobID: jt.JobID,
			Scopes: []api.Scope{api.ScopeRead, api.ScopeSubmit}}, nil
	}
	// From the short-TTL cache: a revoked token stops within 2s.
	t, err := g.tokens.Token(ctx, tok)
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, api.Errorf(api.CodeUnauthorized, "invalid bearer token")
	}
	if err != nil && !errors.Is(err, authcache.ErrExpired) {
		return principal{}, err
	}
	return g.issuedPrincipal(ctx, t)
}

// issuedPrincipal is the principal of issued token t, unless it expired.
func (g *Gateway) issuedPrincipal(ctx context.Context, t *api.Token) (principal, error) {
	now := g.now()
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return principal{}, api.Errorf(api.CodeUnauthorized, "token %s expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	g.touch(ctx, t.ID, now)
	return principal{Workspace: t.Workspace, Actor: t.Name, TokenID: t.ID, Scopes: t.Scopes}, nil
}

// touch records a token's last use at most once a minute per gateway, so
// authentication does not add a write to every request.
func (g *Gateway) touch(ctx context.Context, id string, now time.Time) {
	g.touchMu.Lock()
	last, ok := g.touched[id]
	if ok && now.Sub(last) < time.Minute {
		g.touchMu.Unlock()
		return
	}
	g.touched[id] = now
	g.touchMu.Unlock()
	_ = g.store.TouchToken(ctx, id, now)
}

func (g *Gateway) authorize(rule access) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := principalOf(c)
			switch {
			case rule.System && !p.System:
				return api.Errorf(api.CodeForbidden, "only the system admin token may do this")
			case rule.Scope != "" && !p.can(rule.Scope):
				return api.Errorf(api.CodeForbidden, "this token lacks the %q scope", rule.Scope)
			case p.JobID != "" && !rule.Job:
				return api.Errorf(api.CodeForbidden, "a job token may not do this (it reaches only its own job and the jobs it started)")
			}
			if id := c.Param("id"); p.JobID != "" && id != "" {
				if err := g.checkJobTree(c.Request().Context(), p, id); err != nil {
					return err
				}
			}
			return next(c)
		}
	}
}

// checkJobTree lets a job token reach job id only when it is the token's
// job or one of its descendants; any other principal passes.
func (g *Gateway) checkJobTree(ctx context.Context, p principal, id string) error {
	if p.JobID == "" {
		return nil
	}
	ok, err := g.store.IsInJobTree(ctx, p.JobID, id)
	if err != nil {
		return err
	}
	if !ok {
		return api.Errorf(api.CodeForbidden, "job %s is not this job token's job (%s) or one of its descendants", id, p.JobID)
	}
	return nil
}

// rateLimit enforces the workspace's requests_per_second across all gateways
// (GCRA in Redis), answering 429 with Retry-After.
func (g *Gateway) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := principalOf(c)
		if p.System {
			return next(c)
		}
		ctx := c.Request().Context()
		ws, err := g.workspaceCached(ctx, p.Workspace)
		if err != nil || ws.Quotas.RequestsPerSecond <= 0 {
			return next(c)
		}
		res, err := g.limiter.Allow(ctx, "jobgate:ratelimit:"+p.Workspace, redis_rate.PerSecond(ws.Quotas.RequestsPerSecond))
		if err != nil {
			return err
		}
		if res.Allowed == 0 {
			secs := int(math.Ceil(res.RetryAfter.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			return api.Errorf(api.CodeRateLimited,
				"workspace %s is limited to %d requests per second; retry after %s", p.Workspace, ws.Quotas.RequestsPerSecond, res.RetryAfter.Round(time.Millisecond))
		}
		return next(c)
	}
}

// workspaceCache keeps workspace records for a second: quotas are read on
// every request, and a change may take that long to apply.
type workspaceCache struct {
	// mu guards the field below.
	mu      sync.Mutex
	entries map[string]cachedWorkspace
}

type cachedWorkspace struct {
	ws *api.Workspace
	at time.Time
}

func (g *Gateway) workspaceCached(ctx context.Context, name string) (*api.Workspace, error) {
	now := g.now()
	g.wsCache.mu.Lock()
	e, ok := g.wsCache.entries[name]
	g.wsCache.mu.Unlock()
	if ok && now.Sub(e.at) < time.Second {
		return e.ws, nil
	}
	ws, err := g.store.Workspace(ctx, name)
	if err != nil {
		return nil, err
	}
	g.wsCache.mu.Lock()
	g.wsCache.entries[name] = cachedWorkspace{ws: ws, at: now}
	g.wsCache.mu.Unlock()
	return ws, nil
}

// newTokenSecret is TokenPrefix and 160 random bits, lower-case base32.
func newTokenSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%x", prefix, b)
}

// audit records an action of the request's principal in ws. A failure to
// record is logged, not returned: the action already happened.
func (g *Gateway) audit(c echo.Context, ws, action, target string) {
	g.auditAs(c.Request().Context(), ws, principalOf(c).Actor, action, target)
}

// auditAs records an action of actor in ws.
func (g *Gateway) auditAs(ctx context.Context, ws, actor, action, target string) {
	e := api.AuditEntry{Time: g.now().UTC(), Workspace: ws, Actor: actor, Action: action, Target: target}
	if err := g.store.Audit(ctx, e); err != nil {
		g.logger.ErrorContext(ctx, "audit", "action", action, "error", err)
	}
}
