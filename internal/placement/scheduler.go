package placement

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// Config configures the Scheduler. Zero values get defaults.
type Config struct {
	// Metrics counts the attempts recovered off lost workers; nil: off.
	Metrics *metrics.Control
	// ID names this scheduler in its log lines (the elector's ID).
	ID string
	// WorkerLostAfter: heartbeat silence after which a worker's jobs are
	// recovered; default 7s (seven beats of a worker's default 1s), so that
	// a killed worker's job runs elsewhere within ten seconds. The
	// recovery is made when the silence reaches it, not at the next Tick
	// (see Run). Silence is measured on Redis's clock, which
	// stamps the heartbeats, and only once this scheduler has been in
	// contact with Redis for that long (since it started, or since Redis last
	// failed to answer it): while Redis was away the workers could not
	// heartbeat either.
	WorkerLostAfter time.Duration
	// Tick: how often the scheduler looks without being woken; default 1s.
	Tick time.Duration
	// StopGrace is the stop grace assumed for a worker that registered none
	// (one of a release before workers registered theirs): with the job's
	// timeout and queue.RunJobMargin it makes the deadline of a task placed
	// on that worker. A worker that registered its grace gets tasks computed
	// with its own (see place). Default 30s, more than a worker's default.
	StopGrace time.Duration
	// TracerProvider, when set, gives each placement a job.place span in the
	// job's trace, whose context its task carries to the worker
	// (tracePlace); nil makes none and sends none.
	TracerProvider trace.TracerProvider
}

// leadership tells a loop that only the leader runs whether this process
// leads (internal/leader.Elector).
type leadership interface {
	Listen() *leader.Subscription
}

var _ leadership = (*leader.Elector)(nil)

// Scheduler places queued jobs on workers. Only the scheduler of the
// process that leads (its leadership says so) places; the others wait to
// take over. It is woken through queue.ChannelScheduler when jobs arrive or
// slots free up.
type Scheduler struct {
	cfg    Config
	leader leadership
	rdb    redis.UniversalClient
	store  *store.Store
	tasks  *asynq.Client
	logger *slog.Logger
	// graceUntil (Unix ms, Redis's clock): no worker is called lost for
	// its silence before it; see WorkerLostAfter.
	graceUntil atomic.Int64
	// lostAt (local monotonic clock) is when the next live worker seen by
	// the last pass turns lost unless it heartbeats; see untilLost.
	lostAt atomic.Pointer[time.Time]

	// mu guards the fields below: what the last pass saw, so that a pass
	// reads only what changed since (see Pass).
	mu sync.Mutex
	// capacity is the registry as the last pass saw it (capacityOf), ""
	// when that pass placed a job or failed: while it stays the same, a job
	// that could not be placed then cannot be now.
	capacity string
	// waiting are the pending jobs that passes under capacity looked at and
	// left waiting.
	waiting map[string]bool
}

// New returns a Scheduler that places while lead says this process leads;
// Run runs it.
func New(cfg Config, lead leadership, rdb redis.UniversalClient, st *store.Store, tasks *asynq.Client, logger *slog.Logger) *Scheduler {
	cfg.WorkerLostAfter = cmp.Or(cfg.WorkerLostAfter, 7*time.Second)
	cfg.Tick = cmp.Or(cfg.Tick, time.Second)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, 30*time.Second)
	return &Scheduler{cfg: cfg, leader: lead, rdb: rdb, store: st, tasks: tasks, logger: logger.With(slog.String("scheduler", cfg.ID))}
}

// Run schedules until ctx is done, while this process leads.
func (s *Scheduler) Run(ctx context.Context) error {
	waker, err := queue.NewWaker(ctx, s.rdb, queue.ChannelScheduler)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("scheduler: subscribe: %w", err)
	}
	defer waker.Close()
	sub := s.leader.Listen()
	defer sub.Unlisten()
	leading := false
	// inContact is false until Redis answers, at the start and after it
	// failed to: then a grace begins (see WorkerLostAfter).
	inContact := false
	for ctx.Err() == nil {
		gen := waker.Gen()
		select {
		case leading = <-sub.C():
		default:
		}
		if !leading {
			s.forget()
		}
		// A leader's passes say whether Redis answers; the others (and a
		// leader out of contact) ask it the time.
		if !leading || !inContact {
			was := inContact
			if inContact = s.contact(ctx, inContact); inContact && !was {
				// Redis may have come back from its AOF without what it
				// last said (a placement undone): look at everything.
				s.forget()
			}
		}
		if leading && inContact {
			if err := s.Pass(ctx); err != nil && ctx.Err() == nil {
				if store.Unavailable(err) {
					inContact = false
				}
				s.logger.WarnContext(ctx, "scheduling pass", slog.Any("error", err))
			}
		}
		waker.Wait(ctx, gen, s.untilLost(s.cfg.Tick))
	}
	return nil
}

// untilLost is tick, or less when a live worker turns lost sooner (see
// noteLost): then the pass that recovers its jobs comes when it does.
func (s *Scheduler) untilLost(tick time.Duration) time.Duration {
	at := s.lostAt.Load()
	if at == nil || !time.Now().Before(*at) {
		return tick // none, or a pass that failed left it behind
	}
	// A millisecond late: Redis's clock must have passed the silence.
	return min(tick, time.Until(*at)+time.Millisecond)
}

// noteLost keeps, from the live workers of a pass made at now (Redis's
// clock), when the first of them turns lost if it heartbeats no more.
func (s *Scheduler) noteLost(live []store.Worker, now time.Time) {
	var first time.Time
	for _, w := range live {
		at := w.LastHeartbeat.Add(s.cfg.WorkerLostAfter)
		if grace := time.UnixMilli(s.graceUntil.Load()); at.Before(grace) {
			at = grace
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if first.IsZero() {
		s.lostAt.Store(nil)
		return
	}
	local := time.Now().Add(first.Sub(now))
	s.lostAt.Store(&local)
}

// forget drops what the last pass saw: the next one looks at every pending
// job again.
func (s *Scheduler) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capacity, s.waiting = "", nil
}

// capacityOf describes the registry as placement sees it: each worker's
// state, free slots, what it can run and which of its GPUs are free. Two
// passes that see the same capacity place the same jobs.
func (s *Scheduler) capacityOf(workers []store.Worker, now time.Time) string {
	var b strings.Builder
	for _, w := range workers {
		fmt.Fprintf(&b, "%s %t %s %d/%d %s %t %v;", w.ID, s.alive(w, now), w.Status, len(w.Jobs), w.Slots, w.Executor, w.AllowHostProcess, w.Mounts)
		for _, g := range w.GPUs {
			fmt.Fprintf(&b, "%d %s %d %s,", g.Index, g.Model, g.MemoryMB, g.JobID)
		}
	}
	return b.String()
}

// toLook is which pending jobs a pass looks at, and reads them: all (up to
// 1000) when the registry changed since the last pass; else only those no
// pass under this registry left waiting (one ZRANGE of the pending IDs, then
// the new ones). So a backlog that cannot be placed costs one command a
// pass while nothing changes, and a submit costs the reading of the new
// job, not of the backlog. Ticks do the same as wake-ups: a wake-up lost
// (pub/sub drops messages across a reconnect) costs a tick, not the job.
func (s *Scheduler) toLook(ctx context.Context, capacity string) ([]string, []*api.Job, error) {
	s.mu.Lock()
	same, waiting := capacity == s.capacity, s.waiting
	s.mu.Unlock()
	if !same {
		return s.store.PendingJobs(ctx, 1000)
	}
	ids, err := s.store.Pending(ctx, 1000)
	if err != nil {
		return nil, nil, err
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return waiting[id] })
	jobs, err := s.store.JobsByID(ctx, ids)
	return ids, jobs, err
}

// saw records what a pass under capacity left waiting (all of it when it
// looked at every pending job, and else what it looked at besides what
// earlier passes left), or, when it placed a job, that the next pass looks
// at all again.
func (s *Scheduler) saw(capacity string, looked []string, left map[string]bool, placed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if placed {
		s.capacity, s.waiting = "", nil
		return
	}
	if capacity != s.capacity || s.waiting == nil {
		s.capacity, s.waiting = capacity, map[string]bool{}
	}
	for _, id := range looked {
		if left[id] {
			s.waiting[id] = true
		}
	}
}

// contact says whether Redis answers; when it answers again after it did not
// (or for the first time), the grace begins.
func (s *Scheduler) contact(ctx context.Context, inContact bool) bool {
	now, err := s.store.Time(ctx)
	if err != nil {
		return false
	}
	if !inContact {
		s.graceUntil.Store(now.Add(s.cfg.WorkerLostAfter).UnixMilli())
	}
	return true
}

// alive says whether w counts as running at now (Redis's clock): not
// stopped, and heartbeating within WorkerLostAfter or still in the grace
// after this scheduler's contact with Redis began.
func (s *Scheduler) alive(w store.Worker, now time.Time) bool {
	return w.Status != store.WorkerStopped && (now.Sub(w.LastHeartbeat) < s.cfg.WorkerLostAfter || now.UnixMilli() < s.graceUntil.Load())
}

// WorkerState is what the workers view (GET /v1/workers) shows of w at
// now (Redis's clock): stopped, lost (silent past WorkerLostAfter and the
// grace), the status a worker out of service reports, or up.
func (s *Scheduler) WorkerState(w store.Worker, now time.Time) string {
	switch {
	case w.Status == store.WorkerStopped:
		return store.WorkerStopped
	case !s.alive(w, now):
		return store.WorkerLost
	case !inService(w):
		return w.Status
	}
	return store.WorkerUp
}

// inService reports whether a worker may be given jobs, as far as its own
// status goes: not while its node preparation runs or after it failed, nor
// while it shuts down.
func inService(w store.Worker) bool {
	return w.Status != store.WorkerPreparing && w.Status != store.WorkerOutOfService && w.Status != store.WorkerStopping
}

// Pass recovers the jobs of lost workers, then places pending jobs in order
// (priority, then age) on live workers with free slots. Run makes a pass on
// each wake-up and tick while this process leads; a test or a tool may make
// one itself. A pass reads the registry, and reads pending jobs only when
// they may be placed now (see toLook): each once while the registry stays
// as it is and nothing is placed.
func (s *Scheduler) Pass(ctx context.Context) error {
	// Redis's clock, which stamps the heartbeats: no other clock is trusted.
	now, err := s.store.Time(ctx)
	if err != nil {
		return err
	}
	workers, err := s.store.Workers(ctx)
	if err != nil {
		return err
	}
	free := map[string]int{}
	var live []store.Worker
	var held []string // live workers not in service, as "id state"
	var alive []store.Worker
	for _, w := range workers {
		if s.alive(w, now) {
			alive = append(alive, w)
		}
		if !s.alive(w, now) || !inService(w) {
			// A worker out of service hands its placed jobs to others.
			s.recoverWorker(ctx, w, now)
			if s.alive(w, now) {
				held = append(held, w.ID+" "+w.Status)
			}
			continue
		}
		live = append(live, w)
		free[w.ID] = w.Slots - len(w.Jobs)
	}
	s.noteLost(alive, now)
	// live holds the registry as read; placements below mark GPUs taken in it.
	capacity := s.capacityOf(workers, now)
	ids, jobs, err := s.toLook(ctx, capacity)
	if err != nil {
		s.forget()
		return err
	}
	left, placed := map[string]bool{}, false
	defer func() { s.saw(capacity, ids, left, placed) }()
	quotas := map[string]*wsQuota{}
	// waits are the reasons that changed, written together after the loop.
	waits := map[string]api.Reason{}
	for i, id := range ids {
		job := jobs[i]
		if job == nil || job.Status != api.StatusQueued {
			_ = s.store.DropPending(ctx, id)
			continue
		}
		q, err := s.quotaOf(ctx, quotas, job.Workspace)
		if err != nil {
			return err
		}
		var wait api.Reason
		switch {
		case q.max > 0 && q.holding >= q.max:
			wait = api.Reason{Code: api.ReasonQuota, Detail: fmt.Sprintf("workspace quota: %d of %d jobs running", q.holding, q.max)}
		case q.maxGPUs > 0 && q.gpus+job.Spec.Resources.GPUs > q.maxGPUs:
			wait = api.Reason{Code: api.ReasonQuota,
				Detail: fmt.Sprintf("workspace quota: %d of %d GPUs in use, needs %d more", q.gpus, q.maxGPUs, job.Spec.Resources.GPUs)}
		}
		var target string
		var gpus []int
		if wait.Code == "" {
			target, gpus, wait = s.choose(live, free, job.Spec)
		}
		switch {
		case target == "" && len(live) == 0 && len(held) > 0 && wait.Code == api.ReasonNoWorker:
			wait.Detail = fmt.Sprintf("waiting for a worker: none is in service (%s; GET /v1/workers says why)", listSome(held, 3))
		case target == "" && len(held) > 0 && wait.Code != api.ReasonQuota:
			// A worker out of service may be the one this job needs.
			wait.Detail += fmt.Sprintf(" (not in service: %s; GET /v1/workers says why)", listSome(held, 3))
		}
		if target == "" {
			if job.Spec.Priority == api.PriorityHigh && job.Spec.Resources.GPUs > 0 && wait.Code != api.ReasonQuota {
				if why := s.preemptFor(ctx, job, live); why.Code != "" {
					wait = why
				}
			}
			if job.Reason != wait.String() || job.ReasonCode != wait.Code {
				waits[id] = wait
			}
			// A high-priority job is looked at on every pass: for a GPU
			// job, a victim still starting (placed, not yet running, so not
			// preemptible) becomes one without any change in the registry.
			left[id] = wait.Code != api.ReasonPreempting && job.Spec.Priority != api.PriorityHigh
			continue
		}
		placed = true // or tried: the registry changes, or is not as read
		placedOn, err := s.place(ctx, job, target, gpus, live)
		if err != nil {
			s.logger.WarnContext(ctx, "place job", slog.String("job_id", id), slog.Any("error", err))
			continue
		}
		free[placedOn]--
		takeGPUs(live, placedOn, gpus, job.ID)
		q.holding++
		q.gpus += len(gpus)
	}
	if err := s.store.SetReasons(ctx, waits); err != nil {
		placed = true // the reasons are not written: look at them all again
		return err
	}
	return nil
}

// takeGPUs marks gpus of worker as held by jobID in this pass's view.
func takeGPUs(live []store.Worker, worker string, gpus []int, jobID string) {
	for i := range live {
		if live[i].ID != worker {
			continue
		}
		for k := range live[i].GPUs {
			if slices.Contains(gpus, live[i].GPUs[k].Index) {
				live[i].GPUs[k].JobID = jobID
			}
		}
	}
}

// preemptFor asks low-priority jobs to give their GPUs to high-priority job,
// on the one worker where that frees enough, and says why job waits; "" when
// preemption cannot help. Victims are stopped by their workers (SIGTERM, the
// grace period, SIGKILL) and requeued; the GPUs free up when they have ended.
func (s *Scheduler) preemptFor(ctx context.Context, job *api.Job, live []store.Worker) api.Reason {
	need := job.Spec.Resources.GPUs
	for _, w := range live {
		if !CanRun(w, job.Spec) {
			continue
		}
		freeNow := len(MatchingGPUs(w, job.Spec.Resources, true))
		// GPUs held by low-priority jobs, per job, newest start first: the
		// least work is lost by stopping those.
		type holder struct {
			job     *api.Job
			gpus    int
			pending bool
		}
		held := map[string]*holder{}
		for _, g := range MatchingGPUs(w, job.Spec.Resources, false) {
			if g.JobID == "" {
				continue
			}
			if h, ok := held[g.JobID]; ok {
				h.gpus++
				continue
			}
			v, err := s.store.GetJobByID(ctx, g.JobID)
			if err != nil || v.Spec.Priority != api.PriorityLow || v.Status != api.StatusRunning {
				continue
			}
			held[g.JobID] = &holder{job: v, gpus: 1, pending: s.store.PreemptRequested(ctx, v.ID) != ""}
		}
		victims := make([]*holder, 0, len(held))
		soon := 0
		for _, h := range held {
			if h.pending {
				soon += h.gpus
			} else {
				victims = append(victims, h)
			}
		}
		if freeNow+soon >= need {
			return api.Reason{Code: api.ReasonPreempting,
				Detail: fmt.Sprintf("needs %s: waiting for preempted low-priority jobs on %s to stop", DescribeGPUs(job.Spec.Resources), w.ID)}
		}
		total := freeNow + soon
		for _, h := range victims {
			total += h.gpus
		}
		if total < need {
			continue
		}
		slices.SortFunc(victims, func(a, b *holder) int { return timeOf(b.job.StartedAt).Compare(timeOf(a.job.StartedAt)) })
		got := freeNow + soon
		var stopped []string
		for _, h := range victims {
			if got >= need {
				break
			}
			ok, err := s.store.RequestPreemption(ctx, h.job.ID, h.job.Attempt, job.ID)
			if err != nil || !ok {
				continue
			}
			_ = s.rdb.Publish(ctx, queue.ChannelPreempt, h.job.ID).Err()
			s.logger.InfoContext(ctx, "preempting low-priority job", slog.String("job_id", h.job.ID), slog.String("for_job", job.ID), slog.String("worker_id", w.ID))
			got += h.gpus
			stopped = append(stopped, h.job.ID)
		}
		return api.Reason{Code: api.ReasonPreempting,
			Detail: fmt.Sprintf("needs %s: preempting low-priority jobs %s on %s", DescribeGPUs(job.Spec.Resources), strings.Join(stopped, ", "), w.ID)}
	}
	return api.Reason{}
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// wsQuota is a workspace's quotas and use during one pass.
type wsQuota struct{ max, holding, maxGPUs, gpus int }

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
		q.max, q.maxGPUs = w.Quotas.MaxRunningJobs, w.Quotas.MaxGPUs
	}
	if q.max > 0 || q.maxGPUs > 0 {
		if q.holding, q.gpus, err = s.store.RunningUse(ctx, ws); err != nil {
			return nil, err
		}
	}
	seen[ws] = q
	return q, nil
}

// listSome joins the first n of items, and says how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// noWorkerWait is why a job waits when no worker is up.
var noWorkerWait = api.Reason{Code: api.ReasonNoWorker, Detail: "waiting for a worker: none is running (start one with `jobgate worker`)"}

// choose picks a live worker that can run spec now, and its GPUs, or says why
// none can. Jobs without GPUs go to the worker with the most free slots; GPU
// jobs to the one with the fewest free matching GPUs that still fit (best
// fit keeps big blocks of GPUs free for big jobs).
func (s *Scheduler) choose(live []store.Worker, free map[string]int, spec api.JobSpec) (string, []int, api.Reason) {
	need := spec.Resources.GPUs
	var best *store.Worker
	var bestGPUs []store.WorkerGPU
	capable, freeSlots, slots, freeGPUs, gpus := 0, 0, 0, 0, 0
	for i := range live {
		w := &live[i]
		if !CanRun(*w, spec) {
			continue
		}
		capable++
		freeSlots += max(free[w.ID], 0)
		slots += w.Slots
		fg := MatchingGPUs(*w, spec.Resources, true)
		freeGPUs += len(fg)
		gpus += len(MatchingGPUs(*w, spec.Resources, false))
		if free[w.ID] <= 0 || len(fg) < need {
			continue
		}
		better := best == nil
		if !better && need > 0 {
			better = len(fg) < len(bestGPUs)
		}
		if !better && need == 0 {
			better = free[w.ID] > free[best.ID]
		}
		if better {
			best, bestGPUs = w, fg
		}
	}
	switch {
	case best != nil:
		idx := make([]int, 0, need)
		for _, g := range bestGPUs[:need] {
			idx = append(idx, g.Index)
		}
		return best.ID, idx, api.Reason{}
	case len(live) == 0:
		return "", nil, noWorkerWait
	case capable == 0 && need > 0:
		return "", nil, api.Reason{Code: api.ReasonWaitingForGPU,
			Detail: fmt.Sprintf("needs %s: none of %d running workers has that many", DescribeGPUs(spec.Resources), len(live))}
	case capable == 0 && spec.Mode == api.ModeProcess:
		return "", nil, api.Reason{Code: api.ReasonNoWorker,
			Detail: fmt.Sprintf("waiting for a worker that runs host-process jobs: none of %d running workers allows them", len(live))}
	case capable == 0:
		return "", nil, api.Reason{Code: api.ReasonNoWorker,
			Detail: fmt.Sprintf("waiting for a worker that runs %s jobs: none of %d running workers can", spec.Mode, len(live))}
	case need > 0 && freeSlots > 0:
		return "", nil, api.Reason{Code: api.ReasonWaitingForGPU,
			Detail: fmt.Sprintf("needs %s; %d of %d free on %d workers", DescribeGPUs(spec.Resources), freeGPUs, gpus, capable)}
	}
	return "", nil, api.Reason{Code: api.ReasonWaitingForSlot,
		Detail: fmt.Sprintf("waiting for a free slot: %d of %d free on %d workers", freeSlots, slots, capable)}
}

// place reserves the attempt on worker, enqueues its task on the worker's
// queue and wakes the worker. It returns the worker the job went to (an
// earlier reservation wins over target).
func (s *Scheduler) place(ctx context.Context, job *api.Job, target string, gpus []int, live []store.Worker) (string, error) {
	workerID, placement, err := s.store.Reserve(ctx, job.ID, job.Attempt, target, "placed on worker "+target, gpus...)
	if err != nil {
		return "", err
	}
	if workerID != target && !isLive(live, workerID) {
		// Reserved by an earlier pass for a worker that is gone: hand it back.
		return "", s.store.Unreserve(ctx, job, workerID, "worker "+workerID+" went away before starting it")
	}
	// The worker's own stop grace makes the deadline, and travels in the
	// task so that the worker stops the workload with exactly it.
	p := queue.RunJobPayload{JobID: job.ID, Attempt: job.Attempt, Placement: placement, StopGrace: s.stopGrace(live, workerID)}
	timeout := time.Duration(job.Spec.TimeoutSeconds) * time.Second
	if job.Spec.Service != nil {
		timeout = queue.ServiceDeadline // a service job has no timeout
	}
	ctx, span := s.tracePlace(ctx, job, workerID, placement)
	defer span.End()
	task, err := queue.NewRunJobTaskWithHeaders(p, queue.RunJobDeadline(timeout, p.StopGrace), queue.TraceHeaders(ctx))
	if err != nil {
		return "", err
	}
	if _, err := s.tasks.EnqueueContext(ctx, task, asynq.Queue(queue.WorkerQueue(workerID))); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return "", fmt.Errorf("enqueue on %s: %w", workerID, err)
	}
	if err := s.store.Placed(ctx, job.Workspace, job.ID, job.Attempt, workerID); err != nil {
		return "", err
	}
	_ = queue.Notify(ctx, s.rdb, queue.WorkerChannel(workerID))
	return workerID, nil
}

// stopGrace is the stop grace worker id registered, or StopGrace when it
// registered none.
func (s *Scheduler) stopGrace(live []store.Worker, id string) time.Duration {
	for _, w := range live {
		if w.ID == id && w.StopGrace > 0 {
			return w.StopGrace
		}
	}
	return s.cfg.StopGrace
}

func isLive(live []store.Worker, id string) bool {
	for _, w := range live {
		if w.ID == id {
			return true
		}
	}
	return false
}

// recoverWorker hands the jobs of a stopped, lost or out-of-service worker to
// others: placed but not started ones go back to the pending set as they were;
// running ones (only on a lost or stopped worker: one that is preparing or
// out of service runs none) are requeued as a new attempt with the reason
// worker_lost or worker_stopped. A worker that stops cleanly hands its own
// back before it says it stopped, so those on a stopped worker are attempts
// it could not stop in time. The reason says that such an attempt may still
// be running on the worker's machine until it is reaped (the history's
// note): nothing here can stop it. A worker that comes back later finds its old tasks stale.
func (s *Scheduler) recoverWorker(ctx context.Context, w store.Worker, now time.Time) {
	state := s.WorkerState(w, now)
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
			err = s.store.Unreserve(ctx, job, w.ID, fmt.Sprintf("worker %s is %s; waiting to be placed again", w.ID, state))
		case job.Status == api.StatusRunning && job.Worker == w.ID && (state == store.WorkerLost || state == store.WorkerStopped):
			why := api.Reason{Code: api.ReasonWorkerLost, Detail: fmt.Sprintf("worker %s stopped heartbeating", w.ID)}
			if state == store.WorkerStopped {
				why = api.Reason{Code: api.ReasonWorkerStopped, Detail: fmt.Sprintf("worker %s stopped without handing the attempt back", w.ID)}
			}
			o := store.NewOutcome(api.StatusFailed, why)
			o.Worker, o.StartedAt = w.ID, job.StartedAt
			o.Note = fmt.Sprintf("attempt %d may still be running on the machine of %s until it is reaped (by %s when it comes back, or by another worker on the same podman)",
				job.Attempt, w.ID, w.ID)
			if err = s.store.Requeue(ctx, job.Workspace, id, job.Attempt, o, now); err == nil {
				s.cfg.Metrics.Recovered(why.Code)
			}
			s.logger.WarnContext(ctx, "recovered job of "+state+" worker", slog.String("job_id", id), slog.String("worker_id", w.ID))
		case job.Status.Terminal():
			err = s.store.ForgetWorkerJob(ctx, w.ID, id)
		}
		if err != nil && !errors.Is(err, store.ErrConflict) {
			s.logger.WarnContext(ctx, "recover job", slog.String("job_id", id), slog.Any("error", err))
		}
	}
}
