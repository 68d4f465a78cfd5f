package api

import (
	"fmt"
	"net/http"
	"slices"
)

// Code is the stable, machine-readable kind of an error. The set is closed:
// every error jobgate answers carries one of the codes below, and each HTTP
// surface (the REST API, the MLflow dialect, ...) renders them in its own
// shape over the one table of statuses, Status.
type Code string

// The codes. Add one only with its status in statusOf.
const (
	CodeBadRequest        Code = "bad_request"        // 400: malformed request (JSON, a query parameter, a header)
	CodeInvalidSpec       Code = "invalid_spec"       // 422: a job spec that cannot run as written
	CodeInvalid           Code = "invalid_request"    // 422: well-formed but not allowed (a field out of range, a rule it breaks)
	CodeUnauthorized      Code = "unauthorized"       // 401: no token, or not one jobgate knows
	CodeForbidden         Code = "forbidden"          // 403: the token may not do this
	CodeNotFound          Code = "not_found"          // 404: no such thing in the caller's workspace, or no such route
	CodeMethodNotAllowed  Code = "method_not_allowed" // 405
	CodeConflict          Code = "conflict"           // 409: the resource is in another state, or already exists
	CodeTooLarge          Code = "request_too_large"  // 413
	CodeRateLimited       Code = "rate_limited"       // 429
	CodeInternal          Code = "internal"           // 500: a fault of jobgate's; the gateway's log has the cause
	CodeUnavailable       Code = "unavailable"        // 503: Redis is out of reach; retry
	CodeWorkerUnavailable Code = "worker_unavailable" // 503: the job's worker cannot be reached for an exec
	CodeWorkerTimeout     Code = "worker_timeout"     // 504: the job's worker did not answer an exec in time

	// Exec sessions (POST /v1/jobs/{id}/exec): the refusals a worker sends
	// back before the command starts, and the error lines of a session that
	// failed after it started (whose status is the stream's 200; the
	// status here is what the code means before anything was sent).
	CodeJobNotRunning   Code = "job_not_running"   // 409: the job does not run (on that worker) now
	CodeExecUnsupported Code = "exec_unsupported"  // 409: the job's executor cannot exec (a tracked run)
	CodeTooManySessions Code = "too_many_sessions" // 429: the worker runs as many exec sessions as it allows
	CodeStartFailed     Code = "start_failed"      // 422: the command could not be started
	CodeWorkerStopped   Code = "worker_stopped"    // 503: the worker shut down during the session
	CodeTimeout         Code = "timeout"           // 504: the command ran past its timeout and was stopped
	CodeExecFailed      Code = "exec_failed"       // 500: anything else that went wrong on the worker
	CodeOutputLost      Code = "output_lost"       // 500: the client read more slowly than the command wrote
)

var statusOf = map[Code]int{
	CodeBadRequest:        http.StatusBadRequest,
	CodeInvalidSpec:       http.StatusUnprocessableEntity,
	CodeInvalid:           http.StatusUnprocessableEntity,
	CodeUnauthorized:      http.StatusUnauthorized,
	CodeForbidden:         http.StatusForbidden,
	CodeNotFound:          http.StatusNotFound,
	CodeMethodNotAllowed:  http.StatusMethodNotAllowed,
	CodeConflict:          http.StatusConflict,
	CodeTooLarge:          http.StatusRequestEntityTooLarge,
	CodeRateLimited:       http.StatusTooManyRequests,
	CodeInternal:          http.StatusInternalServerError,
	CodeUnavailable:       http.StatusServiceUnavailable,
	CodeWorkerUnavailable: http.StatusServiceUnavailable,
	CodeWorkerTimeout:     http.StatusGatewayTimeout,
	CodeJobNotRunning:     http.StatusConflict,
	CodeExecUnsupported:   http.StatusConflict,
	CodeTooManySessions:   http.StatusTooManyRequests,
	CodeStartFailed:       http.StatusUnprocessableEntity,
	CodeWorkerStopped:     http.StatusServiceUnavailable,
	CodeTimeout:           http.StatusGatewayTimeout,
	CodeExecFailed:        http.StatusInternalServerError,
	CodeOutputLost:        http.StatusInternalServerError,
}

// Codes lists every code, for renderers and tests that must cover them all.
func Codes() []Code {
	out := make([]Code, 0, len(statusOf))
	for c := range statusOf {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Status is the HTTP status a code is answered with; 500 for a code
// outside the set (a bug, which the table test catches).
func (c Code) Status() int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is jobgate's one application error: a code and a message that is
// safe to show the client (never the text of a Go, Redis or podman error).
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
