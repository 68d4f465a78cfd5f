package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Error is the gateway's one application error: a status, a stable code and a
// message that is safe to show a client.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeInvalidSpec  = "invalid_spec"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "request_too_large"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeMethod       = "method_not_allowed"
	CodeInvalid      = "invalid_request"
	CodeRateLimited  = "rate_limited"
)

// retryAfterUnavailable is the Retry-After, in seconds, of a 503 answered
// while Redis is unreachable.
const retryAfterUnavailable = "2"

// errorHandler is the one place errors become HTTP responses. Causes of 5xx
// go to the log; the client gets "internal error", or "unavailable" (503,
// Retry-After) while Redis cannot be reached.
func (g *Gateway) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		ae   *Error
		apiE *api.Error
		he   *echo.HTTPError
	)
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &apiE):
		// The job service's errors (job.Error) and any other api.Error.
		ae = &Error{Status: apiE.Code.Status(), Code: string(apiE.Code), Message: apiE.Message}
	case errors.Is(err, store.ErrNotFound):
		ae = errorf(http.StatusNotFound, CodeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		ae = errorf(http.StatusConflict, CodeConflict, "the resource changed state; retry")
	case errors.As(err, &he):
		ae = fromEchoError(he)
	case errors.Is(err, store.ErrUnavailable):
		// Redis is restarting or out of reach (the store's client says
		// so; a network error of anything else is ours): the client may retry.
		ae = errorf(http.StatusServiceUnavailable, CodeUnavailable, "the job store is unreachable; retry in a few seconds")
		c.Response().Header().Set("Retry-After", retryAfterUnavailable)
	default:
		ae = errorf(http.StatusInternalServerError, CodeInternal, "internal error")
	}
	if ae.Status >= 500 {
		g.logger.ErrorContext(c.Request().Context(), "request failed", slog.String("method", c.Request().Method),
			slog.String("path", c.Path()), slog.Any("error", err))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.Status)
		return
	}
	if strings.HasPrefix(c.Request().URL.Path, mlflowPrefix) {
		// MLflow's clients read MLflow's error shape.
		_ = c.JSON(ae.Status, mlflowError{ErrorCode: mlflowCode(ae), Message: ae.Message})
		return
	}
	_ = c.JSON(ae.Status, api.ErrorBody{Error: api.ErrorDetail{Code: ae.Code, Message: ae.Message}})
}

func fromEchoError(he *echo.HTTPError) *Error {
	switch he.Code {
	case http.StatusNotFound:
		return errorf(he.Code, CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return errorf(he.Code, CodeMethod, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return errorf(he.Code, CodeTooLarge, "request body is too large")
	case http.StatusUnauthorized:
		return errorf(he.Code, CodeUnauthorized, "missing or invalid bearer token")
	}
	if he.Code >= 500 {
		return errorf(http.StatusInternalServerError, CodeInternal, "internal error")
	}
	return errorf(he.Code, CodeBadRequest, "%s", http.StatusText(he.Code))
}
