package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// The web portal (/ui/): static pages embedded in the binary, a session
// cookie made from a token, and /ui/api, a mirror of the REST API that
// serves each call exactly as /v1 would for the session's token.

//go:embed ui
var uiFS embed.FS

const (
	portalCookie = "jobgate_session"
	portalTTL    = 12 * time.Hour
	csrfHeader   = "X-CSRF-Token"
	// portalCSP allows only the gateway's own scripts, styles and calls:
	// no inline script or style, no framing.
	portalCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

// portalSession is a session as Redis keeps it. It holds the hash of the
// token it was made from, never the token: the token is looked up (and so
// revoked, expired or changed) on every call.
type portalSession struct {
	TokenHash string `json:"token_hash"`
	CSRF      string `json:"csrf"`
}

// portalSessionKey carries a session in a request's context from the
// /ui/api mirror to authenticate.
type portalSessionKey struct{}

func portalSessionRedisKey(id string) string {
	// Keyed by the id's hash, so a copy of Redis holds no usable cookie.
	return "jobgate:portal:session:" + store.HashToken(id)
}

// uiAsset is an embedded file with what its answers need.
type uiAsset struct {
	body        []byte
	etag        string
	contentType string
}

// uiAssets holds every file under ui/, by path below it ("js/app.js").
var uiAssets = loadUIAssets()

func loadUIAssets() map[string]uiAsset {
	out := map[string]uiAsset{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "ui/")] = uiAsset{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: uiContentType(p)}
		return nil
	})
	if err != nil {
		panic("gateway: embedded portal files: " + err.Error())
	}
	return out
}

// uiContentType names the types the portal serves itself: the system's
// MIME table may lack .mjs, and modules must be text/javascript.
func uiContentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".png":
		return "image/png"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// portalRoutes mounts the portal. Its own routes are public (each checks
// the session itself); /ui/api passes every call to the REST API's routes,
// whose access rules then apply as they do to /v1.
func (g *Gateway) portalRoutes() {
	public := access{Public: true}
	g.route(http.MethodGet, "/ui", public, uiHeaders(func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/ui/")
	}))
	g.route(http.MethodGet, "/ui/", public, uiHeaders(func(c echo.Context) error { return serveUIAsset(c, "index.html") }))
	g.route(http.MethodGet, "/ui/*", public, uiHeaders(func(c echo.Context) error { return serveUIAsset(c, c.Param("*")) }))
	g.route(http.MethodPost, "/ui/login", public, uiHeaders(g.portalLogin))
	g.route(http.MethodPost, "/ui/logout", public, uiHeaders(g.portalLogout))
	g.route(http.MethodGet, "/ui/session", public, uiHeaders(g.portalSessionInfo))
	// Stream: the REST route the call reaches caps its body, as on /v1.
	mirror := access{Public: true, Stream: true}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		g.route(m, "/ui/api/*", mirror, uiHeaders(g.portalAPI))
	}
}

// uiHeaders sets the portal's security headers on every answer of h.
func uiHeaders(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		setUIHeaders(c.Response().Header())
		return h(c)
	}
}

func setUIHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", portalCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
}

// serveUIAsset answers an embedded file with its ETag. no-cache: a browser
// revalidates each time (a 304 when unchanged), so a new binary's pages
// are seen at once.
func serveUIAsset(c echo.Context, name string) error {
	a, ok := uiAssets[name]
	if !ok || strings.HasSuffix(name, "/") {
		return api.Errorf(api.CodeNotFound, "no portal file %s", name)
	}
	hd := c.Response().Header()
	hd.Set(echo.HeaderCacheControl, "no-cache")
	hd.Set("ETag", a.etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// portalLogin makes a session from a token (JSON {"token"} or a form's
// field token) that authenticates as it would on the API. A JSON call gets
// the session (api.PortalSession); a form post is sent on to /ui/.
func (g *Gateway) portalLogin(c echo.Context) error {
	if err := checkSameOrigin(c.Request()); err != nil {
		return err
	}
	r := c.Request()
	var tok string
	ct := r.Header.Get(echo.HeaderContentType)
	form := strings.HasPrefix(ct, echo.MIMEApplicationForm) || strings.HasPrefix(ct, echo.MIMEMultipartForm)
	if form {
		tok = c.FormValue("token")
	} else {
		var in api.PortalLogin
		if err := decodeBody(c, &in); err != nil {
			return err
		}
		tok = in.Token
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return api.Errorf(api.CodeUnauthorized, "token is required")
	}
	ctx := r.Context()
	p, err := g.principalFor(ctx, tok)
	if err != nil {
		return err
	}
	if p.JobID != "" {
		return api.Errorf(api.CodeForbidden, "a job token cannot sign in to the portal")
	}
	id, csrf := randomToken(), randomToken()
	s := portalSession{TokenHash: store.HashToken(tok), CSRF: csrf}
	b, _ := json.Marshal(s)
	if err := g.rdb.Set(ctx, portalSessionRedisKey(id), b, portalTTL).Err(); err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: portalCookie, Value: id, Path: "/ui", MaxAge: int(portalTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	g.auditAs(ctx, p.Workspace, p.Actor, "portal.login", p.Actor)
	if form {
		return c.Redirect(http.StatusSeeOther, "/ui/")
	}
	return c.JSON(http.StatusOK, sessionAnswer(p, csrf))
}

// checkSameOrigin refuses a post another site's page made: the browser
// names the origin of every cross-origin post (Origin, Sec-Fetch-Site).
// Signing in needs this; once signed in, the session's CSRF token guards.
func checkSameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return api.Errorf(api.CodeForbidden, "cross-site request refused")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return api.Errorf(api.CodeForbidden, "cross-origin request refused (Origin %s)", o)
		}
	}
	return nil
}

// portalLogout ends the session. It needs the CSRF token (header, or the
// form's field csrf_token), so no other site can sign a user out.
func (g *Gateway) portalLogout(c echo.Context) error {
	id, s, err := g.portalSessionOf(c)
	if err == nil {
		got := c.Request().Header.Get(csrfHeader)
		if got == "" {
			got = c.FormValue("csrf_token")
		}
		if !csrfOK(s, got) {
			return api.Errorf(api.CodeForbidden, "missing or wrong %s", csrfHeader)
		}
		if err := g.rdb.Del(c.Request().Context(), portalSessionRedisKey(id)).Err(); err != nil {
			return err
		}
	}
	c.SetCookie(&http.Cookie{Name: portalCookie, Value: "", Path: "/ui", MaxAge: -1,
		HttpOnly: true, Secure: c.Request().TLS != nil, SameSite: http.SameSiteStrictMode})
	return c.NoContent(http.StatusNoContent)
}

// portalSessionInfo is GET /ui/session: who the session acts as.
func (g *Gateway) portalSessionInfo(c echo.Context) error {
	_, s, err := g.portalSessionOf(c)
	if err != nil {
		return err
	}
	p, err := g.sessionPrincipal(c.Request().Context(), s)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, sessionAnswer(p, s.CSRF))
}

func sessionAnswer(p principal, csrf string) api.PortalSession {
	scopes := p.Scopes
	if p.System {
		scopes = api.Scopes
	}
	return api.PortalSession{TokenName: p.Actor, TokenID: p.TokenID, Workspace: p.Workspace, Scopes: append([]api.Scope{}, scopes...), System: p.System, CSRFToken: csrf}
}

// portalAPI is /ui/api/<path>: with the session's cookie (and, but for GET
// and HEAD, its CSRF token), the call is served as /<path> is, through the
// REST routes, their access rules and their handlers, as the session's
// token.
func (g *Gateway) portalAPI(c echo.Context) error {
	_, s, err := g.portalSessionOf(c)
	if err != nil {
		return err
	}
	r := c.Request()
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !csrfOK(s, r.Header.Get(csrfHeader)) {
		return api.Errorf(api.CodeForbidden, "missing or wrong %s header (the portal sends its session's csrf_token)", csrfHeader)
	}
	p := strings.TrimPrefix(r.URL.Path, "/ui/api")
	if !strings.HasPrefix(p, "/v1/") {
		return api.Errorf(api.CodeNotFound, "the portal's API mirrors /v1 only")
	}
	// A page's API answers are the signed-in token's: no cache keeps them.
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	inner := r.Clone(context.WithValue(r.Context(), portalSessionKey{}, s))
	inner.URL.Path = p
	inner.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/ui/api")
	inner.RequestURI = inner.URL.RequestURI()
	inner.Header.Del("Authorization")
	g.echo.ServeHTTP(c.Response().Writer, inner)
	return nil
}

// portalSessionOf reads the request's session: 401 when there is none.
func (g *Gateway) portalSessionOf(c echo.Context) (string, *portalSession, error) {
	ck, err := c.Cookie(portalCookie)
	if err != nil || ck.Value == "" {
		return "", nil, api.Errorf(api.CodeUnauthorized, "not signed in: POST /ui/login with a token")
	}
	b, err := g.rdb.Get(c.Request().Context(), portalSessionRedisKey(ck.Value)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", nil, api.Errorf(api.CodeUnauthorized, "the session has ended: sign in again")
	}
	if err != nil {
		return "", nil, err
	}
	var s portalSession
	if err := json.Unmarshal(b, &s); err != nil {
		return "", nil, api.Errorf(api.CodeUnauthorized, "the session has ended: sign in again")
	}
	return ck.Value, &s, nil
}

// sessionPrincipal is who session s acts as now: its token as it is in
// the store (a revoked or expired token ends the session's access at once).
func (g *Gateway) sessionPrincipal(ctx context.Context, s *portalSession) (principal, error) {
	want := store.HashToken(g.cfg.AdminToken)
	if subtle.ConstantTimeCompare([]byte(s.TokenHash), []byte(want)) == 1 {
		return principal{Workspace: DefaultWorkspace, Actor: "system-admin", System: true}, nil
	}
	t, err := g.store.TokenByHash(ctx, s.TokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, api.Errorf(api.CodeUnauthorized, "the session's token was revoked: sign in again")
	}
	if err != nil {
		return principal{}, err
	}
	return g.issuedPrincipal(ctx, t)
}

func csrfOK(s *portalSession, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
