package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"jobgate/api"
	"jobgate/internal/store"
	"jobgate/queue"
)

// SchedulerConfig configures the Scheduler. Zero values get defaults.
type SchedulerConfig struct {
	// ID names this scheduler in the leader election.
	ID string
	// LeaseTTL of the leadership; default 10s. A dead leader is replaced
	// within this time.
	LeaseTTL time.Duration
	// WorkerLostAfter: heartbeat silence after which a worker's jobs are
	// recovered; default 15s.
	WorkerLostAfter time.Duration
	// Tick: how often the scheduler looks without being woken; default 1s.
	Tick time.Duration
	// StopGrace + margin are added to a job's timeout for the task deadline.
	StopGrace time.Duration
}

// Scheduler places queued jobs on workers. One scheduler leads at a time
// (a lease in Redis); the others wait to take over. It is woken through
// queue.ChannelScheduler when jobs arrive or slots free up.
type Scheduler struct {
	cfg    SchedulerConfig
	rdb    redis.UniversalClient
	store  *store.Store
	tasks  *asynq.Client
	logger *slog.Logger
	now    func() time.Time
}

// NewScheduler returns a Scheduler; Run runs it.
func NewScheduler(cfg SchedulerConfig, rdb redis.UniversalClient, st *store.Store, tasks *asynq.Client, logger *slog.Logger) *Scheduler {
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, 10*time.Second)
	cfg.WorkerLostAfter = cmp.Or(cfg.WorkerLostAfter, 15*time.Second)
	cfg.Tick = cmp.Or(cfg.Tick, time.Second)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, 30*time.Second)
	return &Scheduler{cfg: cfg, rdb: rdb, store: st, tasks: tasks, logger: logger.With(slog.String("scheduler", cfg.ID)), now: time.Now}
}

// Run schedules until ctx is done, then gives up the lease.
func (s *Scheduler) Run(ctx context.Context) error {
	waker, err := queue.NewWaker(ctx, s.rdb, queue.ChannelScheduler)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("scheduler: subscribe: %w", err)
	}
	defer waker.Close()
	leading := false
	for ctx.Err() == nil {
		gen := waker.Gen()
		ok, err := s.store.AcquireLeadership(ctx, s.cfg.ID, s.cfg.LeaseTTL)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.logger.WarnContext(ctx, "scheduler lease", slog.Any("error", err))
			}
		case ok != leading:
			leading = ok
			s.logger.InfoContext(ctx, "scheduler leadership", slog.Bool("leading", ok))
		}
		if leading {
			if err := s.pass(ctx); err != nil && ctx.Err() == nil {
				s.logger.WarnContext(ctx, "scheduling pass", slog.Any("error", err))
			}
		}
		waker.Wait(ctx, gen, s.cfg.Tick)
	}
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if leading {
		_ = s.store.ReleaseLeadership(cleanup, s.cfg.ID)
	}
	return nil
}

func (s *Scheduler) alive(w store.Worker, now time.Time) bool {
	return w.Status != "stopped" && now.Sub(w.LastHeartbeat) < s.cfg.WorkerLostAfter
}

func (s *Scheduler) workerState(w store.Worker, now time.Time) string {
	switch {
	case w.Status == "stopped":
		return "stopped"
	case !s.alive(w, now):
		return "lost"
	}
	return "up"
}

// canRun says whether worker w could run spec at all (ignoring free slots).
func canRun(w store.Worker, spec api.JobSpec) bool {
	if spec.Resources.GPUs > 0 {
		return false // GPU inventory arrives with the GPU scheduler
	}
	if spec.Mode == api.ModeProcess {
		return w.AllowHostProcess
	}
	return w.Executor != "" && w.Executor != "none"
}

// Admissible refuses at submit what no registered worker could ever run, with
// what exists. A job for capacity that is only busy or down is accepted and waits.
func (s *Scheduler) Admissible(ctx context.Context, spec api.JobSpec) error {
	if spec.Resources.GPUs > 0 {
		return specErr("resources.gpus: no worker offers GPUs (GPU scheduling is not enabled on this cluster)")
	}
	if spec.Mode != api.ModeProcess {
		return nil
	}
	workers, err := s.store.Workers(ctx)
	if err != nil {
		return err
	}
	for _, w := range workers {
		if w.AllowHostProcess {
			return nil
		}
	}
	return errorf(http.StatusUnprocessableEntity, CodeInvalidSpec,
		"mode: no registered worker runs host-process jobs (of %d workers; start one with `jobgate worker --allow-host-process`)", len(workers))
}

// pass recovers the jobs of lost workers, then places pending jobs in order
// (priority, then age) on live workers with free slots.
func (s *Scheduler) pass(ctx context.Context) error {
	now := s.now()
	workers, err := s.store.Workers(ctx)
	if err != nil {
		return err
	}
	free := map[string]int{}
	var live []store.Worker
	for _, w := range workers {
		if !s.alive(w, now) {
			s.recoverWorker(ctx, w, now)
			continue
		}
		live = append(live, w)
		free[w.ID] = w.Slots - len(w.Jobs)
	}
	ids, err := s.store.Pending(ctx, 1000)
	if err != nil {
		return err
	}
	quotas := map[string]*wsQuota{}
	for _, id := range ids {
		job, err := s.store.GetJobByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			_ = s.store.DropPending(ctx, id)
			continue
		}
		if err != nil {
			return err
		}
		if job.Status != api.StatusQueued {
			_ = s.store.DropPending(ctx, id)
			continue
		}
		q, err := s.quotaOf(ctx, quotas, job.Workspace)
		if err != nil {
			return err
		}
		if q.max > 0 && q.holding >= q.max {
			reason := fmt.Sprintf("workspace quota: %d of %d jobs running", q.holding, q.max)
			if job.Reason != reason {
				_ = s.store.SetReason(ctx, id, reason)
			}
			continue
		}
		target, reason := s.choose(live, free, job.Spec)
		if target == "" {
			if job.Reason != reason {
				_ = s.store.SetReason(ctx, id, reason)
			}
			continue
		}
		placedOn, err := s.place(ctx, job, target, live)
		if err != nil {
			s.logger.WarnContext(ctx, "place job", slog.String("job_id", id), slog.Any("error", err))
			continue
		}
		free[placedOn]--
		q.holding++
	}
	return nil
}

// wsQuota is a workspace's running-jobs quota during one pass.
type wsQuota struct{ max, holding int }

func (s *Scheduler) quotaOf(ctx context.Context, seen map[string]*wsQuota, ws string) (*wsQuota, error) {
	if q, ok := seen[ws]; ok {
		return q, nil
	}
	q := &wsQuota{}
	w, err := s.store.Workspace(ctx, ws)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		q.max = w.Quotas.MaxRunningJobs
	}
	if q.max > 0 {
		if q.holding, err = s.store.RunningCount(ctx, ws); err != nil {
			return nil, err
		}
	}
	seen[ws] = q
	return q, nil
}

// choose picks the live worker with the most free slots that can run spec, or
// says why none can.
func (s *Scheduler) choose(live []store.Worker, free map[string]int, spec api.JobSpec) (string, string) {
	best, capable, freeSlots, slots := "", 0, 0, 0
	for _, w := range live {
		if !canRun(w, spec) {
			continue
		}
		capable++
		freeSlots += max(free[w.ID], 0)
		slots += w.Slots
		if free[w.ID] > 0 && (best == "" || free[w.ID] > free[best]) {
			best = w.ID
		}
	}
	switch {
	case best != "":
		return best, ""
	case len(live) == 0:
		return "", "waiting for a worker: none is running (start one with `jobgate worker`)"
	case capable == 0 && spec.Mode == api.ModeProcess:
		return "", fmt.Sprintf("waiting for a worker that runs host-process jobs: none of %d running workers allows them", len(live))
	case capable == 0:
		return "", fmt.Sprintf("waiting for a worker that runs %s jobs: none of %d running workers can", spec.Mode, len(live))
	}
	return "", fmt.Sprintf("waiting for a free slot: %d of %d free on %d workers", freeSlots, slots, capable)
}

// place reserves the attempt on worker, enqueues its task on the worker's
// queue and wakes the worker. It returns the worker the job went to (an
// earlier reservation wins over target).
func (s *Scheduler) place(ctx context.Context, job *api.Job, target string, live []store.Worker) (string, error) {
	workerID, placement, err := s.store.Reserve(ctx, job.ID, job.Attempt, target, "placed on worker "+target)
	if err != nil {
		return "", err
	}
	if workerID != target && !isLive(live, workerID) {
		// Reserved by an earlier pass for a worker that is gone: hand it back.
		return "", s.store.Unreserve(ctx, job.ID, job.Attempt, workerID, "worker "+workerID+" went away before starting it")
	}
	p := queue.RunJobPayload{JobID: job.ID, Attempt: job.Attempt, Placement: placement}
	task, err := queue.NewRunJobTask(p, time.Duration(job.Spec.TimeoutSeconds)*time.Second+s.cfg.StopGrace+time.Minute)
	if err != nil {
		return "", err
	}
	if _, err := s.tasks.EnqueueContext(ctx, task, asynq.Queue(queue.WorkerQueue(workerID))); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return "", fmt.Errorf("enqueue on %s: %w", workerID, err)
	}
	if err := s.store.Placed(ctx, job.ID, job.Attempt, workerID); err != nil {
		return "", err
	}
	_ = queue.Notify(ctx, s.rdb, queue.WorkerChannel(workerID))
	return workerID, nil
}

func isLive(live []store.Worker, id string) bool {
	for _, w := range live {
		if w.ID == id {
			return true
		}
	}
	return false
}

// recoverWorker hands the jobs of a stopped or lost worker to others: placed
// but not started ones go back to the pending set as they were; running ones
// (only on a lost worker: a stopping worker requeues its own) are requeued as a
// new attempt with the reason worker_lost. A worker that comes back later
// finds its old tasks stale.
func (s *Scheduler) recoverWorker(ctx context.Context, w store.Worker, now time.Time) {
	for _, id := range w.Jobs {
		job, err := s.store.GetJobByID(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				_ = s.store.ForgetWorkerJob(ctx, w.ID, id)
			}
			continue
		}
		switch {
		case job.Status == api.StatusQueued:
			err = s.store.Unreserve(ctx, id, job.Attempt, w.ID, fmt.Sprintf("worker %s is %s; waiting to be placed again", w.ID, s.workerState(w, now)))
		case job.Status == api.StatusRunning && job.Worker == w.ID && w.Status != "stopped":
			err = s.store.Requeue(ctx, job.Workspace, id, job.Attempt, store.Outcome{Status: api.StatusFailed,
				Reason: fmt.Sprintf("%s: worker %s stopped heartbeating", api.ReasonWorkerLost, w.ID), Worker: w.ID, StartedAt: job.StartedAt}, now)
			s.logger.WarnContext(ctx, "recovered job of lost worker", slog.String("job_id", id), slog.String("worker_id", w.ID))
		case job.Status.Terminal():
			err = s.store.ForgetWorkerJob(ctx, w.ID, id)
		}
		if err != nil && !errors.Is(err, store.ErrConflict) {
			s.logger.WarnContext(ctx, "recover job", slog.String("job_id", id), slog.Any("error", err))
		}
	}
}
