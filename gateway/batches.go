package gateway

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/propagation"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
)

// Batches (POST /v1/deployments/{name}/batch, /v1/batches). A batch is a
// job (Spec.Batch, made through job.Service.SubmitBatch, priority low)
// that the scheduler places as any other; its worker scores the rows
// through the scoring router and writes the answers in chunks (see
// store.BatchProgress). The rows are streamed into the artifact store on
// the way in, never held whole; the answers are streamed out.

const (
	// defaultBatchConcurrency is a batch's max_concurrency by default.
	defaultBatchConcurrency = 4
	// batchRetries is how often a batch's job is tried again after a
	// failure of its worker (it resumes from its checkpoint).
	batchRetries = 3
	ndjsonType   = "application/x-ndjson"
)

// BatchInputKey is the artifact key of rows whose SHA-256 is sum: the same
// rows uploaded twice are one input (and one Idempotency-Key's spec).
func BatchInputKey(sum string) string { return "batches/inputs/" + sum + "/rows.jsonl" }

// BatchResultsPrefix is the folder of batch id's answer chunks.
func BatchResultsPrefix(id string) string { return "batches/" + id + "/results/" }

// submitBatch serves POST /v1/deployments/:name/batch.
func (g *Gateway) submitBatch(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	name := c.Param("name")
	if _, _, err := g.store.Deployment(ctx, p.Workspace, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no deployment %q in workspace %s", name, p.Workspace)
		}
		return err
	}
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req api.BatchRequest
	var rows func(yield func(line int, row []byte) error) error
	if mt == ndjsonType {
		q := c.QueryParams()
		for _, f := range []struct {
			name string
			dst  *int
		}{{"error_threshold", &req.ErrorThreshold}, {"max_concurrency", &req.MaxConcurrency}, {"timeout_seconds", &req.TimeoutSeconds}} {
			if v := q.Get(f.name); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					return api.Errorf(api.CodeInvalid, "%s must be an integer, not %q", f.name, v)
				}
				*f.dst = n
			}
		}
		req.Priority = api.Priority(q.Get("priority"))
		if u := q.Get("callback_url"); u != "" {
			req.Callback = &api.BatchCallback{URL: u, Secret: r.Header.Get("Jobgate-Callback-Secret")}
		}
		rows = scanRows(r.Body, int(g.cfg.MaxBodyBytes))
	} else {
		if r.ContentLength > g.cfg.MaxBodyBytes {
			return api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes; send the rows as JSON lines (Content-Type: %s)", g.cfg.MaxBodyBytes, ndjsonType)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, g.cfg.MaxBodyBytes)
		if err := decodeBody(c, &req); err != nil {
			return err
		}
		if req.Requests == nil {
			return api.Errorf(api.CodeInvalid, "requests: send the V2 inference requests to score, as {\"requests\": [...]}, or the rows as JSON lines (Content-Type: %s)", ndjsonType)
		}
		i := 0
		rows = func(yield func(int, []byte) error) error {
			if i == len(req.Requests) {
				return io.EOF
			}
			row := req.Requests[i]
			if err := checkRow(row); err != nil {
				return api.Errorf(api.CodeInvalid, "requests[%d]: %v", i, err)
			}
			i++
			return yield(i-1, row)
		}
	}
	if req.ErrorThreshold < 0 {
		return api.Errorf(api.CodeInvalid, "error_threshold must be >= 0, not %d", req.ErrorThreshold)
	}
	if req.MaxConcurrency == 0 {
		req.MaxConcurrency = defaultBatchConcurrency
	}
	if req.MaxConcurrency < 1 || req.MaxConcurrency > 256 {
		return api.Errorf(api.CodeInvalid, "max_concurrency must be between 1 and 256, not %d", req.MaxConcurrency)
	}
	switch req.Priority {
	case "", api.PriorityLow, api.PriorityNormal, api.PriorityHigh:
	default:
		return api.Errorf(api.CodeInvalid, "priority must be %q, %q or %q, not %q", api.PriorityLow, api.PriorityNormal, api.PriorityHigh, req.Priority)
	}
	if req.TimeoutSeconds < 0 {
		return api.Errorf(api.CodeInvalid, "timeout_seconds must be > 0, not %d", req.TimeoutSeconds)
	}
	if req.Callback != nil && req.Callback.URL == "" {
		return api.Errorf(api.CodeInvalid, "callback.url is required with a callback")
	}
	key, total, err := g.storeRows(ctx, rows)
	if err != nil {
		return err
	}
	if total == 0 {
		return api.Errorf(api.CodeInvalid, "requests: a batch needs at least one row (a V2 inference request)")
	}
	spec := api.JobSpec{
		Name:           "batch-" + name,
		Mode:           api.ModeContainer,
		Priority:       cmp.Or(req.Priority, api.PriorityLow),
		TimeoutSeconds: req.TimeoutSeconds, // the job's checks refuse a bad one, naming it
		MaxRetries:     batchRetries,
		Batch: &api.BatchJob{Deployment: name, Input: key, Total: total,
			ErrorThreshold: req.ErrorThreshold, MaxConcurrency: req.MaxConcurrency},
	}
	if req.Callback != nil {
		spec.Notify = &api.Notify{URL: req.Callback.URL, Secret: req.Callback.Secret}
	}
	// The batch's trace is this request's: every attempt's spans join it.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	spec.Batch.TraceParent = carrier["traceparent"]
	res, err := g.jobs.SubmitBatch(ctx, job.Request{Workspace: p.Workspace, Actor: p.Actor, Spec: spec,
		IdempotencyKey: r.Header.Get("Idempotency-Key")})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/batches/"+res.Job.ID)
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusAccepted, api.BatchAccepted{ID: res.Job.ID, Status: store.BatchStatus(res.Job.Status)})
}

// checkRow refuses a row that is not one JSON object.
func checkRow(row []byte) error {
	t := bytes.TrimSpace(row)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return errors.New("must be a JSON object (a V2 inference request)")
	}
	return nil
}

// scanRows yields each non-blank line of body (1-based line numbers); a
// line that is not a JSON object, or longer than maxLine, is a 422 naming it.
func scanRows(body io.Reader, maxLine int) func(yield func(int, []byte) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	return func(yield func(int, []byte) error) error {
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			if err := checkRow(b); err != nil {
				return api.Errorf(api.CodeInvalid, "line %d: %v", line, err)
			}
			return yield(line, b)
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return api.Errorf(api.CodeInvalid, "line %d: longer than %d bytes", line+1, maxLine)
			}
			return api.Errorf(api.CodeBadRequest, "read body: %v", err)
		}
		return io.EOF
	}
}

// rowReader is the rows as the artifact store reads them: one compact line
// each, checked, counted and hashed as they pass. next yields the next row,
// or io.EOF after the last; its other errors end the read and are kept in
// err.
type rowReader struct {
	next  func(yield func(int, []byte) error) error
	buf   bytes.Buffer
	hash  hash.Hash
	total int
	err   error
}

func (r *rowReader) Read(p []byte) (int, error) {
	for r.buf.Len() == 0 && r.err == nil {
		r.err = r.next(func(_ int, row []byte) error {
			if err := json.Compact(&r.buf, row); err != nil {
				return api.Errorf(api.CodeInvalid, "row %d: %v", r.total, err)
			}
			r.buf.WriteByte('\n')
			r.hash.Write(r.buf.Bytes())
			r.total++
			return nil
		})
	}
	if r.buf.Len() > 0 {
		return r.buf.Read(p)
	}
	return 0, r.err
}

// storeRows streams the rows next yields into the artifact store (read as
// they arrive, never held whole) and returns their key (named by their
// SHA-256) and count.
func (g *Gateway) storeRows(ctx context.Context, next func(func(int, []byte) error) error) (string, int, error) {
	tmpDir := "batches/uploads/" + strings.ToLower(ulid.Make().String()) + "/"
	tmp := tmpDir + "rows.jsonl"
	defer g.dropUpload(ctx, tmpDir)
	rr := &rowReader{next: next, hash: sha256.New()}
	if err := g.artifacts.Put(ctx, tmp, rr); err != nil {
		if rr.err != nil && !errors.Is(rr.err, io.EOF) {
			return "", 0, rr.err // the rows' fault, named
		}
		return "", 0, fmt.Errorf("store batch rows: %w", err)
	}
	key := BatchInputKey(hex.EncodeToString(rr.hash.Sum(nil)))
	if _, err := g.artifacts.Stat(ctx, key); err == nil {
		return key, rr.total, nil
	} else if !errors.Is(err, artifact.ErrNotFound) {
		return "", 0, err
	}
	f, err := g.artifacts.Open(ctx, tmp)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	if err := g.artifacts.Put(ctx, key, f); err != nil {
		return "", 0, fmt.Errorf("store batch rows: %w", err)
	}
	return key, rr.total, nil
}

func (g *Gateway) dropUpload(ctx context.Context, dir string) {
	if d, ok := g.artifacts.(artifact.Deleter); ok {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = d.DeletePrefix(cleanup, dir)
	}
}

// batchJob is batch id of ws's job, or not found.
func (g *Gateway) batchJob(ctx context.Context, ws, id string) (*api.Job, error) {
	j, err := g.store.GetJob(ctx, ws, id)
	if err != nil {
		return nil, err
	}
	if j.Spec.Batch == nil {
		return nil, api.Errorf(api.CodeNotFound, "no batch %q in workspace %s", id, ws)
	}
	return j, nil
}

func (g *Gateway) batchView(ctx context.Context, j *api.Job) (api.Batch, error) {
	return g.store.Batch(ctx, j, g.now())
}

// getBatch serves GET /v1/batches/:id.
func (g *Gateway) getBatch(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.batchJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	b, err := g.batchView(ctx, j)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, b)
}

// cancelBatch serves POST /v1/batches/:id/cancel.
func (g *Gateway) cancelBatch(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	if _, err := g.batchJob(ctx, p.Workspace, c.Param("id")); err != nil {
		return err
	}
	if err := g.jobs.Cancel(ctx, p.Workspace, p.Actor, c.Param("id")); err != nil {
		return err
	}
	j, err := g.batchJob(ctx, p.Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	b, err := g.batchView(ctx, j)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, b)
}

// batchResults serves GET /v1/batches/:id/results: the answers written so
// far, one JSON line a row in request order, streamed chunk by chunk.
func (g *Gateway) batchResults(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.batchJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	pr, err := g.store.BatchProgress(ctx, j.ID)
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set("Content-Type", ndjsonType)
	w.Header().Set("Jobgate-Batch-Done", strconv.Itoa(pr.Done))
	w.WriteHeader(http.StatusOK)
	for i := range pr.Chunks {
		f, err := g.artifacts.Open(ctx, BatchChunkKey(j.ID, i))
		if err != nil {
			// The header is sent: cut the stream short.
			g.logger.ErrorContext(ctx, "batch results", "batch_id", j.ID, "chunk", i, "error", err)
			return nil
		}
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return nil
		}
		w.Flush()
	}
	return nil
}

// BatchChunkKey is the artifact key of chunk i of batch id's answers. The
// worker writes it under the same name (worker.batchChunkKey).
func BatchChunkKey(id string, i int) string {
	return fmt.Sprintf("%s%08d.jsonl", BatchResultsPrefix(id), i)
}
