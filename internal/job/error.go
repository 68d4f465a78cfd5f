package job

import (
	"fmt"

	"github.com/jobgate/jobgate/api"
)

// Error is the job service's one error: a refused submission or cancel. Code
// is one of api's closed set (invalid_spec for a spec that cannot run as
// written, forbidden for what the submitter may not ask, ...), Field names
// the part of the request it is about ("image", "inputs.data.path",
// "Idempotency-Key"; "" for the request as a whole), and Message is safe to
// show the submitter and already names the field where it reads better. Any
// other error of the service is a fault (Redis, most often) and is returned
// as it came.
type Error struct {
	Code    api.Code
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// As fills a **api.Error, so that an HTTP renderer that looks for api.Error
// (errors.As(err, &apiErr)) renders a job error with its code and message.
func (e *Error) As(target any) bool {
	t, ok := target.(**api.Error)
	if !ok {
		return false
	}
	*t = &api.Error{Code: e.Code, Message: e.Message}
	return true
}

// Errorf makes an *Error about field with a formatted message.
func Errorf(code api.Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// specErr is a spec that cannot run as written (invalid_spec, 422).
func specErr(field, format string, args ...any) *Error {
	return Errorf(api.CodeInvalidSpec, field, format, args...)
}
