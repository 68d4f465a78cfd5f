package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/queue"
)

// Exec: POST /v1/jobs/{id}/exec runs a command beside a running job, on the
// worker that runs it, and streams its output back as NDJSON. The gateway
// reaches the worker only through Redis (queue/exec.go has the exchange).

const (
	// execAckTimeout is how long the job's worker has to start the command
	// before the client gets a 504 (and the worker a cancel). Starting is
	// quick; this is for a worker that is alive on Redis but wedged.
	execAckTimeout = 10 * time.Second
	// execCheckEvery is how often a session with no news looks at the job:
	// a worker that died sends nothing more.
	execCheckEvery = 5 * time.Second
	// execDeadlineMargin is how long past its timeout a session may last
	// before the gateway stops waiting for the worker to end it.
	execDeadlineMargin = 30 * time.Second
	// maxAuditCommand bounds the command as the audit log records it.
	maxAuditCommand = 1024
)

// normalizeExec fills an exec request's defaults and checks it: the command
// as a job's, the timeout within queue.ExecMaxTimeout.
func normalizeExec(r *api.ExecRequest) error {
	if len(r.Command) == 0 {
		return invalid("command must be a non-empty array of strings (argv), e.g. [\"ls\", \"/outputs\"]")
	}
	if problem := job.CheckArgv("command", r.Command); problem != "" {
		return invalid("%s", problem)
	}
	maxSecs := int(queue.ExecMaxTimeout / time.Second)
	switch {
	case r.TimeoutSeconds == 0:
		r.TimeoutSeconds = int(queue.ExecDefaultTimeout / time.Second)
	case r.TimeoutSeconds < 0 || r.TimeoutSeconds > maxSecs:
		return invalid("timeout_seconds must be between 1 and %d, not %d", maxSecs, r.TimeoutSeconds)
	}
	return nil
}

func (g *Gateway) execJob(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	var req api.ExecRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	// Read to the end, so the server notices a client that goes away.
	_, _ = io.Copy(io.Discard, c.Request().Body)
	if err := normalizeExec(&req); err != nil {
		return err
	}
	job, err := g.store.GetJob(ctx, p.Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	if job.Spec.Mode == api.ModeTracked {
		return api.Errorf(api.CodeExecUnsupported, "job %s is a tracked run, which jobgate records but does not execute: there is nothing to exec into", job.ID)
	}
	if job.Status != api.StatusRunning || job.Worker == "" {
		return api.Errorf(api.CodeJobNotRunning, "job %s is %s; exec needs a running job", job.ID, job.Status)
	}
	if job.Spec.Mode == api.ModeProcess {
		// An exec beside a host process is a host command: it needs the
		// grant now, not only when the job was submitted.
		if err := g.jobs.CheckHostProcess(ctx, job.Workspace); err != nil {
			return err
		}
	}

	session := newID("ex")
	lease, err := queue.HoldExecLease(ctx, g.rdb, session)
	if err != nil {
		return err
	}
	finished := false
	defer func() {
		// Whatever happened, the worker need not go on: tell it, and
		// drop what is left of the session.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if !finished {
			_, _ = queue.PublishExec(cleanup, g.rdb, job.Worker, queue.ExecRequest{Session: session, Cancel: true})
		}
		_ = lease.Release(cleanup)
	}()
	g.audit(c, job.Workspace, "job.exec", execAuditTarget(job.ID, req.Command))
	n, err := queue.PublishExec(ctx, g.rdb, job.Worker, queue.ExecRequest{Session: session, JobID: job.ID, Attempt: job.Attempt,
		Command: req.Command, TimeoutSeconds: req.TimeoutSeconds})
	if err != nil {
		return err
	}
	if n == 0 {
		finished = true
		return api.Errorf(api.CodeWorkerUnavailable,
			"worker %s, which runs job %s, is not listening for exec requests (gone, or older than exec)", job.Worker, job.ID)
	}

	first, err := g.awaitExecStart(ctx, lease, session)
	if err != nil || first == nil {
		return err // nil: the client went away
	}
	if first.Kind == queue.ExecFailed {
		finished = true
		return execStartError(first)
	}

	s := &execStream{g: g, c: c, session: session, lease: lease, job: job.ID, attempt: job.Attempt, worker: job.Worker,
		after: first.ID, seq: first.Seq, deadline: time.Now().Add(time.Duration(req.TimeoutSeconds)*time.Second + execDeadlineMargin)}
	if first.Kind != queue.ExecStarted {
		s.after, s.seq = "0", 0 // Relay it too.
	}
	finished = s.run(ctx)
	return nil
}

// awaitExecStart waits up to execAckTimeout for the session's first event;
// nil without an error when ctx ended first.
func (g *Gateway) awaitExecStart(ctx context.Context, lease *queue.ExecLease, session string) (*queue.ExecEvent, error) {
	deadline := time.Now().Add(execAckTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, api.Errorf(api.CodeWorkerTimeout, "the job's worker did not take the exec request within %s", execAckTimeout)
		}
		events, err := queue.ReadExec(ctx, g.rdb, session, "0", min(wait, time.Second))
		if ctx.Err() != nil {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(events) > 0 {
			return &events[0], nil
		}
		// The client still waits: the worker must not take it for gone.
		if err := lease.Renew(ctx); err != nil && ctx.Err() == nil {
			return nil, err
		}
	}
}

// execStartError is the error of a session the worker refused: its code
// (queue.ExecCode*, each an api.Code) and message, or an internal error for
// exec_failed and a code the gateway does not know.
func execStartError(e *queue.ExecEvent) error {
	switch code := api.Code(e.Code); code {
	case api.CodeJobNotRunning, api.CodeExecUnsupported, api.CodeTooManySessions, api.CodeStartFailed,
		api.CodeWorkerStopped, api.CodeTimeout:
		return api.Errorf(code, "%s", e.Message)
	}
	return fmt.Errorf("worker refused exec: %s: %s", e.Code, e.Message)
}

// execAuditTarget is the job and the command, as JSON so that arguments
// with spaces stay apart, cut to maxAuditCommand bytes.
func execAuditTarget(id string, argv []string) string {
	b, _ := json.Marshal(argv)
	s := string(b)
	if len(s) > maxAuditCommand {
		cut := maxAuditCommand
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return id + " " + s
}

// execWriteTimeout bounds writing one line of an exec session to its client.
const execWriteTimeout = 30 * time.Second

// execStream relays a started session's events to the client.
type execStream struct {
	g       *Gateway
	c       echo.Context
	session string
	lease   *queue.ExecLease
	job     string
	attempt int
	worker  string
	// after is the last stream entry read, seq its sequence number.
	after    string
	seq      int64
	deadline time.Time
}

// run streams until the session ends; true when the worker ended it.
func (s *execStream) run(ctx context.Context) bool {
	w := s.c.Response()
	// A session lasts as long as its command, past the server's WriteTimeout;
	// each line gets execWriteTimeout instead, so a client that stops
	// reading without hanging up does not hold the handler for ever.
	rc := http.NewResponseController(w.Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	send := func(l api.ExecLine) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(execWriteTimeout))
		if err := enc.Encode(l); err != nil {
			return false
		}
		w.Flush()
		return true
	}
	fail := func(code api.Code, format string, args ...any) {
		send(api.ExecLine{Error: &api.ErrorDetail{Code: code, Message: fmt.Sprintf(format, args...)}})
	}

	heard, checked := time.Now(), time.Now()
	for {
		events, err := queue.ReadExec(ctx, s.g.rdb, s.session, s.after, time.Second)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			s.g.logger.ErrorContext(ctx, "read exec stream", "exec_session", s.session, "error", err)
			fail(api.CodeExecFailed, "internal error")
			return false
		}
		for _, e := range events {
			s.after = e.ID
			if e.Seq != s.seq+1 {
				fail(api.CodeOutputLost, "%d chunks of output were lost: the client read more slowly than the command wrote", e.Seq-s.seq-1)
				return false
			}
			s.seq = e.Seq
			if e.Kind == queue.ExecStarted {
				continue
			}
			if !send(execLine(e)) {
				return false
			}
			if e.Kind.Final() {
				return true
			}
		}
		now := time.Now()
		if len(events) > 0 {
			heard = now
		}
		s.lease.Keep(ctx)
		if now.After(s.deadline) {
			fail(api.CodeWorkerTimeout, "worker %s did not end the command by its timeout", s.worker)
			return false
		}
		// Silence is normal for a quiet command; it is news only when the
		// job no longer runs there, and the worker had time to say so.
		if now.Sub(heard) >= execCheckEvery && now.Sub(checked) >= execCheckEvery {
			checked = now
			j, err := s.g.store.GetJobByID(ctx, s.job)
			if err == nil && (j.Status != api.StatusRunning || j.Attempt != s.attempt || j.Worker != s.worker) && now.Sub(heard) >= 2*execCheckEvery {
				fail(api.CodeJobNotRunning, "job %s is %s and worker %s sent nothing more of the command", s.job, j.Status, s.worker)
				return false
			}
		}
	}
}

// execLine is the NDJSON line of an event.
func execLine(e queue.ExecEvent) api.ExecLine {
	switch e.Kind {
	case queue.ExecExited:
		code := e.ExitCode
		return api.ExecLine{ExitCode: &code}
	case queue.ExecFailed:
		return api.ExecLine{Error: &api.ErrorDetail{Code: api.Code(e.Code), Message: e.Message}}
	}
	l := api.ExecLine{Stream: string(e.Kind)}
	if utf8.Valid(e.Data) {
		l.Data = string(e.Data)
	} else {
		l.Data, l.Encoding = base64.StdEncoding.EncodeToString(e.Data), "base64"
	}
	return l
}
