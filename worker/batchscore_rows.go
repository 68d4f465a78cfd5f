package worker

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
)

// scoreTarget is where a batch-score job's mini-batches go: its own model
// server (URL http://ADDR/v2/models/NAME/infer, no token) or a
// deployment's scoring path on the router (with a score-scope token).
type scoreTarget struct {
	// client sends the requests (nil: http.DefaultClient). Its transport
	// is the caller's: wrap it with tracedTransport so that each request
	// carries its mini-batch's span (traceparent) on to the router and the
	// model server; scoreFile only makes each request with the context of
	// that span.
	client *http.Client
	url    string
	// token, when set, is sent as "Authorization: Bearer TOKEN".
	token string
	// backoff is the first wait before a request is sent again (it
	// doubles up to scoreMaxBackoff); zero means scoreBackoff.
	backoff time.Duration
}

const (
	// scoreBackoff is the first wait before a mini-batch is sent again
	// after a 503, a 429 without Retry-After, a 5xx or no answer.
	scoreBackoff = 50 * time.Millisecond
	// scoreMaxBackoff caps the doubling of the wait.
	scoreMaxBackoff = 2 * time.Second
	// scoreMaxRetryAfter caps how long a Retry-After is honoured.
	scoreMaxRetryAfter = 5 * time.Second
	// scoreMaxTries bounds how often a mini-batch is sent when the target
	// does not answer or answers a 5xx other than 503, before the
	// attempt fails.
	scoreMaxTries = 10
	// scoreMaxAnswer caps the body of an answer read.
	scoreMaxAnswer = 64 << 20
	// maxRowLine is the longest line of an input file that is a row; a
	// longer one is a row error (and never held whole).
	maxRowLine = 1 << 20
	// maxErrorRowsHeld caps the row errors a mini-batch collects while
	// its rows are read: a file of bad rows is held a bounded part at a
	// time too.
	maxErrorRowsHeld = 1024
)

// scoreFile scores one input file of a batch-score job: name is its path
// relative to the input folder (what the predictions' "file" says), in its
// format by extension (.csv with a header row; .jsonl or .ndjson), read
// from in as it goes (never all at once). It sends mini-batches of
// b.MiniBatchSize rows as V2 requests (one FP32 tensor b.InputName of
// shape [rows, columns]) to t, at most b.MaxConcurrency in flight, each
// mini-batch a span under ctx's, and writes one api.BatchScorePrediction
// line per row to out, in row order. A row the model refuses (a 4xx for
// its mini-batch, then for itself alone) or that is not numbers is a
// prediction with Error, counted in failed. err is the attempt's: the
// target unreachable or answering 5xx after retries, ctx done, the file
// unreadable.
//
// The rows: a CSV file's first record is its header (the column names);
// each later record is a row, its cells numbers, as many as the header's.
// A JSON-lines file's non-blank lines are rows, each an array of numbers
// or an object of numbers (the columns in the first object's key order;
// every later object has the same keys), all of the file's first row's
// form and width. A line over 1 MiB, a cell that is not a finite FP32
// number, a row of another width: a row error, naming the column.
//
// The answer of a mini-batch of n rows is a V2 response; each output of
// shape [n, d...] is split by its first dimension: a row gets its slice of
// the data (flat, d... elements) and the shape [d...]. A 503 or 429 is
// sent again after a back-off (Retry-After honoured, capped), for as long
// as ctx lives; no answer or another 5xx, up to scoreMaxTries times; a 4xx
// sends each of the mini-batch's rows alone, and a row refused alone gets
// the error "STATUS: MESSAGE". An answer that does not fit the rows is an
// error of each of them.
//
// At most b.MaxConcurrency mini-batches are in flight or answered and not
// yet written; the next one is read meanwhile. Memory is bounded by that
// and by b.MiniBatchSize, not by the file. On an error, what out got is
// a part of the file's lines (rows and failed count the lines made until
// then): the caller discards it.
func scoreFile(ctx context.Context, t scoreTarget, name string, in io.Reader, b *api.BatchScore, out io.Writer) (rows, failed int, err error) {
	// Reading ends with ctx too, even within a line read past (a sparse
	// file of terabytes is one line of zeros).
	in = ctxReader{ctx: ctx, r: in} // (inputs.go)
	var src rowSource
	switch strings.ToLower(path.Ext(name)) {
	case ".csv":
		src = newCSVRows(in)
	case ".jsonl", ".ndjson":
		src = newJSONRows(in)
	default:
		return 0, 0, fmt.Errorf("batch-score: %s: not a .csv, .jsonl or .ndjson file", name)
	}
	// The target's redirects are answers, not followed (refuseRedirect).
	client := *cmp.Or(t.client, http.DefaultClient)
	client.CheckRedirect = refuseRedirect
	s := &fileScorer{
		target: t, file: name, inputName: cmp.Or(b.InputName, "input"),
		client: &client, backoff: cmp.Or(t.backoff, scoreBackoff),
	}
	// The defaults are the spec's (internal/job fills them in).
	size, conc := max(cmp.Or(b.MiniBatchSize, 10), 1), max(cmp.Or(b.MaxConcurrency, 2), 1)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	w := bufio.NewWriterSize(out, 64<<10)
	file, err := json.Marshal(name)
	if err != nil {
		return 0, 0, fmt.Errorf("batch-score: %w", err)
	}
	var line []byte
	// window holds the mini-batches in flight or answered, in row order.
	window := make([]*miniBatch, 0, conc)
	// stop ends the file on err: the mini-batches in flight are canceled
	// and waited for (they write into theirs).
	stop := func(err error) (int, int, error) {
		cancel(err)
		wg.Wait()
		return rows, failed, context.Cause(ctx)
	}
	// writeHead waits for the oldest mini-batch and writes its lines.
	writeHead := func() error {
		m := window[0]
		select {
		case <-m.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if m.err != nil {
			return m.err
		}
		window = window[1:]
		for _, r := range m.rows {
			line = predictionLine(line[:0], file, r)
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("batch-score: write predictions: %w", err)
			}
			rows++
			if r.err != "" {
				failed++
			}
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return stop(context.Cause(ctx))
		}
		m, err := readMiniBatch(src, size)
		if err != nil {
			return stop(fmt.Errorf("batch-score: %s: %w", name, err))
		}
		if m == nil {
			break
		}
		for len(window) >= conc {
			if err := writeHead(); err != nil {
				return stop(err)
			}
		}
		window = append(window, m)
		if m.sent == 0 {
			close(m.done)
			continue
		}
		wg.Go(func() {
			defer close(m.done)
			if m.err = s.score(ctx, m); m.err != nil {
				cancel(m.err)
			}
		})
	}
	for len(window) > 0 {
		if err := writeHead(); err != nil {
			return stop(err)
		}
	}
	if err := w.Flush(); err != nil {
		return rows, failed, fmt.Errorf("batch-score: write predictions: %w", err)
	}
	return rows, failed, nil
}

// predictionLine appends r's api.BatchScorePrediction line to b (as
// json.Marshal writes it, its outputs as they are: JSON already); file is
// the file's name in JSON.
func predictionLine(b, file []byte, r *scoreRow) []byte {
	b = append(b, `{"file":`...)
	b = append(b, file...)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(r.row), 10)
	if len(r.outputs) > 0 {
		b = append(b, `,"outputs":[`...)
		for i, o := range r.outputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, o...)
		}
		b = append(b, ']')
	}
	if r.err != "" {
		msg, _ := json.Marshal(r.err) // a string always marshals
		b = append(b, `,"error":`...)
		b = append(b, msg...)
	}
	return append(b, "}\n"...)
}

// scoreRow is one data row of a file: its numbers, or why it has none;
// then the model's outputs for it, or its error.
type scoreRow struct {
	row     int
	x       []float32 // nil for a row error
	err     string
	outputs []json.RawMessage
}

// miniBatch is the rows of one request, in order, with the row errors
// read among them (which are not sent).
type miniBatch struct {
	rows []*scoreRow
	sent int // rows with numbers
	done chan struct{}
	err  error // the attempt's
}

// readMiniBatch reads up to size rows with numbers (and the row errors
// among them, up to maxErrorRowsHeld); nil at the end of the file.
func readMiniBatch(src rowSource, size int) (*miniBatch, error) {
	m := &miniBatch{done: make(chan struct{})}
	for m.sent < size && len(m.rows)-m.sent < maxErrorRowsHeld {
		r, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		m.rows = append(m.rows, r)
		if r.err == "" {
			m.sent++
		}
	}
	if len(m.rows) == 0 {
		return nil, nil
	}
	return m, nil
}

// fileScorer sends one file's mini-batches to the target.
type fileScorer struct {
	target    scoreTarget
	client    *http.Client
	file      string
	inputName string
	backoff   time.Duration
}

// score sends m's rows as one request, in a span of its own, and fills
// in each row's outputs or error. A 4xx sends each row alone.
func (s *fileScorer) score(ctx context.Context, m *miniBatch) (err error) {
	send := make([]*scoreRow, 0, m.sent)
	for _, r := range m.rows {
		if r.err == "" {
			send = append(send, r)
		}
	}
	ctx, span := batchTracer().Start(ctx, "batch-score mini-batch", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("jobgate.file", s.file), attribute.Int("jobgate.first_row", send[0].row),
			attribute.Int("jobgate.rows", len(send))))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		bad := 0
		for _, r := range send {
			if r.err != "" {
				bad++
			}
		}
		span.SetAttributes(attribute.Int("jobgate.failed_rows", bad))
		span.End()
	}()

	status, body, err := s.post(ctx, send)
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		s.answer(send, body)
		return nil
	}
	if len(send) == 1 {
		send[0].err = fmt.Sprintf("%d: %s", status, errorMessage(body))
		return nil
	}
	// Refused: find the rows it refuses by sending each alone.
	for _, r := range send {
		one := []*scoreRow{r}
		status, body, err := s.post(ctx, one)
		if err != nil {
			return err
		}
		if status == http.StatusOK {
			s.answer(one, body)
		} else {
			r.err = fmt.Sprintf("%d: %s", status, errorMessage(body))
		}
	}
	return nil
}

// post sends rows as one V2 request and returns the answer: 200 or a 4xx
// other than 429 (401, 403 and 404 are the attempt's error: no row is at
// fault). It sends again on 503 and 429 while ctx lives, and on no
// answer or another 5xx up to scoreMaxTries times.
func (s *fileScorer) post(ctx context.Context, rows []*scoreRow) (int, []byte, error) {
	body, err := s.request(rows)
	if err != nil {
		return 0, nil, err
	}
	what := fmt.Sprintf("%s rows %d-%d", s.file, rows[0].row, rows[len(rows)-1].row)
	backoff := s.backoff
	for tries := 0; ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target.url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, fmt.Errorf("batch-score: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		if s.target.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.target.token)
		}
		var wait time.Duration
		var failure error // an answer that counts as a try
		resp, err := s.client.Do(req)
		if err == nil {
			var answer []byte
			answer, err = io.ReadAll(io.LimitReader(resp.Body, scoreMaxAnswer))
			resp.Body.Close()
			switch {
			case err != nil:
			case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
				wait = retryAfter(resp.Header.Get("Retry-After"), backoff)
			case resp.StatusCode >= 500:
				failure = fmt.Errorf("%d: %s", resp.StatusCode, errorMessage(answer))
			case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
				// The token or the model is wrong, not the rows: every row
				// would fail alike, so the attempt fails, saying why.
				return 0, nil, fmt.Errorf("batch-score: score %s at %s: %d: %s", what, s.target.url, resp.StatusCode, errorMessage(answer))
			case resp.StatusCode == http.StatusOK || (resp.StatusCode >= 400 && resp.StatusCode < 500):
				return resp.StatusCode, answer, nil
			default:
				failure = fmt.Errorf("unexpected status %d: %s", resp.StatusCode, errorMessage(answer))
			}
		}
		if ctx.Err() != nil {
			return 0, nil, context.Cause(ctx)
		}
		if err != nil {
			failure = err
		}
		if failure != nil {
			if tries++; tries >= scoreMaxTries {
				return 0, nil, fmt.Errorf("batch-score: score %s at %s: %d tries: %w", what, s.target.url, tries, failure)
			}
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, context.Cause(ctx)
		case <-t.C:
		}
		backoff = min(backoff*2, scoreMaxBackoff)
	}
}

// retryAfter is how long a 503 or 429 says to wait (seconds or an HTTP
// date, capped at scoreMaxRetryAfter), else backoff.
func retryAfter(h string, backoff time.Duration) time.Duration {
	if h == "" {
		return backoff
	}
	var d time.Duration
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = time.Until(at)
	} else {
		return backoff
	}
	if d <= 0 {
		return backoff
	}
	return min(d, scoreMaxRetryAfter)
}

// request is the V2 request of rows: one FP32 tensor [rows, columns].
func (s *fileScorer) request(rows []*scoreRow) ([]byte, error) {
	id, err := json.Marshal(fmt.Sprintf("%s#%d", s.file, rows[0].row))
	if err != nil {
		return nil, err
	}
	inputName, err := json.Marshal(s.inputName)
	if err != nil {
		return nil, err
	}
	cols := len(rows[0].x)
	b := make([]byte, 0, 64+len(rows)*cols*8)
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"inputs":[{"name":`...)
	b = append(b, inputName...)
	b = append(b, `,"datatype":"FP32","shape":[`...)
	b = strconv.AppendInt(b, int64(len(rows)), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(cols), 10)
	b = append(b, `],"data":[`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, v := range r.x {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		}
		b = append(b, ']')
	}
	b = append(b, "]}]}"...)
	return b, nil
}

// v2Output is one output tensor of a V2 response.
type v2Output struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int64         `json:"shape"`
	Data     json.RawMessage `json:"data"`
}

// rowOutput is one row's slice of an output tensor, but its data.
type rowOutput struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// answer splits the V2 response body to rows by its outputs' first
// dimension; an answer that does not fit is each row's error.
func (s *fileScorer) answer(rows []*scoreRow, body []byte) {
	outs, err := splitAnswer(body, len(rows))
	for i, r := range rows {
		if err != nil {
			r.err = "the model's answer: " + err.Error()
			continue
		}
		r.outputs = outs[i]
	}
}

// splitAnswer is each of n rows' outputs in the V2 response body.
func splitAnswer(body []byte, n int) ([][]json.RawMessage, error) {
	var resp struct {
		Outputs []v2Output `json:"outputs"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("not a V2 response: %w", err)
	}
	if len(resp.Outputs) == 0 {
		return nil, errors.New("no outputs")
	}
	split := make([][]json.RawMessage, n)
	for _, o := range resp.Outputs {
		if len(o.Shape) == 0 || o.Shape[0] != int64(n) {
			return nil, fmt.Errorf("output %q has shape %v, want [%d, ...] for %d rows", o.Name, o.Shape, n, n)
		}
		k := int64(1)
		for _, d := range o.Shape[1:] {
			if d < 0 || (d > 0 && k > math.MaxInt32/d) {
				return nil, fmt.Errorf("output %q has shape %v", o.Name, o.Shape)
			}
			k *= d
		}
		leaves, err := flattenJSON(o.Data, nil)
		if err != nil {
			return nil, fmt.Errorf("output %q: data: %w", o.Name, err)
		}
		if int64(len(leaves)) != int64(n)*k {
			return nil, fmt.Errorf("output %q has %d elements, shape %v needs %d", o.Name, len(leaves), o.Shape, int64(n)*k)
		}
		// Each row's is {"name", "datatype", "shape": shape[1:], "data":
		// its k elements}, written out: the elements are JSON already.
		prefix, err := json.Marshal(rowOutput{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape[1:]})
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", o.Name, err)
		}
		prefix = append(prefix[:len(prefix)-1], `,"data":[`...) // {"name":...,"shape":[...]
		for i := range n {
			row := leaves[int64(i)*k : int64(i+1)*k]
			size := len(prefix) + 2
			for _, e := range row {
				size += len(e) + 1
			}
			b := append(make([]byte, 0, size), prefix...)
			for j, e := range row {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, e...)
			}
			split[i] = append(split[i], append(b, "]}"...))
		}
	}
	return split, nil
}

// flattenJSON appends the elements of raw, an array flat or nested, to
// leaves, as JSON. It reads raw once, token by token: what it costs is in
// raw's size, however deep the nesting (the answer is the user's code's).
func flattenJSON(raw json.RawMessage, leaves []json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errors.New("not an array")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				depth++
			case ']':
				depth--
			default:
				return nil, errors.New("an object is not a tensor element")
			}
		case json.Number:
			leaves = append(leaves, json.RawMessage(v))
		default:
			b, err := json.Marshal(v) // a string, a boolean or null
			if err != nil {
				return nil, err
			}
			leaves = append(leaves, b)
		}
		if depth == 0 {
			if dec.More() {
				return nil, errors.New("more than one value")
			}
			return leaves, nil
		}
	}
}

// rowSource reads a file's data rows in order; io.EOF at its end. An error
// is the file's (unreadable); a row that is not numbers is a row with err.
type rowSource interface {
	next() (*scoreRow, error)
}

// lineReader reads lines of at most maxRowLine bytes; a longer one is
// read past, never held whole.
type lineReader struct {
	r    *bufio.Reader
	long []byte // a line longer than r's buffer
}

func newLineReader(in io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(in, 64<<10)}
}

// line returns the next line with its newline (valid until the next call),
// or tooLong; io.EOF after the last.
func (l *lineReader) line() (line []byte, tooLong bool, err error) {
	l.long = l.long[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(l.long)+len(frag) > maxRowLine+2 {
				tooLong, l.long = true, l.long[:0]
			}
			if !tooLong {
				l.long = append(l.long, frag...)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		if len(frag) == 0 && len(l.long) == 0 && !tooLong {
			return nil, false, err // io.EOF
		}
		if tooLong {
			return nil, true, nil
		}
		line = frag
		if len(l.long) > 0 {
			l.long = append(l.long, frag...)
			line = l.long
		}
		if len(bytes.TrimRight(line, "\r\n")) > maxRowLine {
			return nil, true, nil
		}
		return line, false, nil
	}
}

// lineTooLong is the message of a row on a line over maxRowLine.
var lineTooLong = fmt.Sprintf("the line is longer than %d MiB", maxRowLine>>20)

// tooLongMark stands in for a CSV line over maxRowLine: a cell no number
// can be, so the record it makes is a row error.
const tooLongMark = "\x00jobgate: line too long\x00"

// csvFeed is the file as encoding/csv reads it: each line over
// maxRowLine replaced by tooLongMark, and a record (of quoted lines)
// growing past maxRowLine stopped with errRecordTooLong.
type csvFeed struct {
	lines   *lineReader
	pending []byte
	// served is the bytes given to the CSV reader; recordStart the offset
	// where its current record began.
	served, recordStart int64
}

var errRecordTooLong = fmt.Errorf("a record (a quoted cell over several lines) runs past %d MiB: a quote not closed?", maxRowLine>>20)

func (f *csvFeed) Read(p []byte) (int, error) {
	if len(f.pending) == 0 {
		if f.served-f.recordStart > maxRowLine+64<<10 {
			return 0, errRecordTooLong
		}
		line, tooLong, err := f.lines.line()
		if err != nil {
			return 0, err
		}
		if f.served == 0 {
			line = bytes.TrimPrefix(line, []byte("\ufeff")) // a byte order mark
		}
		f.pending = line
		if tooLong {
			f.pending = []byte(tooLongMark + "\n")
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	f.served += int64(n)
	return n, nil
}

// csvRows reads the rows of a CSV file with a header row.
type csvRows struct {
	feed   *csvFeed
	r      *csv.Reader
	header []string // nil until read
	row    int
}

func newCSVRows(in io.Reader) *csvRows {
	feed := &csvFeed{lines: newLineReader(in)}
	r := csv.NewReader(feed)
	r.FieldsPerRecord = -1 // a row of another width is a row error, not the file's
	r.ReuseRecord = true
	return &csvRows{feed: feed, r: r}
}

func (c *csvRows) next() (*scoreRow, error) {
	if c.header == nil {
		rec, err := c.read()
		if err != nil {
			if _, ok := errors.AsType[*csv.ParseError](err); ok {
				return nil, fmt.Errorf("the header row: %w", err)
			}
			return nil, err
		}
		c.header = make([]string, len(rec))
		for i, h := range rec {
			c.header[i] = strings.TrimSpace(h)
		}
	}
	rec, err := c.read()
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		r := &scoreRow{row: c.row, err: fmt.Sprintf("not CSV: %v", pe.Err)}
		c.row++
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	r := &scoreRow{row: c.row}
	c.row++
	if len(rec) == 1 && rec[0] == tooLongMark {
		r.err = lineTooLong
		return r, nil
	}
	if len(rec) != len(c.header) {
		r.err = fmt.Sprintf("%d cells, want %d (the header's)", len(rec), len(c.header))
		return r, nil
	}
	x := make([]float32, len(rec))
	for i, cell := range rec {
		v, msg := parseFP32(strings.TrimSpace(cell))
		if msg != "" {
			r.err = fmt.Sprintf("column %s: %s", c.column(i), msg)
			return r, nil
		}
		x[i] = v
	}
	r.x = x
	return r, nil
}

// read reads the next record, keeping the feed's record offset.
func (c *csvRows) read() ([]string, error) {
	rec, err := c.r.Read()
	c.feed.recordStart = c.r.InputOffset()
	if errors.Is(err, errRecordTooLong) {
		return nil, fmt.Errorf("row %d: %w", c.row, err)
	}
	return rec, err
}

// column names column i by the header, or its index when the header's
// cell is blank.
func (c *csvRows) column(i int) string {
	if c.header[i] == "" {
		return strconv.Itoa(i)
	}
	return strconv.Quote(c.header[i])
}

// parseFP32 is cell as a finite FP32 number, or why it is not one.
func parseFP32(cell string) (float32, string) {
	if cell == "" {
		return 0, "empty, want a number"
	}
	v, err := strconv.ParseFloat(cell, 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Sprintf("%s is beyond FP32's range", shorten(cell))
		}
		return 0, fmt.Sprintf("%s is not a number", strconv.Quote(shorten(cell)))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Sprintf("%s is not a finite number", cell)
	}
	return float32(v), ""
}

// shorten cuts s for an error message.
func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// jsonRows reads the rows of a JSON-lines file.
type jsonRows struct {
	lines *lineReader
	row   int
	// form is the first row's: '[' or '{' (0 until a row is read), and
	// width its numbers; keys the first object's, in order, and index
	// their columns.
	form  byte
	width int
	keys  []string
	index map[string]int
}

func newJSONRows(in io.Reader) *jsonRows { return &jsonRows{lines: newLineReader(in)} }

func (j *jsonRows) next() (*scoreRow, error) {
	for {
		line, tooLong, err := j.lines.line()
		if err != nil {
			return nil, err
		}
		if j.row == 0 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		line = bytes.TrimSpace(line)
		if !tooLong && len(line) == 0 {
			continue // a blank line is no row
		}
		r := &scoreRow{row: j.row}
		j.row++
		if tooLong {
			r.err = lineTooLong
			return r, nil
		}
		r.x, r.err = j.parse(line)
		return r, nil
	}
}

// parse is line's numbers, or why it has none.
func (j *jsonRows) parse(line []byte) ([]float32, string) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, "not JSON: " + err.Error()
	}
	var x []float32
	var msg string
	switch tok {
	case json.Delim('['):
		x, msg = j.array(dec)
	case json.Delim('{'):
		x, msg = j.object(dec)
	default:
		return nil, "want an array of numbers or an object of numbers"
	}
	if msg != "" {
		return nil, msg
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "more than one JSON value on the line"
	}
	return x, ""
}

// value reads the number of column col.
func value(dec *json.Decoder, col string) (float32, string) {
	tok, err := dec.Token()
	if err != nil {
		return 0, "not JSON: " + err.Error()
	}
	var what string
	switch v := tok.(type) {
	case json.Number:
		f, msg := parseFP32(v.String())
		if msg != "" {
			return 0, fmt.Sprintf("column %s: %s", col, msg)
		}
		return f, ""
	case json.Delim:
		if v == '[' {
			what = "an array"
		} else {
			what = "an object"
		}
	case string:
		what = "a string"
	case bool:
		what = "a boolean"
	case nil:
		what = "null"
	default:
		what = fmt.Sprintf("%T", v)
	}
	return 0, fmt.Sprintf("column %s: %s is not a number", col, what)
}

func (j *jsonRows) array(dec *json.Decoder) ([]float32, string) {
	if j.form == '{' {
		return nil, fmt.Sprintf("an array, but the file's rows are objects (of %s)", strings.Join(j.keys, ", "))
	}
	x := make([]float32, 0, j.width)
	for dec.More() {
		v, msg := value(dec, strconv.Itoa(len(x)))
		if msg != "" {
			return nil, msg
		}
		x = append(x, v)
	}
	if _, err := dec.Token(); err != nil { // ]
		return nil, "not JSON: " + err.Error()
	}
	switch {
	case len(x) == 0:
		return nil, "no numbers"
	case j.form == 0:
		j.form, j.width = '[', len(x)
	case len(x) != j.width:
		return nil, fmt.Sprintf("%d numbers, want %d (as the file's first row)", len(x), j.width)
	}
	return x, ""
}

func (j *jsonRows) object(dec *json.Decoder) ([]float32, string) {
	if j.form == '[' {
		return nil, fmt.Sprintf("an object, but the file's rows are arrays of %d numbers", j.width)
	}
	first := j.form == 0
	var keys []string
	var firstKeys map[string]bool
	if first {
		firstKeys = map[string]bool{}
	}
	x := make([]float32, len(j.keys))
	seen := make([]bool, len(j.keys))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "not JSON: " + err.Error()
		}
		key := tok.(string) // an object's keys are strings
		v, msg := value(dec, strconv.Quote(key))
		if msg != "" {
			return nil, msg
		}
		if first {
			if firstKeys[key] {
				return nil, fmt.Sprintf("key %q twice", key)
			}
			firstKeys[key] = true
			keys = append(keys, key)
			x = append(x, v)
			continue
		}
		i, ok := j.index[key]
		switch {
		case !ok:
			return nil, fmt.Sprintf("key %q is not a column (the file's first row has %s)", key, strings.Join(j.keys, ", "))
		case seen[i]:
			return nil, fmt.Sprintf("key %q twice", key)
		}
		x[i], seen[i] = v, true
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, "not JSON: " + err.Error()
	}
	if first {
		if len(keys) == 0 {
			return nil, "no numbers"
		}
		j.form, j.keys, j.width = '{', keys, len(keys)
		j.index = make(map[string]int, len(keys))
		for i, k := range keys {
			j.index[k] = i
		}
		return x, ""
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Sprintf("column %q: missing", j.keys[i])
		}
	}
	return x, ""
}
