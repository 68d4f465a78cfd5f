// Package client is the Go SDK for jobgate's REST API: submit a job, read it
// back, list and cancel jobs, stream a job's log, and wait for a job to end.
//
// A Client is safe for concurrent use. Every method takes a context, which is
// the only bound on a call: the default HTTP client has no overall timeout,
// because following a log lasts as long as the job does.
//
// A response with a non-2xx status comes back as an *Error carrying the HTTP
// status and the gateway's stable error code; use errors.As to inspect it.
// Transport failures (connection refused, a canceled context) come back as the
// net/http errors they are, so errors.Is(err, context.Canceled) works.
package client
