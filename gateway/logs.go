package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// jobLogs serves a job's log as text, attempt by attempt: an ended attempt
// from the at-rest copy its worker stored, or else (its worker died) from
// its lines in the live stream; the current one from the live stream. With
// follow=true it keeps streaming new lines until the job ends. A job of more
// than one attempt gets a header line before each attempt's lines
// (attemptHeader); one of a single attempt reads as the job printed it.
// attempt=N serves attempt N alone, without a header.
func (g *Gateway) jobLogs(c echo.Context) error {
	ctx := c.Request().Context()
	follow := false
	if s := c.QueryParam("follow"); s != "" {
		var err error
		if follow, err = strconv.ParseBool(s); err != nil {
			return api.Errorf(api.CodeBadRequest, "follow must be true or false")
		}
	}
	only := 0
	if s := c.QueryParam("attempt"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return api.Errorf(api.CodeBadRequest, "attempt must be a positive integer")
		}
		only = n
	}
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	if only > j.Attempt {
		return api.Errorf(api.CodeNotFound, "job %s has no attempt %d (it is on attempt %d)", j.ID, only, j.Attempt)
	}
	w := c.Response()
	rc := http.NewResponseController(w.Writer)
	if follow {
		// A follow streams until the job ends, past the server's WriteTimeout;
		// each pass gets followWriteTimeout instead (below), so a client that
		// stops reading without hanging up does not hold the handler for ever.
		_ = rc.SetWriteDeadline(time.Time{})
	}
	w.Header().Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	l := &logReader{g: g, job: j, bw: bufio.NewWriterSize(w, 64<<10), flush: w.Flush, rc: rc, follow: follow}
	defer l.bw.Flush()
	first, last := 1, j.Attempt
	if only != 0 {
		first, last = only, only
	}
	headers := only == 0 && j.Attempt > 1
	var history map[int]store.AttemptRecord
	if headers {
		history = g.attemptHistory(ctx, j.ID)
	}
	for a := first; a <= last; a++ {
		if a < j.Attempt || j.Status.Terminal() {
			if headers {
				st, reason, code := api.Status("ended"), "", ""
				if r, ok := history[a]; ok {
					st, reason, code = r.Status, r.Reason, r.ReasonCode
				}
				if a == j.Attempt {
					st, reason, code = j.Status, j.Reason, j.ReasonCode
				}
				l.header(a, st, reason, code)
			}
			// A job of one attempt: every line of the stream, as before
			// lines carried their attempt.
			if err := l.ended(ctx, a, j.Attempt == 1); err != nil {
				return nil // the client sees a short body; the status is out
			}
			continue
		}
		if headers {
			l.header(a, j.Status, "", "")
		}
		l.live(ctx, a, only != 0)
	}
	return nil
}

// followWriteTimeout bounds writing one pass of a followed log.
const followWriteTimeout = 30 * time.Second

// followPoll is how often a follower looks at the stream and the job record
// without a wake-up (logHub): they are hints, and a job canceled before it
// ran may have no stream at all.
const followPoll = 2 * time.Second

// attemptHistory is the job's attempt history by attempt number.
func (g *Gateway) attemptHistory(ctx context.Context, id string) map[int]store.AttemptRecord {
	recs, _ := g.store.Attempts(ctx, id)
	m := make(map[int]store.AttemptRecord, len(recs))
	for _, r := range recs {
		m[r.Attempt] = r
	}
	return m
}

// logReader writes one request's log.
type logReader struct {
	g      *Gateway
	job    *api.Job
	bw     *bufio.Writer
	flush  func()
	rc     *http.ResponseController
	follow bool
}

// attemptHeader is the line before each attempt's lines in the log of a job
// of several attempts: "==> attempt 1 (failed: worker_lost: worker w1
// stopped heartbeating) <==", "==> attempt 2 (succeeded) <==". reason and
// code are the attempt's reason and reason_code.
func attemptHeader(a int, st api.Status, reason, code string) string {
	switch {
	case reason == "":
		return fmt.Sprintf("==> attempt %d (%s) <==", a, st)
	case code == string(st):
		return fmt.Sprintf("==> attempt %d (%s) <==", a, reason) // "canceled: ..."
	default:
		return fmt.Sprintf("==> attempt %d (%s: %s) <==", a, st, reason)
	}
}

func (l *logReader) header(a int, st api.Status, reason, code string) {
	l.bw.WriteString(attemptHeader(a, st, reason, code))
	l.bw.WriteByte('\n')
}

// ended writes ended attempt a: its at-rest copy, or its lines in the live
// stream (every line when all is set).
func (l *logReader) ended(ctx context.Context, a int, all bool) error {
	r, err := l.g.artifacts.Open(ctx, artifact.LogKey(l.job.ID, a))
	if err == nil {
		defer r.Close()
		_, err = io.Copy(l.bw, r)
		return err
	}
	if !errors.Is(err, artifact.ErrNotFound) {
		return err
	}
	if all {
		a = 0
	}
	_, err = l.g.store.CopyLogs(ctx, l.bw, l.job.ID, a)
	return err
}

// live writes the lines of attempt a, which has not ended, from the live
// stream; following, it goes on until the job ends (or, with only, until
// attempt a does), with a header line when a later attempt begins.
func (l *logReader) live(ctx context.Context, a int, only bool) {
	var wake <-chan struct{}
	if l.follow {
		var stop func()
		wake, stop = l.g.logs.Follow(ctx, l.job.ID)
		defer stop()
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	after, count, cur, final := "0", store.LogPageSize(0, 0), a, false
	for {
		if l.follow {
			_ = l.rc.SetWriteDeadline(time.Now().Add(followWriteTimeout))
		}
		entries, err := l.g.store.ReadLogs(ctx, l.job.ID, after, count, 0)
		if err != nil {
			return
		}
		size := 0
		for _, e := range entries {
			after = e.ID
			size += len(e.Line)
			switch {
			case e.End != "":
				return
			case e.Attempt < cur:
				continue // written above, or a late line of a lost attempt
			case e.Attempt > cur:
				if only {
					return // attempt a ended; its successor is not asked for
				}
				cur = e.Attempt
				l.header(cur, api.StatusRunning, "", "")
			}
			l.bw.WriteString(e.Line)
			l.bw.WriteByte('\n')
		}
		more := int64(len(entries)) == count
		count = store.LogPageSize(len(entries), size)
		if more {
			continue
		}
		// Caught up.
		if !l.follow || final {
			return
		}
		if l.bw.Flush() != nil || ctx.Err() != nil {
			return // the client is gone or stopped reading
		}
		l.flush()
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
			// The end marker is written when a job ends; a job canceled
			// before it ever ran may have no stream, so look at the record
			// too, and read what is left once more.
			if j, err := l.g.store.GetJobByID(ctx, l.job.ID); err == nil && (j.Status.Terminal() || only && j.Attempt > a) {
				final = true
			}
		}
	}
}
