package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// This file is the worker's part in an attempt's life beyond the happy path:
// which attempts this process holds, how it records their ends when Redis
// does not answer, what it does with a task delivered again, and how it
// hands its attempts back when it stops.

// errWorkerStopped is the cause the attempts still running at the end of
// ShutdownTimeout are stopped with.
var errWorkerStopped = errors.New("worker shutting down")

// newInstanceID names one worker process: a worker ID lives on across
// restarts, an instance does not.
func newInstanceID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// heldAttempt is an attempt this process started and has not yet recorded
// the end of.
type heldAttempt struct {
	number int
	// end is set once the attempt ended and recording that failed.
	end *attemptEnd
}

// hold marks attempt of jobID as this process's; false when it holds it
// already (a second delivery of its task).
func (w *Worker) hold(jobID string, attempt int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.held[jobID]; ok && h.number == attempt {
		return false
	}
	w.held[jobID] = &heldAttempt{number: attempt}
	return true
}

// release forgets attempt of jobID unless its end is still to be recorded.
func (w *Worker) release(jobID string, attempt int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.held[jobID]; ok && h.number == attempt && h.end == nil {
		delete(w.held, jobID)
	}
}

// holding returns what this process knows of attempt of jobID: whether it
// holds it, and its end when that is still to be recorded.
func (w *Worker) holding(jobID string, attempt int) (bool, *attemptEnd) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.held[jobID]
	if !ok || h.number != attempt {
		return false, nil
	}
	return true, h.end
}

// stopAll stops every running attempt with cause, and every attempt that
// registers later (see register): the worker is leaving.
func (w *Worker) stopAll(cause error) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopping = cause
	for _, cancel := range w.running {
		cancel(cause)
	}
	return len(w.running)
}

// register makes a running attempt cancelable by cancelRunning and stopAll;
// the returned func unregisters it.
func (w *Worker) register(jobID string, cancel context.CancelCauseFunc) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running[jobID] = cancel
	if w.stopping != nil {
		cancel(w.stopping)
	}
	return func() {
		w.mu.Lock()
		delete(w.running, jobID)
		w.mu.Unlock()
	}
}

func (w *Worker) isStopping() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopping != nil
}

// setStopping marks the worker stopping in the registry: the scheduler
// gives it nothing new and hands back what is placed on it.
func (w *Worker) setStopping(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.store.SetWorkerStatus(sctx, w.cfg.ID, store.WorkerStopping, ""); err != nil {
		w.logger.WarnContext(ctx, "mark the worker stopping", slog.Any("error", err))
		return
	}
	_ = queue.Notify(sctx, w.rdb, queue.ChannelScheduler)
}

// drain shuts srv down (it takes no new tasks already) and waits for the
// running attempts: ShutdownTimeout for them to end by themselves, then they
// are stopped (SIGTERM, the executor's grace, SIGKILL) and requeued with the
// reason worker_stopped, for at most StopTimeout more. asynq's own shutdown
// timeout is the sum, so it gives up on a handler only past that bound: a
// stuck podman cannot hold the worker forever. What is still running then is
// left to the scheduler, which requeues the attempts of a stopped worker.
func (w *Worker) drain(ctx context.Context, srv *asynq.Server) {
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	t := time.NewTimer(w.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	if n := w.stopAll(errWorkerStopped); n > 0 {
		w.logger.InfoContext(ctx, "stopping the attempts still running", slog.Int("attempts", n), slog.Duration("within", w.cfg.StopTimeout))
	}
	<-done
	w.mu.Lock()
	left := len(w.running)
	w.mu.Unlock()
	if left > 0 {
		w.logger.WarnContext(ctx, "leaving with attempts that did not stop in time; the scheduler requeues them, and they may run on until reaped",
			slog.Int("attempts", left))
	}
}

// handBack puts the attempts placed on this worker but not started back in
// the pending set, so they need not wait for the scheduler to find the
// worker stopped.
func (w *Worker) handBack(ctx context.Context) {
	regs, err := w.store.Workers(ctx)
	if err != nil {
		w.logger.WarnContext(ctx, "hand back placed attempts", slog.Any("error", err))
		return
	}
	for _, r := range regs {
		if r.ID != w.cfg.ID {
			continue
		}
		for _, id := range r.Jobs {
			job, err := w.store.GetJobByID(ctx, id)
			if err != nil || job.Status != api.StatusQueued {
				continue
			}
			if err := w.store.Unreserve(ctx, job, w.cfg.ID, fmt.Sprintf("worker %s stopped before starting it; waiting to be placed again", w.cfg.ID)); err != nil {
				w.logger.WarnContext(ctx, "hand back placed attempt", slog.String("job_id", id), slog.Any("error", err))
			}
		}
	}
}

// attemptEnd is how an attempt ended, as it is to be recorded: Finish (the
// job ends) or Requeue (it goes on as a new attempt).
type attemptEnd struct {
	Requeue   bool          `json:"requeue,omitempty"`
	Workspace string        `json:"workspace"`
	JobID     string        `json:"job_id"`
	Attempt   int           `json:"attempt"`
	Outcome   store.Outcome `json:"outcome"`
	At        time.Time     `json:"at"`
}

// endStore is what recording an attempt's end needs of the store.
type endStore interface {
	Finish(ctx context.Context, ws, id string, attempt int, o store.Outcome, now time.Time) error
	Requeue(ctx context.Context, ws, id string, attempt int, o store.Outcome, now time.Time) error
}

var _ endStore = (*store.Store)(nil)

func (e *attemptEnd) write(ctx context.Context, st endStore) error {
	if e.Requeue {
		return st.Requeue(ctx, e.Workspace, e.JobID, e.Attempt, e.Outcome, e.At)
	}
	return st.Finish(ctx, e.Workspace, e.JobID, e.Attempt, e.Outcome, e.At)
}

// endsDir holds the ends of this worker's attempts that are not recorded
// yet, one file each, so that a worker that has to exit before Redis answers
// leaves them to its next life instead of having the attempts run again.
func (w *Worker) endsDir() string { return filepath.Join(w.cfg.SpoolDir, "ends-"+w.cfg.ID) }

func (w *Worker) endFile(jobID string, attempt int) string {
	return filepath.Join(w.endsDir(), jobID+"-"+strconv.Itoa(attempt)+".json")
}

// endGone says that an end could not be recorded because there is nothing
// to record it on any more: the job ended or moved on meanwhile
// (ErrConflict), or is gone (ErrNotFound). Trying again would not help.
func endGone(err error) bool {
	return errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)
}

// record writes e to the store, retrying whatever the error (Redis away,
// BUSY, OOM, MISCONF, ...) for up to RecordRetryFor: the attempt has run,
// and losing how it ended would run it again. It is written to the ends
// folder first and removed from there once recorded. An error of endGone
// counts as recorded and is returned. Past the bound the end stays held in
// this process and on disk: every heartbeat tries it again (see
// recordHeldEnds), as does a new delivery of the task or the next life of
// the worker.
func (w *Worker) record(ctx context.Context, e *attemptEnd) error {
	file := w.endFile(e.JobID, e.Attempt)
	if b, err := json.Marshal(e); err == nil {
		if err := os.MkdirAll(w.endsDir(), 0o700); err == nil {
			err = os.WriteFile(file, b, 0o600)
		}
		if err != nil {
			w.logger.WarnContext(ctx, "save attempt end", slog.String("job_id", e.JobID), slog.Any("error", err))
		}
	}
	deadline := time.Now().Add(w.cfg.RecordRetryFor)
	wait := 50 * time.Millisecond
	for try := 1; ; try++ {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := e.write(wctx, w.ends)
		cancel()
		if err == nil || endGone(err) || time.Now().Add(wait).After(deadline) {
			if err != nil && !endGone(err) {
				w.mu.Lock()
				if h, ok := w.held[e.JobID]; ok && h.number == e.Attempt {
					h.end = e
				}
				w.mu.Unlock()
				return fmt.Errorf("record end of job %s attempt %d (kept in %s): %w", e.JobID, e.Attempt, file, err)
			}
			w.forgetEnd(e)
			if try > 1 {
				w.logger.InfoContext(ctx, "recorded attempt end once the store took it", slog.String("job_id", e.JobID), slog.Int("tries", try))
			}
			return err
		}
		if try == 1 {
			w.logger.WarnContext(ctx, "could not record the attempt's end; retrying", slog.String("job_id", e.JobID),
				slog.Duration("for", w.cfg.RecordRetryFor), slog.Any("error", err))
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// forgetEnd drops e, recorded (or with nothing left to record it on): its
// file, and the attempt from what this process holds.
func (w *Worker) forgetEnd(e *attemptEnd) {
	_ = os.Remove(w.endFile(e.JobID, e.Attempt))
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.held[e.JobID]; ok && h.number == e.Attempt {
		delete(w.held, e.JobID)
	}
}

// adoptEnd makes e, an end an earlier life saved and that could not be
// recorded yet, this process's to record: it holds the attempt with its
// end, as if it had run it, so that nobody takes the attempt for lost.
func (w *Worker) adoptEnd(e *attemptEnd) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.held[e.JobID]; !ok {
		w.held[e.JobID] = &heldAttempt{number: e.Attempt, end: e}
	}
}

// recordHeldEnds tries once more to record each end this process holds
// and could not record (see record): after an outage longer than asynq's
// lease, or an error record gave up on, nothing else might, and the job
// would stay running while the worker heartbeats. The heartbeat calls it.
func (w *Worker) recordHeldEnds(ctx context.Context) {
	w.mu.Lock()
	var ends []*attemptEnd
	for _, h := range w.held {
		if h.end != nil {
			ends = append(ends, h.end)
		}
	}
	w.mu.Unlock()
	for _, e := range ends {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := e.write(wctx, w.ends)
		cancel()
		if err != nil && !endGone(err) {
			continue // the next beat tries again
		}
		w.forgetEnd(e)
		if err == nil {
			w.logger.InfoContext(ctx, "recorded an attempt end that had waited", slog.String("job_id", e.JobID), slog.Int("attempt", e.Attempt))
			w.ended(ctx, e)
		}
	}
}

// savedEnd is the end of attempt of jobID an earlier life of this worker
// left in the ends folder, or nil.
func (w *Worker) savedEnd(jobID string, attempt int) *attemptEnd {
	b, err := os.ReadFile(w.endFile(jobID, attempt))
	if err != nil {
		return nil
	}
	var e attemptEnd
	if json.Unmarshal(b, &e) != nil || e.JobID != jobID || e.Attempt != attempt {
		return nil
	}
	return &e
}

// recordSavedEnds records the ends an earlier life of this worker could not,
// at start, before anything else looks at the jobs. One the store does not
// take yet is adopted (see adoptEnd), to be recorded on a later heartbeat.
func (w *Worker) recordSavedEnds(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(w.endsDir(), "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		var e attemptEnd
		if err != nil || json.Unmarshal(b, &e) != nil {
			continue
		}
		err = e.write(ctx, w.ends)
		switch {
		case err == nil:
			w.logger.InfoContext(ctx, "recorded the end an earlier run saved", slog.String("job_id", e.JobID), slog.Int("attempt", e.Attempt))
			w.ended(ctx, &e)
		case endGone(err):
			// The job ended, moved on or is gone meanwhile.
		default:
			w.logger.WarnContext(ctx, "record the end an earlier run saved; trying again on later heartbeats", slog.String("job_id", e.JobID), slog.Any("error", err))
			w.adoptEnd(&e)
			continue
		}
		_ = os.Remove(f)
	}
}

// restartedDuring is how job's running attempt ended that an earlier life of
// this worker was running when it died.
func (w *Worker) restartedDuring(job *api.Job) store.Outcome {
	o := store.NewOutcome(api.StatusFailed, api.Reason{Code: api.ReasonWorkerLost, Detail: "worker restarted during the attempt"})
	o.Worker, o.StartedAt = w.cfg.ID, job.StartedAt
	return o
}

// redelivered decides about a task whose attempt the store says is running
// on this worker. It is this process's own when it holds it (asynq delivered
// the task again, after a failed write or an expired lease): running here,
// nothing to do; ended, record that. An attempt this process started (its
// instance is on the record) but does not hold never ran: the answer to its
// start was lost, so it runs now (resume). Anything else is an earlier life
// of this worker that died mid-run: record the end it saved, or clean up
// what it left and requeue the attempt as lost.
func (w *Worker) redelivered(ctx context.Context, job *api.Job) (resume bool, err error) {
	held, end := w.holding(job.ID, job.Attempt)
	switch {
	case held && end != nil:
		return false, w.recordEnd(ctx, end)
	case held:
		return false, nil
	}
	inst, err := w.store.RunningInstance(ctx, job.ID)
	if err != nil {
		return false, err
	}
	if inst == w.instance {
		return true, nil
	}
	if e := w.savedEnd(job.ID, job.Attempt); e != nil {
		return false, w.recordEnd(ctx, e)
	}
	w.cleanupLeftovers(ctx, job)
	err = w.store.Requeue(ctx, job.Workspace, job.ID, job.Attempt, w.restartedDuring(job), w.now())
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return false, err
	}
	_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)
	return false, nil
}
