package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// Exec sessions: `jobgate exec` runs a command beside a job this worker
// runs. Requests arrive on the worker's exec channel, output goes back on
// the session's Redis stream; queue/exec.go describes the exchange.

const (
	// maxExecSessions bounds the sessions one worker runs at once.
	maxExecSessions = 32
	// execFlushEvery is the longest output waits before it is sent.
	execFlushEvery = 50 * time.Millisecond
	// execFlushBytes of pending output make the writer send it at once and
	// wait, which paces a command that writes faster than Redis takes it.
	execFlushBytes = 256 << 10
)

// Causes a session's context ends with.
var (
	errExecTimeout   = errors.New("exec timeout")
	errExecCanceled  = errors.New("exec canceled by its client")
	errExecAbandoned = errors.New("exec lease expired: its client is gone")
)

// execSessions tracks the sessions a worker runs. The zero value is ready.
type execSessions struct {
	wg sync.WaitGroup

	// mu guards the field below.
	mu      sync.Mutex
	cancels map[string]context.CancelCauseFunc
}

// add registers a session; false when maxExecSessions already run.
func (s *execSessions) add(session string, cancel context.CancelCauseFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cancels) >= maxExecSessions {
		return false
	}
	if s.cancels == nil {
		s.cancels = map[string]context.CancelCauseFunc{}
	}
	s.cancels[session] = cancel
	return true
}

func (s *execSessions) remove(session string) {
	s.mu.Lock()
	delete(s.cancels, session)
	s.mu.Unlock()
}

func (s *execSessions) cancel(session string, cause error) {
	s.mu.Lock()
	cancel := s.cancels[session]
	s.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// subscribeExec subscribes to the worker's exec requests and returns once
// the subscription is live, so no request sent after a job started is missed.
func (w *Worker) subscribeExec(ctx context.Context) (*redis.PubSub, error) {
	sub := queue.SubscribeExec(ctx, w.rdb, w.cfg.ID)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, fmt.Errorf("subscribe to exec requests: %w", err)
	}
	return sub, nil
}

// serveExec runs the sessions requested on sub until ctx is done, then
// waits for them: they stop with ctx and report that the worker stopped.
func (w *Worker) serveExec(ctx context.Context, sub *redis.PubSub) {
	defer w.execs.wg.Wait()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			r, err := queue.ParseExecRequest([]byte(m.Payload))
			if err != nil {
				w.logger.WarnContext(ctx, "bad exec request", slog.Any("error", err))
				continue
			}
			if r.Cancel {
				w.execs.cancel(r.Session, errExecCanceled)
				continue
			}
			// Registered here, before the next message is read, so a cancel
			// that follows the request always finds the session.
			sctx, cancel := context.WithCancelCause(ctx)
			busy := !w.execs.add(r.Session, cancel)
			w.execs.wg.Go(func() {
				defer cancel(nil)
				if busy {
					w.failExec(ctx, r, queue.ExecCodeBusy, "worker %s runs %d exec sessions, its most; retry when one has ended", w.cfg.ID, maxExecSessions)
					return
				}
				defer w.execs.remove(r.Session)
				w.runExec(sctx, r)
			})
		}
	}
}

// failExec ends session r with an ExecFailed event before it started.
func (w *Worker) failExec(ctx context.Context, r queue.ExecRequest, code, format string, args ...any) {
	out := newExecOutput(ctx, w.rdb, r.Session, w.logger)
	out.finish(queue.ExecEvent{Kind: queue.ExecFailed, Code: code, Message: fmt.Sprintf(format, args...)})
}

// runExec runs one session: it checks that the job runs here, runs the
// command through the job's executor, and sends its output and how it ended.
func (w *Worker) runExec(ctx context.Context, r queue.ExecRequest) {
	log := w.logger.With(slog.String("job_id", r.JobID), slog.Int("attempt", r.Attempt), slog.String("exec_session", r.Session))
	ex, code, msg := w.execerFor(ctx, r)
	if ex == nil {
		w.failExec(ctx, r, code, "%s", msg)
		return
	}
	timeout := queue.ExecDefaultTimeout
	if r.TimeoutSeconds > 0 {
		timeout = min(time.Duration(r.TimeoutSeconds)*time.Second, queue.ExecMaxTimeout)
	}
	parent := ctx
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errExecTimeout)
	defer cancel()
	go w.watchExecLease(ctx, r.Session)

	out := newExecOutput(ctx, w.rdb, r.Session, log)
	stopFlushing := out.flushEvery(execFlushEvery)
	started := false
	exit, err := ex.Exec(ctx, r.JobID, r.Attempt, r.Command, ExecIO{
		Stdout: out.writer(queue.ExecStdout), Stderr: out.writer(queue.ExecStderr),
		Started: func() {
			started = true
			out.send(queue.ExecEvent{Kind: queue.ExecStarted})
			log.InfoContext(ctx, "exec started", slog.Any("command", r.Command))
		},
	})
	stopFlushing()

	end := queue.ExecEvent{Kind: queue.ExecExited, ExitCode: exit}
	cause := context.Cause(ctx)
	fail := func(code, format string, args ...any) {
		end = queue.ExecEvent{Kind: queue.ExecFailed, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case errors.Is(err, ErrNotRunning) && w.isRunning(r.JobID):
		fail(queue.ExecCodeNotRunning, "job %s has no running workload on worker %s right now (%s): it is starting or stopping", r.JobID, w.cfg.ID, detail(err, ErrNotRunning))
	case errors.Is(err, ErrNotRunning):
		fail(queue.ExecCodeNotRunning, "job %s is no longer running (%s)", r.JobID, detail(err, ErrNotRunning))
	case errors.Is(err, ErrStart):
		fail(queue.ExecCodeStart, "%s", detail(err, ErrStart))
	case parent.Err() != nil && !errors.Is(cause, errExecCanceled) && !errors.Is(cause, errExecAbandoned):
		fail(queue.ExecCodeWorkerStopped, "worker %s shut down during the command", w.cfg.ID)
	case errors.Is(cause, errExecTimeout):
		fail(queue.ExecCodeTimeout, "the command ran past its timeout of %s and was stopped", timeout)
	case err != nil:
		log.WarnContext(ctx, "exec failed", slog.Any("error", err))
		fail(queue.ExecCodeFailed, "worker %s could not run the command; its log says why", w.cfg.ID)
	}
	log.InfoContext(ctx, "exec ended", slog.Bool("started", started), slog.String("result", string(end.Kind)),
		slog.Int("exit_code", exit), slog.String("code", end.Code), slog.Any("cause", cause))
	out.finish(end)
}

// execerFor returns the executor to run r with, or an ExecFailed code and
// message saying why there is none.
func (w *Worker) execerFor(ctx context.Context, r queue.ExecRequest) (Execer, string, string) {
	job, err := w.store.GetJobByID(ctx, r.JobID)
	if err == nil && w.isRunning(r.JobID) && job.Status == api.StatusRunning && job.Attempt == r.Attempt && job.Worker == w.cfg.ID {
		if ex, ok := w.executors[job.Spec.Mode].(Execer); ok {
			return ex, "", ""
		}
		return nil, queue.ExecCodeUnsupported, fmt.Sprintf("worker %s cannot exec into %s jobs", w.cfg.ID, job.Spec.Mode)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
		return nil, queue.ExecCodeFailed, "look up the job: " + err.Error()
	}
	return nil, queue.ExecCodeNotRunning, fmt.Sprintf("job %s is not running attempt %d on worker %s", r.JobID, r.Attempt, w.cfg.ID)
}

// isRunning reports whether this worker runs an attempt of jobID.
func (w *Worker) isRunning(jobID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.running[jobID]
	return ok
}

// watchExecLease ends the session when its lease expires: the gateway
// renews it while its client listens.
func (w *Worker) watchExecLease(ctx context.Context, session string) {
	t := time.NewTicker(queue.ExecLeaseTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A Redis error is no proof the client left; the timeout
			// still bounds the session.
			if held, err := queue.ExecLeaseHeld(ctx, w.rdb, session); err == nil && !held {
				w.execs.cancel(session, errExecAbandoned)
				return
			}
		}
	}
}

// execOutput turns a command's output into the session's events: writes to
// one stream are merged into chunks of at most queue.ExecChunkBytes, cut
// between UTF-8 characters, and sent every execFlushEvery or when
// execFlushBytes are pending. A Redis failure drops output (and is logged
// once) rather than blocking the command.
type execOutput struct {
	// base carries no cancellation: output written while the command is
	// being stopped is sent too. Each send has its own timeout.
	base    context.Context
	rdb     redis.UniversalClient
	session string
	log     *slog.Logger

	// sendMu serializes sends, so events reach the stream in order.
	sendMu sync.Mutex

	// mu guards the fields below.
	mu      sync.Mutex
	seq     int64
	pending []queue.ExecEvent
	size    int
	// tails hold the start of a UTF-8 character a write ended in, until
	// the rest comes.
	tails  map[queue.ExecEventKind][]byte
	failed bool
}

func newExecOutput(ctx context.Context, rdb redis.UniversalClient, session string, log *slog.Logger) *execOutput {
	return &execOutput{base: context.WithoutCancel(ctx), rdb: rdb, session: session, log: log, tails: map[queue.ExecEventKind][]byte{}}
}

// writer is the io.Writer of one output stream. It never fails.
func (o *execOutput) writer(kind queue.ExecEventKind) *streamWriter {
	return &streamWriter{w: writerFunc(func(p []byte) (int, error) {
		o.mu.Lock()
		data := append(o.tails[kind], p...)
		keep := incompleteRune(data)
		o.tails[kind] = append([]byte(nil), data[len(data)-keep:]...)
		o.add(kind, data[:len(data)-keep])
		full := o.size >= execFlushBytes
		o.mu.Unlock()
		if full {
			o.flush()
		}
		return len(p), nil
	})}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// add queues b as output of kind, appended to the last event when it is of
// the same kind and has room. The caller holds mu.
func (o *execOutput) add(kind queue.ExecEventKind, b []byte) {
	for len(b) > 0 {
		n := len(o.pending)
		if n > 0 && o.pending[n-1].Kind == kind {
			last := &o.pending[n-1]
			if cut := runeCut(b, queue.ExecChunkBytes-len(last.Data)); cut > 0 {
				last.Data = append(last.Data, b[:cut]...)
				o.size += cut
				b = b[cut:]
				continue
			}
		}
		cut := runeCut(b, queue.ExecChunkBytes)
		o.pending = append(o.pending, queue.ExecEvent{Kind: kind, Data: append([]byte(nil), b[:cut]...)})
		o.size += cut
		b = b[cut:]
	}
}

// send queues e after the output so far and sends everything.
func (o *execOutput) send(e queue.ExecEvent) {
	o.mu.Lock()
	o.pending = append(o.pending, e)
	o.mu.Unlock()
	o.flush()
}

// finish sends what is left, character starts held back included, then e.
func (o *execOutput) finish(e queue.ExecEvent) {
	o.mu.Lock()
	for _, kind := range []queue.ExecEventKind{queue.ExecStdout, queue.ExecStderr} {
		o.add(kind, o.tails[kind])
		delete(o.tails, kind)
	}
	o.mu.Unlock()
	o.send(e)
}

// flushEvery sends pending output every d until the returned func is called.
func (o *execOutput) flushEvery(d time.Duration) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				o.flush()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func (o *execOutput) flush() {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	o.mu.Lock()
	events := o.pending
	o.pending, o.size = nil, 0
	for i := range events {
		o.seq++
		events[i].Seq = o.seq
	}
	o.mu.Unlock()
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(o.base, 10*time.Second)
	defer cancel()
	if err := queue.AppendExec(ctx, o.rdb, o.session, events...); err != nil {
		o.mu.Lock()
		first := !o.failed
		o.failed = true
		o.mu.Unlock()
		if first {
			o.log.WarnContext(ctx, "send exec output", slog.String("exec_session", o.session), slog.Any("error", err))
		}
	}
}

// runeCut is where to cut b to at most max bytes without splitting a UTF-8
// character: max itself, or up to 3 bytes before it when a character
// starts there; len(b) when it all fits. It is 0 only when max is too small
// for the first character.
func runeCut(b []byte, max int) int {
	if len(b) <= max {
		return len(b)
	}
	for cut := max; cut >= 0 && cut > max-utf8.UTFMax; cut-- {
		if utf8.RuneStart(b[cut]) {
			return cut
		}
	}
	return max // Not UTF-8 here; any cut will do.
}

// incompleteRune is the length of the start of a UTF-8 character that b
// ends in, or 0.
func incompleteRune(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return len(b) - i
			}
			return 0
		}
	}
	return 0
}
