package worker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
)

// A batch job (Spec.Batch) is run by the worker itself, not by an
// executor: it reads the rows from the artifact store, sends each to the
// scoring router (/v2/models/{deployment}/infer) with max_concurrency in
// flight (across chunk boundaries, see batchRun), backing off on 503 and
// 429, and writes the answers in order, in chunks of batchChunkRows rows,
// each chunk whole under its own key, then its progress
// (store.BatchProgress) as the checkpoint. A retried or resumed attempt
// starts at the first chunk not recorded; a chunk written again replaces
// itself, so no row is in the results twice.
//
// The router is reached with a token of the job's workspace with the score
// scope only, made for the attempt and deleted when it ends (it expires
// with the job's timeout if the worker dies first).
//
// Each attempt is a span ("batch") in the trace of the request that
// submitted the batch (BatchJob.TraceParent), each chunk a span under it
// ("batch chunk": the chunk is the batch's mini-batch, its unit of
// checkpoint and of results), and each row's request a client span under
// its chunk's, which the router's spans continue.

var (
	errBatchErrors      = errors.New("batch_errors")
	errBatchUnavailable = errors.New("batch unavailable")
)

// batchChunkRows is how many rows one chunk of answers holds: the grain of
// the checkpoint and of what GET .../results shows while a batch runs.
const batchChunkRows = 100

// batchChunkKey is the artifact key of chunk i of batch id's answers (the
// gateway reads it as gateway.BatchChunkKey).
func batchChunkKey(id string, i int) string {
	return fmt.Sprintf("batches/%s/results/%08d.jsonl", id, i)
}

// batchStore is what a batch needs of the store.
type batchStore interface {
	BatchProgress(ctx context.Context, id string) (store.BatchProgress, error)
	SetBatchProgress(ctx context.Context, id string, p store.BatchProgress) error
	CreateToken(ctx context.Context, t api.Token, secret string) error
	DeleteToken(ctx context.Context, ws, id string) error
}

var _ batchStore = (*store.Store)(nil)

// runBatch scores job's batch; logw is the job's log.
func (w *Worker) runBatch(ctx context.Context, job *api.Job, attempt int, logw io.Writer) (_ Outcome, err error) {
	b := job.Spec.Batch
	ctx, span := batchSpan(ctx, b.TraceParent, "batch", attribute.String("batch.id", job.ID),
		attribute.String("batch.deployment", b.Deployment), attribute.Int("batch.attempt", attempt),
		attribute.Int("batch.total", b.Total), attribute.Int("batch.max_concurrency", b.MaxConcurrency))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	if w.cfg.ScoringURL == "" {
		return Outcome{}, fmt.Errorf("%w: worker %s has no scoring router (start it with --scoring-url)", errBatchUnavailable, w.cfg.ID)
	}
	st := batchStore(w.store)
	token, drop, err := w.batchToken(ctx, st, job, attempt)
	if err != nil {
		return Outcome{}, err
	}
	defer drop()
	prog, err := st.BatchProgress(ctx, job.ID)
	if err != nil {
		return Outcome{}, err
	}
	in, err := w.artifacts.Open(ctx, b.Input)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: the batch's rows: %w", errBatchUnavailable, err)
	}
	defer in.Close()
	rd := bufio.NewReaderSize(in, 64<<10)
	for range prog.Done { // rows already answered
		if err := skipLine(rd); err != nil {
			return Outcome{}, fmt.Errorf("%w: skip answered rows: %w", errBatchUnavailable, err)
		}
	}
	if prog.Done > 0 {
		fmt.Fprintf(logw, "jobgate: batch resumes at row %d (%d chunks written)\n", prog.Done, prog.Chunks)
	}
	client, conns := w.batchClient(b.MaxConcurrency)
	defer conns.CloseIdleConnections()
	sc := &scorer{client: client, url: w.cfg.ScoringURL + "/v2/models/" + b.Deployment + "/infer",
		token: token, logger: w.logger}
	run := &batchRun{sc: sc, conc: b.MaxConcurrency, total: b.Total, threshold: b.ErrorThreshold,
		put: func(ctx context.Context, i int, answers []byte) error {
			return w.artifacts.Put(ctx, batchChunkKey(job.ID, i), bytes.NewReader(answers))
		},
		save:    func(ctx context.Context, p store.BatchProgress) error { return st.SetBatchProgress(ctx, job.ID, p) },
		metrics: w.cfg.Metrics}
	if err := run.run(ctx, rd, &prog); err != nil {
		return Outcome{}, err
	}
	fmt.Fprintf(logw, "jobgate: batch done: %d rows, %d failed\n", prog.Done, prog.Failed)
	return Outcome{ExitCode: 0}, nil
}

// skipLine reads past one line of rd, however long.
func skipLine(rd *bufio.Reader) error {
	for {
		_, err := rd.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// batchToken makes the attempt's score token of job's workspace; drop
// deletes it.
func (w *Worker) batchToken(ctx context.Context, st batchStore, job *api.Job, attempt int) (string, func(), error) {
	raw := make([]byte, 20)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	secret := "jgt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	now := w.now().UTC()
	exp := now.Add(time.Duration(job.Spec.TimeoutSeconds)*time.Second + time.Hour)
	id := fmt.Sprintf("batch-%s-%d", job.ID, attempt)
	t := api.Token{ID: id, Workspace: job.Workspace, Name: "batch " + job.ID, Scopes: []api.Scope{api.ScopeScore},
		CreatedAt: now, ExpiresAt: &exp}
	if err := st.CreateToken(ctx, t, secret); err != nil {
		return "", nil, fmt.Errorf("batch token: %w", err)
	}
	return secret, func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := st.DeleteToken(cleanup, job.Workspace, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			w.logger.WarnContext(ctx, "delete batch token", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}, nil
}

// batchClient is the attempt's client to the router: a keep-alive
// connection kept idle per request in flight (Go's default keeps 2 per
// host, and 100 in all), each request traced; conns holds its
// connections, closed when the attempt ends.
func (w *Worker) batchClient(conc int) (_ *http.Client, conns *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	tr.MaxIdleConns = max(tr.MaxIdleConns, conc)
	return &http.Client{Transport: tracedTransport(tr), CheckRedirect: refuseRedirect}, tr
}

// scorer sends rows to the router.
type scorer struct {
	client *http.Client
	url    string
	token  string
	logger *slog.Logger
}

// batchRun is one attempt's pass over the rows not yet answered: a
// pipeline that keeps conc requests in flight across chunk boundaries (a
// sliding window: the next chunk's rows go out while the last rows of the
// one before are still being answered), and writes each chunk whole, in
// order, then the checkpoint after it, as a chunk-by-chunk pass would. What
// it holds is bounded: the chunks read ahead (batchAhead) and their
// answers, whatever the batch's size.
type batchRun struct {
	sc        *scorer
	conc      int
	total     int
	threshold int
	// put writes chunk i's answers; save records the progress after it.
	put  func(ctx context.Context, i int, answers []byte) error
	save func(ctx context.Context, p store.BatchProgress) error
	// metrics counts the rows answered; nil: off.
	metrics *metrics.Worker
}

// batchAhead is how many chunks are read and sent ahead of the one being
// written: enough for conc rows in flight when the oldest chunk has only
// its last row left to answer.
func batchAhead(conc int) int { return conc/batchChunkRows + 2 }

// pendingChunk is a chunk whose rows are out: its answers fill in as the
// rows are answered (wg counts those not yet).
type pendingChunk struct {
	index, first int
	lines        [][]byte
	bad          []bool
	errs         []error
	wg           sync.WaitGroup
	ctx          context.Context
	span         trace.Span
}

// run scores the rows of rd from prog on, advancing prog chunk by chunk as
// each is written and recorded.
func (r *batchRun) run(ctx context.Context, rd *bufio.Reader, prog *store.BatchProgress) error {
	ctx, cancel := context.WithCancel(ctx)
	queue := make(chan *pendingChunk, batchAhead(r.conc))
	var readErr error
	go func() {
		defer close(queue)
		readErr = r.send(ctx, rd, *prog, queue)
	}()
	// However it ends: stop sending, and wait for every row still out.
	defer func() {
		cancel()
		for c := range queue {
			c.wg.Wait()
			c.span.End()
		}
	}()
	for c := range queue {
		c.wg.Wait()
		answers, failed, err := c.answers()
		if err == nil {
			err = r.put(ctx, c.index, answers)
			if err != nil {
				err = fmt.Errorf("write batch answers: %w", err)
			}
		}
		if err == nil {
			prog.Chunks++
			prog.Done += len(c.lines)
			prog.Failed += failed
			r.metrics.BatchRows(metrics.BatchKindBatch, len(c.lines)-failed, failed)
			if err = r.save(ctx, *prog); err != nil {
				err = fmt.Errorf("batch checkpoint: %w", err)
			}
		}
		c.span.SetAttributes(attribute.Int("batch.failed", failed))
		if err != nil {
			c.span.RecordError(err)
			c.span.SetStatus(codes.Error, err.Error())
		}
		c.span.End()
		if err != nil {
			return err
		}
		if prog.Failed > r.threshold {
			return fmt.Errorf("%w: %d of %d rows failed, over error_threshold %d (after %d rows)",
				errBatchErrors, prog.Failed, r.total, r.threshold, prog.Done)
		}
	}
	if readErr == nil && ctx.Err() != nil {
		return context.Cause(ctx) // stopped between two chunks
	}
	return readErr
}

// send reads the rows from prog on, chunk by chunk, queues each chunk (in
// order; the queue's room bounds how far it reads ahead) and sends its
// rows, at most conc in flight across all chunks. It returns when the rows
// are all out, ctx is done, or reading them failed.
func (r *batchRun) send(ctx context.Context, rd *bufio.Reader, prog store.BatchProgress, queue chan<- *pendingChunk) error {
	sem := make(chan struct{}, r.conc)
	done, index := prog.Done, prog.Chunks
	for done < r.total {
		rows := make([][]byte, 0, batchChunkRows)
		var readErr error
		for len(rows) < batchChunkRows && done+len(rows) < r.total {
			line, err := rd.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				rows = append(rows, line)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = fmt.Errorf("read the batch's rows: %w", err)
				break
			}
		}
		if readErr != nil {
			return readErr
		}
		if len(rows) == 0 {
			return nil
		}
		c := &pendingChunk{index: index, first: done, lines: make([][]byte, len(rows)),
			bad: make([]bool, len(rows)), errs: make([]error, len(rows))}
		c.ctx, c.span = batchTracer().Start(ctx, "batch chunk", trace.WithAttributes(
			attribute.Int("batch.chunk", index), attribute.Int("batch.first_row", done), attribute.Int("batch.rows", len(rows))))
		c.wg.Add(len(rows))
		select {
		case queue <- c:
		case <-ctx.Done():
			c.span.End()
			return nil
		}
		for i, row := range rows {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < len(rows); j++ {
					c.errs[j] = context.Cause(ctx)
					c.wg.Done()
				}
				return nil
			}
			go func() {
				defer c.wg.Done()
				defer func() { <-sem }()
				c.lines[i], c.bad[i], c.errs[i] = r.sc.one(c.ctx, c.first+i, row)
			}()
		}
		done += len(rows)
		index++
	}
	return nil
}

// answers are c's answers, one line each in order, and how many failed;
// an error is the first row's that could not be answered at all (the
// router out of reach, ctx done): the attempt's.
func (c *pendingChunk) answers() ([]byte, int, error) {
	var out bytes.Buffer
	failed := 0
	for i := range c.lines {
		if c.errs[i] != nil {
			return nil, 0, c.errs[i]
		}
		out.Write(c.lines[i])
		out.WriteByte('\n')
		if c.bad[i] {
			failed++
		}
	}
	return out.Bytes(), failed, nil
}

// maxTransportTries bounds how often a row is sent again when the router
// does not answer at all, before the attempt fails (and is retried).
const maxTransportTries = 10

// one scores row index: the V2 answer on one line, or a row error line
// (bad).
func (s *scorer) one(ctx context.Context, index int, row []byte) (line []byte, bad bool, err error) {
	backoff := 50 * time.Millisecond
	for tries := 0; ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(row))
		if err != nil {
			return nil, false, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := s.client.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, false, context.Cause(ctx)
			}
			if tries++; tries >= maxTransportTries {
				return nil, false, fmt.Errorf("scoring router: %w", err)
			}
			wait = backoff
		default:
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				if ctx.Err() != nil {
					return nil, false, context.Cause(ctx)
				}
				wait = backoff
			case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
				wait = backoff
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
					wait = min(time.Duration(ra)*time.Second, 5*time.Second)
				}
			case resp.StatusCode == http.StatusBadGateway:
				// The router's replica died before it answered and no other
				// could take the row: not the row's fault. Sent again (the
				// router drops the dead replica: then 503 until one is ready).
				if tries++; tries >= maxTransportTries {
					return nil, false, fmt.Errorf("scoring router: %d: %s", resp.StatusCode, errorMessage(body))
				}
				wait = backoff
			case resp.StatusCode == http.StatusOK:
				var buf bytes.Buffer
				if err := json.Compact(&buf, body); err == nil {
					return buf.Bytes(), false, nil
				}
				return rowError(index, "the model's answer is not JSON")
			default:
				return rowError(index, fmt.Sprintf("%d: %s", resp.StatusCode, errorMessage(body)))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false, context.Cause(ctx)
		case <-t.C:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func rowError(index int, msg string) ([]byte, bool, error) {
	b, err := json.Marshal(api.BatchRowError{Index: index, Error: msg})
	return b, true, err
}

// errorMessage is what an error answer says: its "error" field (V2's
// error body), else its text, cut short.
func errorMessage(body []byte) string {
	var v struct {
		Error any `json:"error"`
	}
	s := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &v) == nil && v.Error != nil {
		if m, ok := v.Error.(string); ok {
			s = m
		} else {
			b, _ := json.Marshal(v.Error)
			s = string(b)
		}
	}
	// The target is the user's code: its message is cut short whatever
	// its form (it becomes the error of each row it refuses).
	if len(s) > maxErrorMessage {
		s = strings.ToValidUTF8(s[:maxErrorMessage], "") + "..."
	}
	return s
}

// maxErrorMessage caps what errorMessage keeps of an answer.
const maxErrorMessage = 512

// refuseRedirect is the CheckRedirect of the clients that send rows: a
// redirect is the target's answer (an unexpected status), never followed
// with the rows (and a token) to wherever it points.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
