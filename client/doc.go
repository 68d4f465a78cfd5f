// Package client is the Go SDK for jobgate's REST API: submit jobs, follow
// their logs, wait for them to end, and read what they left behind (metrics,
// params and tags, artifacts); list and cancel jobs, compare an experiment's
// runs, manage datastores, and run a command inside a running job.
//
//	go get github.com/jobgate/jobgate/client
//
// Job specs and the records that come back are the types of package
// github.com/jobgate/jobgate/api.
//
// A Client talks to one gateway with one bearer token: for `jobgate dev` (make
// dev) that is http://127.0.0.1:8080 and the token it saves in .jobgate/token;
// elsewhere a workspace token issued with POST /v1/workspaces/{ws}/tokens.
// Inside a job, New(os.Getenv("JOBGATE_URL"), os.Getenv("JOBGATE_JOB_TOKEN"))
// reaches the job itself and the jobs it starts. The examples read
// JOBGATE_URL and JOBGATE_TOKEN and run as they stand against make dev.
//
// A Client is safe for concurrent use. Every method takes a context, which is
// the only bound on a call: the default HTTP client has no overall timeout,
// because following a log lasts as long as the job does.
//
// A response with a non-2xx status comes back as an *Error carrying the HTTP
// status and the gateway's stable error code ("invalid_spec", "not_found",
// ...); use errors.As to inspect it. Transport failures (connection refused, a
// canceled context) come back as the net/http errors they are, so
// errors.Is(err, context.Canceled) works.
package client
