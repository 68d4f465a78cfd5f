package worker

import (
	"bufio"
	"bytes"
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
// they arrive, and ships them in batches to the job's live Redis stream and to
// a local file that becomes the at-rest log. Writers block while too much is
// buffered, so a job that prints faster than Redis takes it slows down instead
// of losing lines or growing memory without bound.
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
	// redact masks secrets in a line; nil when the job has none.
	redact func([]byte) []byte
	// warnedLimit is set once the log says that metric points were dropped;
	// only the loop goroutine uses it.
	warnedLimit bool

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
	// metricPointBytes is what a buffered metric point counts for, besides its line.
	metricPointBytes = 64
)

func newLogShipper(jobID string, st *store.Store, file *os.File, redact func([]byte) []byte) *logShipper {
	s := &logShipper{jobID: jobID, store: st, fileW: bufio.NewWriterSize(file, 256<<10), done: make(chan struct{}),
		redact: redact, seen: map[string]int64{}}
	s.cond = sync.NewCond(&s.mu)
	s.stdout = &lineWriter{ship: s, stream: store.Stdout}
	s.stderr = &lineWriter{ship: s, stream: store.Stderr}
	go s.loop()
	return s
}

func (s *logShipper) add(l store.LogLine) {
	if s.redact != nil {
		l.Line = s.redact(l.Line)
	}
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
	for _, l := range batch {
		s.fileW.Write(l.Line)
		s.fileW.WriteByte('\n')
	}
	// Cleanup-style context: lines of a canceled job must still be shipped.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(batch); i += batchLines {
		end := min(i+batchLines, len(batch))
		if err := s.store.AppendLogs(ctx, s.jobID, batch[i:end]); err != nil {
			s.setErr(err)
		}
	}
	if len(metrics) == 0 {
		return
	}
	err := s.store.AppendMetrics(ctx, s.jobID, metrics)
	switch {
	case errors.Is(err, store.ErrMetricLimit):
		// The job's fault, not Redis's: say so in its log, once.
		if !s.warnedLimit {
			s.warnedLimit = true
			note := store.LogLine{Stream: store.Stderr, Line: fmt.Appendf(nil,
				"jobgate: metrics of new names are not recorded: a job may have at most %d metric names", store.MaxMetricNames)}
			s.fileW.Write(note.Line)
			s.fileW.WriteByte('\n')
			if err := s.store.AppendLogs(ctx, s.jobID, []store.LogLine{note}); err != nil {
				s.setErr(err)
			}
		}
	case err != nil:
		s.setErr(err)
	}
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
// is shipped. The error is the first failure to reach Redis (the at-rest file
// still has every line).
func (s *logShipper) Close() error {
	s.stdout.flush()
	s.stderr.flush()
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	if err := s.fileW.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// lineWriter splits one stream into lines; a line may be any length.
type lineWriter struct {
	ship   *logShipper
	stream store.Stream

	// mu guards the field below.
	mu      sync.Mutex
	partial []byte
}

var _ io.Writer = (*lineWriter)(nil)

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			return n, nil
		}
		line := p[:i]
		if len(w.partial) > 0 {
			line = append(w.partial, line...)
			w.partial = nil
		} else {
			line = bytes.Clone(line)
		}
		w.ship.add(store.LogLine{Stream: w.stream, Line: bytes.TrimSuffix(line, []byte{'\r'})})
		p = p[i+1:]
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.ship.add(store.LogLine{Stream: w.stream, Line: w.partial})
		w.partial = nil
	}
}
