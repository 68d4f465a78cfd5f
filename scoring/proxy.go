package scoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// errHoldTimeout: no replica became ready within the hold time.
var errHoldTimeout = errors.New("hold timeout")

// errGone: the deployment went away while its request was held.
var errGone = errors.New("deployment gone")

// serveTraced serves one authenticated route inside its server span.
func (r *Router) serveTraced(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	rc := fromContext(ctx)
	var p principal
	if rc.trusted != nil {
		p = *rc.trusted
	} else {
		var code int
		var msg string
		if p, code, msg = r.authenticate(ctx, req); code != 0 {
			writeError(w, code, "%s", msg)
			return
		}
	}
	tbl := r.table.Load()
	if tbl == nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the scoring router has not loaded its routing table yet")
		return
	}
	d := tbl.deps[depKey{ws: p.workspace, name: rc.rt.name}]
	if d == nil {
		writeError(w, http.StatusNotFound, "model %q not found (no deployment of that name in workspace %s)", rc.rt.name, p.workspace)
		return
	}
	if !d.knows(rc.rt.version) {
		writeError(w, http.StatusNotFound, "model %q has no version %q deployed (it serves %v)", rc.rt.name, rc.rt.version, d.versions())
		return
	}
	deadline := r.cfg.DefaultDeadline
	if h := req.Header.Get(HeaderDeadline); h != "" {
		ms, err := strconv.ParseInt(h, 10, 64)
		if err != nil || ms <= 0 {
			writeError(w, http.StatusBadRequest, "%s: want a positive number of milliseconds, not %q", HeaderDeadline, h)
			return
		}
		deadline = min(time.Duration(ms)*time.Millisecond, r.cfg.MaxDeadline)
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	rc.dep = d

	switch rc.rt.kind {
	case routeModelReady:
		if d.pick(rc.rt.version, nil) == nil {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "model %q has no ready replica", rc.rt.name)
			return
		}
		b, _ := json.Marshal(map[string]any{"name": rc.rt.name, "ready": true})
		writeJSONBytes(w, http.StatusOK, b)
		return
	case routeMetadata:
		rep := d.pick(rc.rt.version, nil)
		if rep == nil {
			// No replica to ask: what the table knows.
			b, _ := json.Marshal(map[string]any{"name": rc.rt.name, "versions": d.versions(), "platform": "jobgate", "ready": false})
			writeJSONBytes(w, http.StatusOK, b)
			return
		}
		r.forward(ctx, w, req, rc, rep)
		return
	}

	// Infer: the body is kept, so that a retry can send it again.
	d.stats.inFlight.Add(1)
	defer d.stats.inFlight.Add(-1)
	release, ok := r.bufferBody(ctx, w, req)
	if !ok {
		return
	}
	defer release()
	rep := d.pick(rc.rt.version, nil)
	if rep == nil {
		if !d.holds {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "model %q has no ready replica; retry later", rc.rt.name)
			return
		}
		var err error
		rep, err = r.hold(ctx, rc)
		switch {
		case errors.Is(err, errHoldTimeout):
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "model %q: no replica became ready within %s; retry later", rc.rt.name, r.cfg.HoldTimeout)
			return
		case errors.Is(err, errGone):
			writeError(w, http.StatusNotFound, "model %q was deleted", rc.rt.name)
			return
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, "deadline of %s exceeded while a replica of %q started", deadline, rc.rt.name)
			return
		case err != nil:
			w.WriteHeader(499) // the client went away
			return
		}
	}
	r.forward(ctx, w, req, rc, rep)
}

// forward proxies req to rep (the retry transport may move it to another).
func (r *Router) forward(ctx context.Context, w http.ResponseWriter, req *http.Request, rc *reqCtx, rep *replica) {
	rc.rep = rep
	rep.outstanding.Add(1)
	defer func() { rc.rep.outstanding.Add(-1) }()
	r.proxy.ServeHTTP(w, req.WithContext(ctx))
}

// bufferBody reads req's body into memory (at most MaxBodyBytes) and makes
// it readable again for a retry; ok false when it answered an error. The
// body is read by the request's deadline (a client that sends it slowly
// does not hold the router past it), its memory is taken as it arrives,
// never on the word of Content-Length, and counted against
// MaxBufferedBytes, the bodies of every request at once: past it, 503.
// release gives the memory's share back once the request is done.
func (r *Router) bufferBody(ctx context.Context, w http.ResponseWriter, req *http.Request) (release func(), ok bool) {
	limit := r.cfg.MaxBodyBytes
	if req.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "request body of %d bytes is over the router's limit of %d", req.ContentLength, limit)
		return nil, false
	}
	var held int64
	release = func() { r.buffered.Add(-held) }
	if dl, ok := ctx.Deadline(); ok {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(dl) == nil {
			// The rest of the request is bounded by ctx.
			defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
		}
	}
	var b []byte
	chunk := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(chunk)
	var err error
	for {
		var n int
		n, err = req.Body.Read(*chunk)
		if n > 0 {
			if int64(len(b)+n) > limit {
				release()
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusRequestEntityTooLarge, "request body is over the router's limit of %d bytes", limit)
				return nil, false
			}
			if len(b)+n > cap(b) {
				grown := int64(max(2*cap(b), len(b)+n, 64<<10))
				if req.ContentLength > 0 {
					grown = max(min(grown, req.ContentLength), int64(len(b)+n))
				}
				grown = min(grown, limit)
				if !r.reserve(grown - int64(cap(b))) {
					release()
					w.Header().Set("Connection", "close")
					w.Header().Set("Retry-After", "1")
					writeError(w, http.StatusServiceUnavailable, "the scoring router holds %d bytes of request bodies, its limit; retry later", r.cfg.MaxBufferedBytes)
					return nil, false
				}
				held += grown - int64(cap(b))
				nb := make([]byte, len(b), grown)
				copy(nb, b)
				b = nb
			}
			b = append(b, (*chunk)[:n]...)
		}
		if err != nil {
			break
		}
	}
	if err != io.EOF {
		release()
		// The rest of the body is not waited for: the connection goes.
		w.Header().Set("Connection", "close")
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			writeError(w, http.StatusGatewayTimeout, "deadline exceeded while reading the request body")
		} else {
			writeError(w, http.StatusBadRequest, "read request body: %v", err)
		}
		return nil, false
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.ContentLength = int64(len(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	if len(b) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	return release, true
}

// reserve takes n bytes of MaxBufferedBytes; false when they are not left.
func (r *Router) reserve(n int64) bool {
	if r.buffered.Add(n) > r.cfg.MaxBufferedBytes {
		r.buffered.Add(-n)
		return false
	}
	return true
}

// hold waits, up to HoldTimeout, until the table shows a ready replica of
// the request's deployment (woken by each reload), while the deployment's
// load report says a request waits and the controller is woken.
func (r *Router) hold(ctx context.Context, rc *reqCtx) (*replica, error) {
	key := rc.dep.key
	stats := rc.dep.stats
	stats.waiting.Add(1)
	defer stats.waiting.Add(-1)
	select {
	case r.reportNow <- struct{}{}:
	default:
	}
	span := trace.SpanFromContext(ctx)
	span.AddEvent("activator.hold", trace.WithAttributes(
		attribute.String("jobgate.deployment", key.name), attribute.String("jobgate.hold_timeout", r.cfg.HoldTimeout.String())))
	start := time.Now()
	timer := time.NewTimer(r.cfg.HoldTimeout)
	defer timer.Stop()
	release := func(outcome string) {
		span.AddEvent("activator.release", trace.WithAttributes(
			attribute.String("jobgate.outcome", outcome), attribute.Int64("jobgate.held_ms", time.Since(start).Milliseconds())))
	}
	for {
		tbl := r.table.Load()
		d := tbl.deps[key]
		if d == nil {
			release("deleted")
			return nil, errGone
		}
		if rep := d.pick(rc.rt.version, nil); rep != nil {
			rc.dep = d
			release("served")
			return rep, nil
		}
		select {
		case <-tbl.changed:
		case <-timer.C:
			release("timeout")
			return nil, errHoldTimeout
		case <-ctx.Done():
			release("deadline")
			return nil, ctx.Err()
		}
	}
}

// rewrite points the outgoing request at the chosen replica; the path is
// the client's (the replica serves the model under the deployment's name).
// The client's token is not passed on.
func (r *Router) rewrite(pr *httputil.ProxyRequest) {
	rc := fromContext(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = rc.rep.addr
	pr.Out.Host = rc.rep.addr
	pr.Out.Header.Del("Authorization")
}

func (r *Router) modifyResponse(resp *http.Response) error {
	if rc := fromContext(resp.Request.Context()); rc != nil && rc.rep != nil {
		resp.Header.Set(HeaderModelVersion, rc.rep.served)
	}
	return nil
}

func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	ctx := req.Context()
	rc := fromContext(ctx)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "deadline exceeded waiting for the model server")
	case errors.Is(ctx.Err(), context.Canceled):
		w.WriteHeader(499) // the client went away
	default:
		attrs := []any{slog.String("route", rc.route), slog.Any("error", err)}
		if rc.rep != nil {
			attrs = append(attrs, slog.String("job_id", rc.rep.jobID), slog.String("address", rc.rep.addr))
		}
		r.logger.WarnContext(ctx, "scoring: upstream failed", attrs...)
		writeError(w, http.StatusBadGateway, "the model server did not answer (tried %d replica(s))", rc.tried+1)
	}
}

// retryTransport sends a request again, once, to another replica when the
// first one failed before answering anything (connection refused or reset,
// closed without a response): V2 inference is idempotent.
type retryTransport struct {
	r    *Router
	next http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	ctx := req.Context()
	rc := fromContext(ctx)
	if rc == nil || rc.rep == nil || rc.tried > 0 || ctx.Err() != nil || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return nil, err
	}
	d := rc.dep
	if tbl := t.r.table.Load(); tbl != nil && tbl.deps[d.key] != nil {
		d = tbl.deps[d.key] // the newest table may already lack the dead one
	}
	failed := rc.rep
	next := d.pick(rc.rt.version, failed)
	if next == nil {
		return nil, err
	}
	trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(
		attribute.String("jobgate.failed_replica", failed.jobID), attribute.String("jobgate.next_replica", next.jobID),
		attribute.String("error", err.Error())))
	t.r.logger.InfoContext(ctx, "scoring: retry on another replica", slog.String("failed_job_id", failed.jobID),
		slog.String("job_id", next.jobID), slog.Any("error", err))
	t.r.retried.Add(1)
	failed.outstanding.Add(-1)
	next.outstanding.Add(1)
	rc.rep, rc.tried = next, rc.tried+1
	out := req.Clone(ctx)
	out.URL.Host, out.Host = next.addr, next.addr
	if req.GetBody != nil {
		if out.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.next.RoundTrip(out)
}

// bufferPool lends the proxy its copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// writeError answers in V2's error shape: {"error": "..."}.
func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{fmt.Sprintf(format, args...)})
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
