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

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// A batch job (Spec.Batch) is run by the worker itself, not by an
// executor: it reads the rows from the artifact store, sends each to the
// scoring router (/v2/models/{deployment}/infer) with at most
// max_concurrency in flight, backing off on 503 and 429, and writes the
// answers in order, in chunks of batchChunkRows rows, each chunk whole
// under its own key, then its progress (store.BatchProgress) as the
// checkpoint. A retried or resumed attempt starts at the first chunk not
// recorded; a chunk written again replaces itself, so no row is in the
// results twice.
//
// The router is reached with a token of the job's workspace with the score
// scope only, made for the attempt and deleted when it ends (it expires
// with the job's timeout if the worker dies first).

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
func (w *Worker) runBatch(ctx context.Context, job *api.Job, attempt int, logw io.Writer) (Outcome, error) {
	b := job.Spec.Batch
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
	sc := &scorer{client: w.batchClient(b.MaxConcurrency), url: w.cfg.ScoringURL + "/v2/models/" + b.Deployment + "/infer",
		token: token, logger: w.logger}
	for prog.Done < b.Total {
		rows := make([][]byte, 0, batchChunkRows)
		for len(rows) < batchChunkRows && prog.Done+len(rows) < b.Total {
			line, err := rd.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				rows = append(rows, line)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return Outcome{}, fmt.Errorf("read the batch's rows: %w", err)
			}
		}
		if len(rows) == 0 {
			break
		}
		answers, failed, err := sc.chunk(ctx, prog.Done, rows, b.MaxConcurrency)
		if err != nil {
			return Outcome{}, err
		}
		if err := w.artifacts.Put(ctx, batchChunkKey(job.ID, prog.Chunks), bytes.NewReader(answers)); err != nil {
			return Outcome{}, fmt.Errorf("write batch answers: %w", err)
		}
		prog.Chunks++
		prog.Done += len(rows)
		prog.Failed += failed
		if err := st.SetBatchProgress(ctx, job.ID, prog); err != nil {
			return Outcome{}, fmt.Errorf("batch checkpoint: %w", err)
		}
		if prog.Failed > b.ErrorThreshold {
			return Outcome{}, fmt.Errorf("%w: %d of %d rows failed, over error_threshold %d (after %d rows)",
				errBatchErrors, prog.Failed, b.Total, b.ErrorThreshold, prog.Done)
		}
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

func (w *Worker) batchClient(conc int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	return &http.Client{Transport: tr}
}

// scorer sends rows to the router.
type scorer struct {
	client *http.Client
	url    string
	token  string
	logger *slog.Logger
}

// chunk scores rows (the first is row first of the batch), at most conc at
// once, and returns their answers, one line each in order, and how many
// failed. An error is the attempt's (the router out of reach, ctx done).
func (s *scorer) chunk(ctx context.Context, first int, rows [][]byte, conc int) ([]byte, int, error) {
	lines := make([][]byte, len(rows))
	bad := make([]bool, len(rows))
	errs := make([]error, len(rows))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, row := range rows {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, 0, context.Cause(ctx)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lines[i], bad[i], errs[i] = s.one(ctx, first+i, row)
		}()
	}
	wg.Wait()
	var out bytes.Buffer
	failed := 0
	for i := range rows {
		if errs[i] != nil {
			return nil, 0, errs[i]
		}
		out.Write(lines[i])
		out.WriteByte('\n')
		if bad[i] {
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
	if json.Unmarshal(body, &v) == nil && v.Error != nil {
		if s, ok := v.Error.(string); ok {
			return s
		}
		b, _ := json.Marshal(v.Error)
		return string(b)
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}
