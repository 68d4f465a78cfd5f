package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jobgate/jobgate/api"
)

const (
	// Wait polls after defaultPollInitial, then backs off by half each time up
	// to defaultPollMax: quick for short jobs, gentle on the gateway for long ones.
	defaultPollInitial = 200 * time.Millisecond
	defaultPollMax     = 2 * time.Second

	// maxErrorBody bounds how much of an error response is read; a proxy's
	// HTML error page must not be slurped whole.
	maxErrorBody = 64 << 10
	// maxSnippet bounds how much of a non-JSON error body goes into Error.Message.
	maxSnippet = 200
)

// Client talks to one jobgate gateway. Create it with New.
type Client struct {
	// base is the gateway URL without a trailing slash, e.g. http://host:8080
	// or https://host/jobgate; API paths are appended to it.
	base string
	// baseErr is set when the base URL given to New is unusable; every call
	// returns it, so New itself needs no error result.
	baseErr error
	token   string
	hc      *http.Client

	pollInitial, pollMax time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc, for a custom
// transport, TLS configuration or proxy. A nil hc keeps http.DefaultClient.
// Give hc no overall Timeout if you follow logs: the response lasts as long as
// the job runs; bound each call with its context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithPollInterval sets how Wait polls: first after initial, then backing off
// to at most max. Values <= 0 keep the defaults (200ms, 2s).
func WithPollInterval(initial, max time.Duration) Option {
	return func(c *Client) {
		if initial > 0 {
			c.pollInitial = initial
		}
		if max > 0 {
			c.pollMax = max
		}
	}
}

// New returns a Client for the gateway at baseURL (scheme://host[:port], with an
// optional path prefix) that authenticates with token as a bearer token. An
// empty token sends no Authorization header. An unusable baseURL is reported
// by every call rather than here.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:        strings.TrimRight(baseURL, "/"),
		token:       token,
		hc:          http.DefaultClient,
		pollInitial: defaultPollInitial,
		pollMax:     defaultPollMax,
	}
	if u, err := url.Parse(c.base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		c.baseErr = fmt.Errorf("invalid gateway URL %q: want http(s)://host[:port][/prefix]", baseURL)
	}
	for _, o := range opts {
		o(c)
	}
	c.pollMax = max(c.pollMax, c.pollInitial)
	return c
}

// ListOptions filters and pages GET /v1/jobs. Zero fields are left out of the
// query, so the gateway's defaults apply.
type ListOptions struct {
	// Status keeps only jobs in this state.
	Status api.Status
	// Experiment keeps only jobs of this experiment.
	Experiment string
	// Limit is the page size; 0 means the gateway's default.
	Limit int
	// Cursor is a previous page's NextCursor; empty means the first page.
	Cursor string
}

// Error is a non-2xx response from the gateway.
type Error struct {
	// StatusCode is the HTTP status, e.g. 422.
	StatusCode int
	// Code is the gateway's stable machine code, e.g. "invalid_spec"; empty
	// when the body was not jobgate's JSON error (a proxy's page, say).
	Code string
	// Message is meant for a person: the gateway's message, or the status
	// text and the start of the body when the body was not jobgate's.
	Message string
}

// Error formats as "code: message (HTTP status)", leaving out what is empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Code != "" && e.Message != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString("(HTTP " + strconv.Itoa(e.StatusCode) + ")")
	return b.String()
}

// Submit submits a job (POST /v1/jobs) and returns it as the gateway stored it,
// defaults filled in. A non-empty idempotencyKey is sent as the Idempotency-Key
// header: submitting again with the same key returns the first job instead of
// creating another, so a submit can be retried safely.
func (c *Client) Submit(ctx context.Context, spec api.JobSpec, idempotencyKey string) (*api.Job, error) {
	var job api.Job
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/jobs", nil, h, spec, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// Get returns the job with the given id (GET /v1/jobs/{id}).
func (c *Client) Get(ctx context.Context, id string) (*api.Job, error) {
	p, err := jobPath(id, "")
	if err != nil {
		return nil, err
	}
	var job api.Job
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// List returns one page of jobs, newest first (GET /v1/jobs). Pass the page's
// NextCursor as opts.Cursor for the next one; it is empty on the last page.
func (c *Client) List(ctx context.Context, opts ListOptions) (*api.JobList, error) {
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", string(opts.Status))
	}
	if opts.Experiment != "" {
		q.Set("experiment", opts.Experiment)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	var list api.JobList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/jobs", q, nil, nil, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Cancel asks the gateway to cancel a job (POST /v1/jobs/{id}/cancel) and
// returns the job as it is now: canceled if it had not started, or still
// running with CancelRequested set until its worker stops it.
func (c *Client) Cancel(ctx context.Context, id string) (*api.Job, error) {
	p, err := jobPath(id, "/cancel")
	if err != nil {
		return nil, err
	}
	var job api.Job
	if err := c.doJSON(ctx, http.MethodPost, p, nil, nil, nil, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// Logs returns a job's log (GET /v1/jobs/{id}/logs). Without follow the body
// is the log so far; with follow it streams new output as the job writes it
// and reaches EOF when the job has ended. Canceling ctx ends the stream. The
// caller must close the returned body.
func (c *Client) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	p, err := jobPath(id, "/logs")
	if err != nil {
		return nil, err
	}
	var q url.Values
	if follow {
		q = url.Values{"follow": {"true"}}
	}
	resp, err := c.send(ctx, http.MethodGet, p, q, http.Header{"Accept": {"text/plain"}}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Artifacts lists the files a job left in its outputs folder
// (GET /v1/jobs/{id}/artifacts), sorted by path; an empty list when it left
// none or is still running. The log is not among them (see Logs).
func (c *Client) Artifacts(ctx context.Context, id string) ([]api.Artifact, error) {
	p, err := jobPath(id, "/artifacts")
	if err != nil {
		return nil, err
	}
	var l api.ArtifactList
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Artifacts, nil
}

// Artifact downloads one output file of a job (GET /v1/jobs/{id}/artifacts/
// {path}); path is slash-separated and relative to the outputs folder, as
// Artifacts lists it. The caller must close the returned body.
func (c *Client) Artifact(ctx context.Context, id, path string) (io.ReadCloser, error) {
	if path == "" {
		return nil, errors.New("artifact path is empty")
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	p, err := jobPath(id, "/artifacts/"+strings.Join(segs, "/"))
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil, http.Header{"Accept": {"*/*"}}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Metrics returns a job's metrics (GET /v1/jobs/{id}/metrics): every point
// of each metric, in step order. With names, only those metrics come back; a
// name the job never reported is absent from the map. The job record (Get)
// carries just the last value of each, in Job.Metrics.
func (c *Client) Metrics(ctx context.Context, id string, names ...string) (*api.JobMetrics, error) {
	p, err := jobPath(id, "/metrics")
	if err != nil {
		return nil, err
	}
	var q url.Values
	if len(names) > 0 {
		q = url.Values{"name": names}
	}
	var m api.JobMetrics
	if err := c.doJSON(ctx, http.MethodGet, p, q, nil, nil, &m); err != nil {
		return nil, err
	}
	if m.Metrics == nil {
		m.Metrics = map[string][]api.MetricPoint{}
	}
	return &m, nil
}

// LogMetrics records metric points of a job (POST /v1/jobs/{id}/metrics).
// Inside a job, New(os.Getenv("JOBGATE_URL"), os.Getenv("JOBGATE_JOB_TOKEN"))
// reports into the job itself.
func (c *Client) LogMetrics(ctx context.Context, id string, points ...api.MetricInput) error {
	p, err := jobPath(id, "/metrics")
	if err != nil {
		return err
	}
	return c.doJSON(ctx, http.MethodPost, p, nil, nil, api.MetricsInput{Metrics: points}, nil)
}

// LogParams records params of a job (POST /v1/jobs/{id}/params); a param
// keeps its first value, and logging another is an error (409).
func (c *Client) LogParams(ctx context.Context, id string, params map[string]string) error {
	p, err := jobPath(id, "/params")
	if err != nil {
		return err
	}
	return c.doJSON(ctx, http.MethodPost, p, nil, nil, api.ParamsInput{Params: params}, nil)
}

// SetTags sets tags of a job (POST /v1/jobs/{id}/tags).
func (c *Client) SetTags(ctx context.Context, id string, tags map[string]string) error {
	p, err := jobPath(id, "/tags")
	if err != nil {
		return err
	}
	return c.doJSON(ctx, http.MethodPost, p, nil, nil, api.TagsInput{Tags: tags}, nil)
}

// Experiments lists the workspace's experiments (GET /v1/experiments).
func (c *Client) Experiments(ctx context.Context) ([]api.Experiment, error) {
	var l api.ExperimentList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/experiments", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Experiments, nil
}

// ExperimentJobs lists an experiment's jobs (GET /v1/experiments/{name}/jobs);
// sort is a metric name, "-" in front for descending ("-accuracy"), or ""
// for newest first; limit 0 is the server's default.
func (c *Client) ExperimentJobs(ctx context.Context, name, sort string, limit int) ([]api.Job, error) {
	if name == "" {
		return nil, errors.New("experiment name is empty")
	}
	q := url.Values{}
	if sort != "" {
		q.Set("sort", sort)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l api.ExperimentJobs
	if err := c.doJSON(ctx, http.MethodGet, "/v1/experiments/"+url.PathEscape(name)+"/jobs", q, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Jobs, nil
}

// Wait polls Get, backing off between polls, until the job is in a terminal
// state (succeeded, failed or canceled), and returns it. It returns the first
// error Get returns, or the context's error, wrapped, when ctx ends first.
func (c *Client) Wait(ctx context.Context, id string) (*api.Job, error) {
	delay := c.pollInitial
	for {
		job, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if job.Status.Terminal() {
			return job, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(delay+delay/2, c.pollMax)
	}
}

// jobPath is the API path of a job, or of one of its sub-resources (suffix
// "/logs"); the id is escaped so that it always stays one path segment.
func jobPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("job id is empty")
	}
	return "/v1/jobs/" + url.PathEscape(id) + suffix, nil
}

// doJSON sends a request with an optional JSON body and decodes a 2xx JSON
// response into out.
func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, h http.Header, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "application/json")
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, method, path, q, h, body)
	if err != nil {
		return err
	}
	defer closeBody(resp.Body)
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response to %s %s: %w", method, path, err)
	}
	return nil
}

// send performs one request and turns a non-2xx status into an *Error. On
// success the caller owns the response body.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, h http.Header, body []byte) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "jobgate-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// net/http's error already names the method and URL.
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp.Body)
		return nil, decodeError(resp)
	}
	return resp, nil
}

// decodeError reads an error response. jobgate answers with api.ErrorBody;
// anything else (a proxy's HTML page, an empty body) still makes an Error
// whose message says what came back.
func decodeError(resp *http.Response) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = string(eb.Error.Code), eb.Error.Message
		return e
	}
	e.Message = cmp.Or(http.StatusText(resp.StatusCode), "unexpected status")
	if s := snippet(b); s != "" {
		e.Message += ": " + s
	}
	return e
}

// snippet is the start of a body on one line, for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > maxSnippet {
		// Cut on a rune boundary so the message stays valid UTF-8.
		cut := maxSnippet
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// closeBody drains a little of what is left so the connection can be reused,
// then closes the body.
func closeBody(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 4<<10))
	_ = rc.Close()
}
