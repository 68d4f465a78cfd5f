package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

// A worker that cannot heartbeat is called lost by the scheduler once it
// has been silent for LostAfter (on Redis's clock, from its last beat), and
// its running jobs are placed again elsewhere. So that a job never runs
// twice at once, a worker cut off from Redis stops its own attempts first
// (fences itself): after fenceAfter of silence it stops them, with at most
// fenceGrace between SIGTERM and SIGKILL, and records them as requeued once
// Redis answers again (if the scheduler has not requeued them already). The
// silence is measured from when the last successful beat was sent, which is
// before Redis stamped it, so the worker's deadline comes first.
//
// Redis being away for everyone (a restart) silences every worker too, but
// then the scheduler calls none lost (it waits LostAfter after it is in
// contact again), and the attempts may run on. So before it fences, the
// worker asks the gateway at GatewayURL (/readyz): when that says it does
// not reach Redis either, the worker waits and asks again; when it answers
// that it is ready, or does not answer within fenceProbe, the worker is
// cut off on its own and fences. (A gateway that does not reach Redis while
// the leading one does would let an attempt run on: keep GatewayURL on a
// gateway that shares the workers' path to Redis.)
//
// fenceAfter is LostAfter less 3s: the probe, the grace (at most a third of
// those 3s) and the SIGKILL landing all fit before the scheduler's expiry.

// DefaultLostAfter is the default of Config.LostAfter and of the gateways'
// WorkerLostAfter: seven missed beats at the default HeartbeatInterval,
// so that a killed worker's jobs run elsewhere within ten seconds.
const DefaultLostAfter = 7 * time.Second

// errFenced is the cause the attempts of a worker that lost touch with
// Redis are stopped with.
type errFenced struct {
	silent time.Duration
	grace  time.Duration
}

func (e *errFenced) Error() string {
	return fmt.Sprintf("no heartbeat reached Redis for %s", e.silent.Round(100*time.Millisecond))
}

// fenceAfter and fenceGrace are the silence after which this worker stops
// its attempts, and the most grace they get then (see above).
func (w *Worker) fenceAfter() time.Duration {
	return max(w.cfg.LostAfter-3*time.Second, w.cfg.LostAfter/2)
}

func (w *Worker) fenceGrace() time.Duration {
	return (w.cfg.LostAfter - w.fenceAfter()) / 3
}

// fenceProbe bounds the gateway's answer (see redisAwayForAll).
func (w *Worker) fenceProbe() time.Duration {
	return (w.cfg.LostAfter - w.fenceAfter()) / 3
}

// redisAwayForAll says whether the gateway at GatewayURL answers that it
// does not reach Redis either (503 on /readyz) within fenceProbe.
func (w *Worker) redisAwayForAll(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, w.fenceProbe())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.GatewayURL+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusServiceUnavailable
}

// fencedGrace is grace, or less when ctx was ended by a fence: the stop
// must be over before the scheduler places the attempt again.
func fencedGrace(ctx context.Context, grace time.Duration) time.Duration {
	var f *errFenced
	if errors.As(context.Cause(ctx), &f) {
		return min(grace, f.grace)
	}
	return grace
}

// beatOK notes that a heartbeat sent at sent reached Redis.
func (w *Worker) beatOK(sent time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sent.After(w.lastBeat) {
		w.lastBeat = sent
	}
}

// beatIfSilent heartbeats now when no beat has reached Redis for two
// intervals, before an attempt starts. Right after an outage, a task can
// be dequeued before the heartbeat loop gets through again: started then,
// the attempt would be fenced at once (watchSilence still sees the old
// silence) and run a second time. An error hands the task back to its
// queue unstarted.
func (w *Worker) beatIfSilent(ctx context.Context) error {
	w.mu.Lock()
	last := w.lastBeat
	w.mu.Unlock()
	if time.Since(last) < 2*w.cfg.HeartbeatInterval {
		return nil
	}
	sent := time.Now()
	bctx, cancel := context.WithTimeout(ctx, max(w.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	if err := w.store.Heartbeat(bctx, w.cfg.ID, w.instance); err != nil {
		return err
	}
	w.beatOK(sent)
	return nil
}

// watchSilence fences this worker (see above) whenever no heartbeat has
// reached Redis for fenceAfter, until ctx is done. It keeps doing so while
// the silence lasts, so that nothing started meanwhile runs on.
func (w *Worker) watchSilence(ctx context.Context) {
	after := w.fenceAfter()
	var fenced, warned time.Time // the lastBeat the attempts were fenced after, or that was logged
	for {
		w.mu.Lock()
		last := w.lastBeat
		w.mu.Unlock()
		wait := time.Until(last.Add(after))
		poll := max(w.cfg.HeartbeatInterval/4, 10*time.Millisecond)
		switch {
		case wait > 0:
		case w.cancelAll(nil) == 0:
			wait = poll // nothing to stop
		case w.redisAwayForAll(ctx):
			if !warned.Equal(last) {
				w.logger.WarnContext(ctx, "no heartbeat reaches Redis, nor does the gateway reach it: the running attempts go on",
					slog.Duration("silent", time.Since(last).Round(100*time.Millisecond)), slog.String("gateway", w.cfg.GatewayURL))
				warned = last
			}
			wait = poll
		default:
			cause := &errFenced{silent: time.Since(last), grace: w.fenceGrace()}
			if n := w.cancelAll(cause); n > 0 && !fenced.Equal(last) {
				w.logger.WarnContext(ctx, "lost touch with Redis: stopping the running attempts before the scheduler places them elsewhere",
					slog.Int("attempts", n), slog.Any("cause", cause), slog.Duration("lost_after", w.cfg.LostAfter))
				fenced = last
			}
			wait = poll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// cancelAll ends the context of every running attempt with cause (none
// with nil), and says how many there are.
func (w *Worker) cancelAll(cause error) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cause != nil {
		for _, cancel := range w.running {
			cancel(cause)
		}
	}
	return len(w.running)
}

// exitedZero says whether the workload of an attempt exited 0 on its own
// account: what ran it reported no error.
func exitedZero(o *store.Outcome, runErr error) bool {
	return runErr == nil && o.ExitCode != nil && *o.ExitCode == 0
}
