package worker

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

// logShipper turns a workload's stdout and stderr into lines, in the order
// they arrive, and ships them in batches to the job's live Redis stream
// (labelled with the attempt) and to a local file that becomes the at-rest
// log. Writers block while too much is buffered, so a job that prints faster
// than Redis takes it slows down instead of losing lines or growing memory
// without bound. A line longer than maxLine bytes is split into lines of up
// to maxLine bytes, and a note in the log says so: no line, however long, is
// held whole. A split never cuts a secret in two (see redaction.cut), so
// each piece is masked as the whole line would be. What one attempt may put
// in the live stream (shared Redis memory) and in the at-rest file (the
// worker's disk) is capped too: past a cap the lines go on to the other
// place only, after a note, so a job printing without end can exhaust
// neither.
//
// Metric lines on stdout ("::metric name=loss value=0.31 step=12", see
// parseMetricLine) are also recorded as metric points, parsed from the line as
// logged (secrets masked), and shipped with the batch their line is in; the
// line stays in the log.
type logShipper struct {
	jobID  string
	store  *store.Store
	fileW  *bufio.Writer
	stdout *lineWriter
	stderr *lineWriter
	done   chan struct{}
	// attempt labels the lines in the live stream.
	attempt int
	// redact masks secrets in a line; nil when the job has none.
	redact *redaction
	limits logLimits
	// liveBytes and fileBytes count what this attempt shipped to the stream
	// and the file; liveFull and fileFull are set once a cap was reached.
	// Only the loop goroutine uses them.
	liveBytes, fileBytes int64
	liveFull, fileFull   bool
	// warnedLimit is set once the log says that metric points were dropped;
	// only the loop goroutine uses it.
	warnedLimit bool
	// onMetrics, when set, is called after metric points were recorded (a
	// child job's, which a sweep judges as they arrive).
	onMetrics func(context.Context)
	closeOnce sync.Once
	// closeErr is what Close returns; set once, in closeOnce.
	closeErr error

	// mu guards the fields below.
	mu      sync.Mutex
	cond    *sync.Cond
	pending []store.LogLine
	metrics []store.MetricPoint
	// seen counts the points of each metric name in this attempt: the step
	// of a point that gives none.
	seen   map[string]int64
	bytes  int
	closed bool
	err    error
}

const (
	maxBufferedBytes = 8 << 20
	batchLines       = 512
	// defaultMaxLogLine is where a log line is split (Config.MaxLogLineBytes).
	defaultMaxLogLine = 1 << 20
	// defaultMaxLiveLog and defaultMaxLog cap one attempt's log in the live
	// stream and at rest (Config.MaxLiveLogBytes, Config.MaxLogBytes).
	defaultMaxLiveLog = 64 << 20
	defaultMaxLog     = 10 << 30
	// metricPointBytes is what a buffered metric point counts for, besides its line.
	metricPointBytes = 64
)

// logLimits bound one attempt's log; a zero field takes its default.
type logLimits struct {
	// line is where a line is split (defaultMaxLogLine).
	line int
	// live is what the attempt may put in the live stream, in bytes with
	// newlines (defaultMaxLiveLog).
	live int64
	// file is what the attempt may put in its at-rest log (defaultMaxLog).
	file int64
}

// newLogShipper ships the log of one attempt of job jobID within limits.
// Close must be called.
func newLogShipper(jobID string, attempt int, st *store.Store, file *os.File, redact *redaction, limits logLimits, onMetrics func(context.Context)) *logShipper {
	// A piece of a long line holds a secret whole, with room to spare.
	limits.line = max(cmp.Or(limits.line, defaultMaxLogLine), 2*redact.longest())
	limits.live = cmp.Or(limits.live, defaultMaxLiveLog)
	limits.file = cmp.Or(limits.file, defaultMaxLog)
	s := &logShipper{jobID: jobID, attempt: attempt, store: st, fileW: bufio.NewWriterSize(file, 256<<10), done: make(chan struct{}),
		redact: redact, limits: limits, onMetrics: onMetrics, seen: map[string]int64{}}
	s.cond = sync.NewCond(&s.mu)
	s.stdout = &lineWriter{ship: s, stream: store.Stdout, max: limits.line}
	s.stderr = &lineWriter{ship: s, stream: store.Stderr, max: limits.line}
	go s.loop()
	return s
}

func (s *logShipper) add(l store.LogLine) {
	l.Line = s.redact.mask(l.Line)
	var (
		pt       store.MetricPoint
		isMetric bool
	)
	if l.Stream == store.Stdout {
		if pt, isMetric = parseMetricLine(l.Line); isMetric {
			pt.Time = time.Now()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.bytes > maxBufferedBytes && !s.closed {
		s.cond.Wait()
	}
	s.pending = append(s.pending, l)
	s.bytes += len(l.Line)
	if isMetric {
		if pt.Step == noStep {
			pt.Step = s.seen[pt.Name]
		}
		// Past the store's name limit a new name is dropped there anyway;
		// not counting it keeps the map small whatever the job prints.
		if _, ok := s.seen[pt.Name]; ok || len(s.seen) < store.MaxMetricNames {
			s.seen[pt.Name]++
		}
		s.metrics = append(s.metrics, pt)
		s.bytes += metricPointBytes
	}
	s.cond.Broadcast()
}

// loop ships whatever is buffered, one batch at a time, until Close has been
// called and the buffer is empty. Lines that arrive while a batch is in flight
// form the next batch, so a busy job gets big pipelines and a quiet one sees
// each line at once.
func (s *logShipper) loop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && len(s.metrics) == 0 && !s.closed {
			s.cond.Wait()
		}
		batch, metrics := s.pending, s.metrics
		s.pending, s.metrics = nil, nil
		s.bytes = 0
		closed := s.closed
		s.cond.Broadcast()
		s.mu.Unlock()
		if len(batch) == 0 && len(metrics) == 0 && closed {
			return
		}
		s.ship(batch, metrics)
	}
}

// ship writes a batch of lines to the file and the live stream, then records
// the metric points parsed from them. The store writes metric points in
// script calls of up to a thousand, so a job printing tens of thousands of
// metric lines costs a few dozen round trips, not one per line.
func (s *logShipper) ship(batch []store.LogLine, metrics []store.MetricPoint) {
	live := s.capped(batch)
	// Cleanup-style context: lines of a canceled job must still be shipped.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(live); i += batchLines {
		end := min(i+batchLines, len(live))
		if err := s.store.AppendLogs(ctx, s.jobID, s.attempt, live[i:end]); err != nil {
			s.setErr(err)
		}
	}
	if len(metrics) == 0 {
		return
	}
	err := s.store.AppendMetrics(ctx, s.jobID, metrics)
	if err == nil && s.onMetrics != nil {
		s.onMetrics(ctx)
	}
	switch {
	case errors.Is(err, store.ErrMetricLimit):
		// The job's fault, not Redis's: say so in its log, once.
		if !s.warnedLimit {
			s.warnedLimit = true
			note := store.LogLine{Stream: store.Stderr, Line: fmt.Appendf(nil,
				"jobgate: metrics of new names are not recorded: a job may have at most %d metric names", store.MaxMetricNames)}
			s.fileW.Write(note.Line)
			s.fileW.WriteByte('\n')
			if err := s.store.AppendLogs(ctx, s.jobID, s.attempt, []store.LogLine{note}); err != nil {
				s.setErr(err)
			}
		}
	case err != nil:
		s.setErr(err)
	}
}

// capped writes batch to the file up to its cap, and returns the part of
// batch the live stream still takes; each place gets a note, once, where its
// cap cut the log.
func (s *logShipper) capped(batch []store.LogLine) []store.LogLine {
	live := batch
	if s.liveFull {
		live = nil
	}
	for i, l := range batch {
		n := int64(len(l.Line)) + 1
		switch {
		case s.fileBytes+n <= s.limits.file:
			s.fileBytes += n
			s.fileW.Write(l.Line)
			s.fileW.WriteByte('\n')
		case !s.fileFull:
			s.fileFull = true
			fmt.Fprintf(s.fileW, "jobgate: this attempt's log reached %d MiB (the worker's --max-log-mb); the lines after this are not kept\n", s.limits.file>>20)
		}
		if s.liveFull {
			continue
		}
		if s.liveBytes+n > s.limits.live {
			s.liveFull = true
			note := store.LogLine{Stream: store.Stderr, Line: fmt.Appendf(nil,
				"jobgate: this attempt's live log reached %d MiB (the worker's --max-live-log-mb); the lines after this are in the log stored when the attempt ends", s.limits.live>>20)}
			live = append(batch[:i:i], note)
			continue
		}
		s.liveBytes += n
	}
	return live
}

// setErr records the first failure to reach Redis for Close to return.
func (s *logShipper) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Close flushes partial last lines and everything buffered, and waits until it
// is shipped; its goroutine has ended when Close returns. The error is the
// first failure to reach Redis (the at-rest file still has every line).
// Calling Close again does nothing and returns the same.
func (s *logShipper) Close() error {
	s.closeOnce.Do(func() {
		s.stdout.flush()
		s.stderr.flush()
		s.mu.Lock()
		s.closed = true
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.done
		err := s.fileW.Flush()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closeErr = cmp.Or(err, s.err)
	})
	return s.closeErr
}

// lineWriter splits one stream into lines. It holds at most max bytes of a
// line: a longer one goes out in pieces of up to max bytes as it comes, each
// a line of its own, and when it ends a note on stderr says how it was split.
// A piece ends where no secret is cut in two (redaction.cut): where the
// piece's end may be the start of a secret, that start goes on with the next
// piece, and the piece is shorter than max by less than the longest secret.
type lineWriter struct {
	ship   *logShipper
	stream store.Stream
	max    int

	// mu guards the fields below.
	mu      sync.Mutex
	partial []byte
	// pieces and size count what went out of the current line so far.
	pieces, size int
}

var _ io.Writer = (*lineWriter)(nil)

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		seg, rest, eol := bytes.Cut(p, []byte{'\n'})
		if eol && len(w.partial) == 0 && w.pieces == 0 && len(seg) <= w.max {
			// A whole line in one write, the common case.
			w.ship.add(store.LogLine{Stream: w.stream, Line: bytes.Clone(bytes.TrimSuffix(seg, []byte{'\r'}))})
			p = rest
			continue
		}
		// Past max, the line is long: send what fills a piece, keep the rest.
		for len(w.partial)+len(seg) > w.max {
			k := w.max - len(w.partial)
			piece := make([]byte, 0, w.max)
			piece = append(append(piece, w.partial...), seg[:k]...)
			seg = seg[k:]
			// What follows the cut (a secret may begin there) starts the next piece.
			c := w.ship.redact.cut(piece)
			w.partial = append(w.partial[:0], piece[c:]...)
			piece = piece[:c]
			w.ship.add(store.LogLine{Stream: w.stream, Line: piece})
			w.pieces++
			w.size += len(piece)
		}
		if need := len(w.partial) + len(seg); need > cap(w.partial) {
			// Grow to at most max, not past it as append would.
			b := make([]byte, len(w.partial), min(max(2*cap(w.partial), need), w.max))
			copy(b, w.partial)
			w.partial = b
		}
		w.partial = append(w.partial, seg...)
		if !eol {
			return n, nil
		}
		w.endLine(bytes.TrimSuffix(w.partial, []byte{'\r'}))
		p = rest
	}
	return n, nil
}

// endLine sends line, the end of the current line, and says how the line was
// split if it was. The caller holds mu.
func (w *lineWriter) endLine(line []byte) {
	w.ship.add(store.LogLine{Stream: w.stream, Line: bytes.Clone(line)})
	if w.pieces > 0 {
		name := "stdout"
		if w.stream == store.Stderr {
			name = "stderr"
		}
		w.ship.add(store.LogLine{Stream: store.Stderr, Line: fmt.Appendf(nil,
			"jobgate: a line of %d bytes on %s was longer than %d bytes; it was split into %d lines",
			w.size+len(line), name, w.max, w.pieces+1)})
	}
	w.pieces, w.size = 0, 0
	if w.partial = w.partial[:0]; cap(w.partial) > 64<<10 {
		w.partial = nil // do not keep a long line's buffer for short ones
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 || w.pieces > 0 {
		w.endLine(w.partial)
	}
}
