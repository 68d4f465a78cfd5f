package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Reaper is implemented by executors whose workloads can outlive the worker
// process that started them (containers, which a killed worker leaves
// running). The worker uses it to remove the workloads nobody runs any more.
//
// Workloads lists the workloads labelled with cluster (Attempt.Cluster),
// running or not; Remove stops and removes one (SIGKILL: its attempt has been
// given up already), and is not an error when it is gone already.
type Reaper interface {
	Workloads(ctx context.Context, cluster string) ([]Workload, error)
	Remove(ctx context.Context, wl Workload) error
}

// Workload is one workload a Reaper found, as it was labelled at its start.
type Workload struct {
	// ID is the executor's own name for it (a container ID).
	ID      string
	JobID   string
	Attempt int
	// Worker started it (Attempt.Worker).
	Worker  string
	Running bool
}

// reapTimeout bounds one listing or removal.
const reapTimeout = 30 * time.Second

// reapEvery reaps every ReapEvery until ctx is done.
func (w *Worker) reapEvery(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.reap(ctx)
		}
	}
}

// reap removes the workloads of this worker's cluster whose attempt no
// worker holds (see orphaned), so a container left by a killed worker does
// not run on beside the attempt that replaced it.
func (w *Worker) reap(ctx context.Context) {
	seen := map[Reaper]bool{}
	for _, exec := range w.executors {
		r, ok := exec.(Reaper)
		if !ok || seen[r] {
			continue
		}
		seen[r] = true
		lctx, cancel := context.WithTimeout(ctx, reapTimeout)
		list, err := r.Workloads(lctx, w.cluster)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.logger.WarnContext(ctx, "list workloads to reap", slog.Any("error", err))
			}
			continue
		}
		for _, wl := range list {
			why := w.orphaned(ctx, wl)
			if why == "" {
				continue
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reapTimeout)
			err := r.Remove(rctx, wl)
			cancel()
			log := w.logger.With(slog.String("job_id", wl.JobID), slog.Int("attempt", wl.Attempt), slog.String("started_by", wl.Worker),
				slog.String("workload", wl.ID), slog.Bool("was_running", wl.Running), slog.String("why", why))
			if err != nil {
				log.WarnContext(ctx, "remove orphaned workload", slog.Any("error", err))
				continue
			}
			log.InfoContext(ctx, "removed orphaned workload")
		}
	}
}

// reapEarlierAttempts removes, before a later attempt of job starts here,
// what its earlier attempts left running on this machine: the workload of
// an attempt whose worker was killed (or cut off) and that the scheduler
// has given up on runs on until it is reaped, and the new one must not run
// beside it. Those on other machines are reaped by their own workers when
// they come back (see reap). The record says the earlier attempts have
// ended, so nothing of theirs is anyone's any more.
func (w *Worker) reapEarlierAttempts(ctx context.Context, exec Executor, job *api.Job) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reapTimeout)
	defer cancel()
	if err := exec.Cleanup(cctx, job.ID); err != nil {
		w.logger.WarnContext(ctx, "remove what earlier attempts left", slog.String("job_id", job.ID), slog.Any("error", err))
	}
}

// orphaned says why nobody runs workload wl any more, or "" when somebody
// may: this process, when it holds its attempt; another live process under
// this worker's ID (see runsElsewhere); another worker, when the job's
// record says the attempt runs there. A workload of this worker that no
// live process holds is an earlier life's. When the record cannot be read
// the workload is kept, for the next round.
func (w *Worker) orphaned(ctx context.Context, wl Workload) string {
	if wl.Worker == w.cfg.ID {
		if held, _ := w.holding(wl.JobID, wl.Attempt); held || w.runsElsewhere(ctx, wl) {
			return ""
		}
		return "started by an earlier run of this worker"
	}
	job, err := w.store.GetJobByID(ctx, wl.JobID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "its job is gone"
	case err != nil:
		return ""
	case job.Status.Terminal():
		return fmt.Sprintf("its job has ended (%s)", job.Status)
	case job.Attempt != wl.Attempt:
		return fmt.Sprintf("its job is on attempt %d", job.Attempt)
	case job.Status != api.StatusRunning:
		return "its attempt was handed back"
	case job.Worker != wl.Worker:
		return fmt.Sprintf("its attempt runs on %s", job.Worker)
	}
	return ""
}

// runsElsewhere says whether the attempt of wl, a workload of this worker's
// ID that this process does not hold, is run by another process under the
// same ID that is alive: the job's record names that process's instance,
// which holds the ID in the registry and heartbeats (claim keeps two from
// sharing an ID; this keeps a reaper from killing what such a process
// runs should they meet anyway). When that cannot be read it says yes, for
// the next round.
func (w *Worker) runsElsewhere(ctx context.Context, wl Workload) bool {
	job, err := w.store.GetJobByID(ctx, wl.JobID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		return true
	case job.Status != api.StatusRunning || job.Attempt != wl.Attempt || job.Worker != w.cfg.ID:
		return false
	}
	inst, err := w.store.RunningInstance(ctx, wl.JobID)
	if err != nil {
		return true
	}
	if inst == "" || inst == w.instance {
		return false
	}
	now, err := w.store.Time(ctx)
	if err != nil {
		return true
	}
	regs, err := w.store.Workers(ctx)
	if err != nil {
		return true
	}
	for _, r := range regs {
		if r.ID == w.cfg.ID {
			return r.Instance == inst && r.Status != store.WorkerStopped && now.Sub(r.LastHeartbeat) < w.cfg.LostAfter
		}
	}
	return false
}
