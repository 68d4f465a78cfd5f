package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Errors: handlers return an *api.Error (api.Errorf(code, ...)), a store
// sentinel or any other error; none names an HTTP status. apiError turns
// every error into an *api.Error, and the route group's renderer writes it
// in its surface's shape with the one status table, api.Code.Status: the
// REST API's api.ErrorBody (restErrors), MLflow's {error_code, message}
// (mlflowErrors). A third surface (KServe V2's {"error": "..."}) is a third
// renderer and a group mounted with it, nothing more.

// errorRenderer writes errors in one HTTP surface's shape.
type errorRenderer interface {
	// render is the status and body that answer err. e is apiError(err);
	// err is there for errors a dialect knows better (mlflowErr).
	render(err error, e *api.Error) (status int, body any)
}

// restErrors renders the REST API's errors: api.ErrorBody.
type restErrors struct{}

func (restErrors) render(_ error, e *api.Error) (int, any) {
	return e.Code.Status(), api.ErrorBody{Error: api.ErrorDetail{Code: e.Code, Message: e.Message}}
}

// retryAfterUnavailable is the Retry-After, in seconds, of a 503 answered
// while Redis is unreachable.
const retryAfterUnavailable = "2"

// apiError is the one mapping of errors onto codes: an *api.Error (or an
// error that converts to one with errors.As, such as the job service's) as
// it is, the store's sentinels, echo's own errors (router and middleware),
// and anything else "internal error": a Go, Redis or podman error's text
// never reaches a client.
func apiError(err error) *api.Error {
	var (
		ae *api.Error
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return api.Errorf(api.CodeConflict, "the resource changed state; retry")
	case errors.As(err, &he):
		return fromEchoError(he)
	case errors.Is(err, store.ErrNotReplicated):
		// The primary has the write, but not enough replicas said so in
		// time (--redis-replica-acks): it may be lost in a failover.
		return api.Errorf(api.CodeUnavailable, "no Redis replica acknowledged the write in time, so a failover may undo it; retry in a few seconds (a submit retried with the same Idempotency-Key makes no second job)")
	case errors.Is(err, store.ErrUnavailable):
		// Redis is restarting or out of reach (the store's client says
		// so; a network error of anything else is ours): the client may retry.
		return api.Errorf(api.CodeUnavailable, "the job store is unreachable; retry in a few seconds")
	}
	return api.Errorf(api.CodeInternal, "internal error")
}

// fromEchoError is the code of an error echo makes itself: its router's
// 404 and 405, and middleware's.
func fromEchoError(he *echo.HTTPError) *api.Error {
	switch he.Code {
	case http.StatusNotFound:
		return api.Errorf(api.CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return api.Errorf(api.CodeMethodNotAllowed, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return api.Errorf(api.CodeTooLarge, "request body is too large")
	case http.StatusUnauthorized:
		return api.Errorf(api.CodeUnauthorized, "missing or invalid bearer token")
	}
	if he.Code >= 500 {
		return api.Errorf(api.CodeInternal, "internal error")
	}
	return api.Errorf(api.CodeBadRequest, "%s", http.StatusText(he.Code))
}

// writeError answers err with r. Causes of 5xx go to the log; the client
// gets "internal error", or "unavailable" (503, Retry-After) while Redis
// cannot be reached.
func (g *Gateway) writeError(c echo.Context, err error, r errorRenderer) {
	if c.Response().Committed {
		return
	}
	status, body := r.render(err, apiError(err))
	if errors.Is(err, store.ErrUnavailable) {
		c.Response().Header().Set("Retry-After", retryAfterUnavailable)
	}
	if status >= 500 {
		g.logger.ErrorContext(c.Request().Context(), "request failed", slog.String("method", c.Request().Method),
			slog.String("path", c.Path()), slog.Any("error", err))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

// renderErrors is a route group's error middleware: it answers the error of
// the handler (and the middleware after it) with r, so each group speaks
// its own dialect whatever URL it is mounted at.
func (g *Gateway) renderErrors(r errorRenderer) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := next(c); err != nil {
				g.writeError(c, err, r)
			}
			return nil
		}
	}
}

// errorHandler is echo's HTTPErrorHandler: what no route group answered
// (the router's 404 and 405 outside every group, a panic past them) gets the
// REST API's shape.
func (g *Gateway) errorHandler(err error, c echo.Context) {
	// The router's 404s and 405s under /ui come here, not through a /ui
	// route's uiHeaders: they get the portal's headers all the same.
	if p := c.Request().URL.Path; p == "/ui" || strings.HasPrefix(p, "/ui/") {
		setUIHeaders(c.Response().Header())
	}
	g.writeError(c, err, restErrors{})
}
