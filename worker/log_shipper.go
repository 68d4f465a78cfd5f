package worker

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"time"

	"jobgate/internal/store"
)

// logShipper turns a workload's stdout and stderr into lines, in the order
// they arrive, and ships them in batches to the job's live Redis stream and to
// a local file that becomes the at-rest log. Writers block while too much is
// buffered, so a job that prints faster than Redis takes it slows down instead
// of losing lines or growing memory without bound.
type logShipper struct {
	jobID  string
	store  *store.Store
	file   *os.File
	fileW  *bufio.Writer
	stdout *lineWriter
	stderr *lineWriter
	done   chan struct{}
	// redact masks secrets in a line; nil when the job has none.
	redact func([]byte) []byte

	// mu guards the fields below.
	mu      sync.Mutex
	cond    *sync.Cond
	pending []store.LogLine
	bytes   int
	closed  bool
	err     error
}

const (
	maxBufferedBytes = 8 << 20
	batchLines       = 512
)

func newLogShipper(jobID string, st *store.Store, file *os.File, redact func([]byte) []byte) *logShipper {
	s := &logShipper{jobID: jobID, store: st, file: file, fileW: bufio.NewWriterSize(file, 256<<10), done: make(chan struct{}), redact: redact}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.bytes > maxBufferedBytes && !s.closed {
		s.cond.Wait()
	}
	s.pending = append(s.pending, l)
	s.bytes += len(l.Line)
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
		for len(s.pending) == 0 && !s.closed {
			s.cond.Wait()
		}
		batch := s.pending
		s.pending = nil
		s.bytes = 0
		closed := s.closed
		s.cond.Broadcast()
		s.mu.Unlock()
		if len(batch) == 0 && closed {
			return
		}
		s.ship(batch)
	}
}

func (s *logShipper) ship(batch []store.LogLine) {
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
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
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
