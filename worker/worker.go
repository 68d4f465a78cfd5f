// Package worker runs jobs: it registers in the worker registry, consumes its
// own asynq queue (on which the scheduler places jobs), runs each attempt
// through an Executor (podman containers, or host processes when allowed),
// ships logs, and records how each attempt ended.
package worker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/gpu"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// Config configures a Worker. The zero value works once ID-less defaults are
// filled in by New.
type Config struct {
	// Metrics is the worker's metric set (dispatch latency, ends, retries,
	// preemptions, batch rows, and its slots and GPUs in use); nil: off.
	Metrics *metrics.Worker
	// ID names the worker in the registry and its queue. Keep it stable across
	// restarts (the default is the hostname) so tasks placed on the worker while
	// it was down are picked up when it comes back.
	ID string
	// Slots is how many jobs run at once; default 4.
	Slots int
	// AllowHostProcess lets this worker run mode=process jobs on the host.
	AllowHostProcess bool
	// HeartbeatInterval; default 1s. The scheduler calls a worker lost after
	// LostAfter without a beat (seven missed beats by default).
	HeartbeatInterval time.Duration
	// LostAfter is the gateways' WorkerLostAfter (default 7s), and must not
	// be longer than theirs: a process that holds this worker's ID in the
	// registry and has heartbeated within it counts as alive, and this one
	// does not start under the same ID (see claim); and a worker whose
	// beats have not reached Redis for all but the last 2s of it stops its
	// running attempts, before the scheduler places them elsewhere (see
	// watchSilence).
	LostAfter time.Duration
	// IdleWait bounds how long an idle worker waits for a wake-up before it
	// looks at its queue anyway; default 2s.
	IdleWait time.Duration
	// ShutdownTimeout is how long running jobs may take to finish on shutdown
	// before they are stopped and requeued; default 10s.
	ShutdownTimeout time.Duration
	// StopTimeout bounds, after ShutdownTimeout, the stopping of the jobs
	// still running (SIGTERM, the executor's grace, SIGKILL) and the
	// recording that they were requeued; past it the worker leaves anyway,
	// and the scheduler requeues what is still running on it. Default 1m.
	StopTimeout time.Duration
	// RecordRetryFor is how long the worker retries to record how an
	// attempt ended while Redis does not answer; default 10m. An end it
	// could not record is kept in SpoolDir and recorded by its next start.
	RecordRetryFor time.Duration
	// ReapEvery is how often the worker removes the containers of its
	// cluster (see ClusterID) that no worker runs any more: its own that
	// no live process of its ID holds, and those whose attempt the job's record
	// says has ended or moved on. It also does so at start. Default 30s.
	ReapEvery time.Duration
	// SpoolDir holds log files of running attempts; default os.TempDir()/jobgate-spool.
	SpoolDir string
	// CheckpointDir holds one folder per job that survives its attempts
	// (JOBGATE_CHECKPOINT_DIR), so a preempted or retried job can resume.
	// Share it between workers for resuming on another machine. Default
	// os.TempDir()/jobgate-checkpoints.
	CheckpointDir string
	// GPUs is the worker's GPU inventory; nil means none.
	GPUs gpu.Inventory
	// TracerProvider, when set, makes each attempt a job.attempt span in
	// its job's trace, whose context the workload gets as TRACEPARENT
	// (traceAttempt); nil makes none and sets none.
	TracerProvider trace.TracerProvider
	// GPUSampleEvery is how often GPU utilization and memory are sampled
	// into the registry and the metrics of the jobs using them; default 10s.
	GPUSampleEvery time.Duration
	// MaxOutputBytes caps what one attempt may leave in its outputs folder
	// (JOBGATE_OUTPUTS); a job over it fails with the reason
	// outputs_too_large and none of that attempt's outputs are collected.
	// Default 10 GiB.
	MaxOutputBytes int64
	// MaxInputBytes caps what the download inputs of one attempt may copy
	// together; past it the job fails with input_unavailable. Default 100 GiB.
	MaxInputBytes int64
	// GatewayURL is the API address jobs are given (JOBGATE_URL, and
	// MLFLOW_TRACKING_URI unless the job sets its own) with a token for their
	// own job; it must be reachable from inside the job. Default
	// http://127.0.0.1:8080.
	GatewayURL string
	// ScoringURL is the scoring router's address (its /v2 API) that batch
	// jobs send their rows through; empty: this worker fails batch jobs
	// with batch_unavailable.
	ScoringURL string
	// Mounts are cluster-level mounts, name → absolute host folder: every
	// container job on this worker gets each read-only at /mounts/NAME, and
	// every job its path in JOBGATE_MOUNT_NAME. Validate checks them.
	Mounts map[string]string
	// NodePrep is an executable run once on the host when the worker starts,
	// before it takes any job (node preparation: drivers, caches, images). It
	// runs as the worker's user with the worker's environment and
	// JOBGATE_WORKER_ID, its output in the worker's log. Until it exits 0 the
	// worker is registered as preparing and given no jobs; when it fails
	// (non-zero exit, not executable, NodePrepTimeout) the worker stays
	// registered as out_of_service with the reason, takes no jobs and waits
	// to be stopped; a fixed NodePrep is run at the next start. Empty: none.
	NodePrep string
	// NodePrepTimeout bounds NodePrep; default 10 minutes.
	NodePrepTimeout time.Duration
	// MaxLogLineBytes is the longest line a job's log keeps whole: a longer
	// one is split into lines of up to this many bytes, never inside a
	// secret, and the log says so. A job with a secret longer than half of
	// it gets twice the secret's length instead. Default 1 MiB.
	MaxLogLineBytes int
	// MaxLiveLogBytes caps what one attempt's log may put in its live Redis
	// stream (Redis memory is shared); past it the log goes on at rest only,
	// after a note, and is served whole once the attempt ends. Default 64 MiB.
	MaxLiveLogBytes int64
	// MaxLogBytes caps one attempt's at-rest log on the worker's disk and in
	// the artifact store; past it lines are dropped, after a note. Default
	// 10 GiB.
	MaxLogBytes int64
	// StopGrace is the time a stopped job gets between SIGTERM and SIGKILL;
	// default DefaultStopGrace. The worker registers it, the scheduler
	// computes the deadline of each task it places here with it and sends
	// it in the task, and the worker stops the task's workload with the
	// task's grace (Attempt.StopGrace), this one only for tasks without.
	StopGrace time.Duration
	// AdvertiseHost is the address a service job (a deployment's replica)
	// listens on and is reached at: the worker picks a free port on it for
	// each replica and writes host:port in the replica's endpoint. Default
	// 127.0.0.1.
	AdvertiseHost string
	// DrainDelay is how long a stopped service job keeps serving after its
	// endpoint says draining, so that every scoring router has dropped it
	// before it gets SIGTERM; default 1s.
	DrainDelay time.Duration
	// ModelCacheDir holds the model versions service jobs serve, fetched
	// from the artifact store and checked against their SHA-256. Default
	// os.TempDir()/jobgate-models/<ID>.
	ModelCacheDir string
}

// Validate says what is wrong with cfg in words a person can act on.
func (c Config) Validate() error {
	if c.NodePrepTimeout < 0 {
		return fmt.Errorf("worker: node preparation timeout %s: must not be negative (0 means the default, 10m)", c.NodePrepTimeout)
	}
	if c.StopGrace < 0 {
		return fmt.Errorf("worker: stop grace %s: must not be negative (0 means the default, %s)", c.StopGrace, DefaultStopGrace)
	}
	if err := c.validateService(); err != nil {
		return err
	}
	return c.validateMounts()
}

// Worker is one worker process's job runner.
type Worker struct {
	cfg       Config
	rdb       redis.UniversalClient
	store     *store.Store
	artifacts artifact.Store
	executors map[api.Mode]Executor
	secrets   *secretbox.Box
	logger    *slog.Logger
	now       func() time.Time
	execs     execSessions
	// ends records attempts' ends: the store, but for tests injecting faults.
	ends endStore
	// starts starts attempts: the store, but for tests injecting faults.
	starts startStore

	// instance names this process (see store.StartBy); cluster is the
	// installation's ID, known once Run has started.
	instance string
	cluster  string

	// mu guards the fields below.
	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	gpuJobs map[string]*gpuJob
	// held are the attempts this process started, by job ID, until their
	// end is recorded.
	held map[string]*heldAttempt
	// stopping is set when the worker stops its running attempts to leave.
	stopping error
	// ports are the ports given to the service jobs running here.
	ports portSet

	// lastBeat is when the last heartbeat that reached Redis was sent (the
	// claim's start before the first); see watchSilence.
	lastBeat time.Time

	// superseded is closed when another process claimed this worker's ID
	// (see claim) while this one was silent.
	superseded     chan struct{}
	supersededOnce sync.Once
}

// errCancelRequested and errTimeout are the causes a run's context ends with.
var (
	errCancelRequested = errors.New("cancel requested")
	errPreempted       = errors.New("preempted")
	errTimeout         = errors.New("timeout")
)

// New returns a Worker. executors maps each mode it can run to its executor; a
// mode without one is refused. secrets opens workspace secrets for jobs that
// use them; with nil such jobs fail with the reason secret_unavailable.
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, arts artifact.Store, executors map[api.Mode]Executor, secrets *secretbox.Box, logger *slog.Logger) *Worker {
	host, _ := os.Hostname()
	cfg.ID = cmp.Or(cfg.ID, host, "worker")
	cfg.Slots = cmp.Or(cfg.Slots, 4)
	cfg.HeartbeatInterval = cmp.Or(cfg.HeartbeatInterval, time.Second)
	cfg.LostAfter = cmp.Or(cfg.LostAfter, DefaultLostAfter)
	cfg.IdleWait = cmp.Or(cfg.IdleWait, 2*time.Second)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 10*time.Second)
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, time.Minute)
	cfg.RecordRetryFor = cmp.Or(cfg.RecordRetryFor, 10*time.Minute)
	cfg.ReapEvery = cmp.Or(cfg.ReapEvery, 30*time.Second)
	cfg.SpoolDir = cmp.Or(cfg.SpoolDir, filepath.Join(os.TempDir(), "jobgate-spool"))
	cfg.CheckpointDir = cmp.Or(cfg.CheckpointDir, filepath.Join(os.TempDir(), "jobgate-checkpoints"))
	cfg.GPUSampleEvery = cmp.Or(cfg.GPUSampleEvery, 10*time.Second)
	cfg.MaxOutputBytes = cmp.Or(cfg.MaxOutputBytes, 10<<30)
	cfg.MaxInputBytes = cmp.Or(cfg.MaxInputBytes, 100<<30)
	cfg.GatewayURL = strings.TrimRight(cmp.Or(cfg.GatewayURL, "http://127.0.0.1:8080"), "/")
	cfg.ScoringURL = strings.TrimRight(cfg.ScoringURL, "/")
	cfg.NodePrepTimeout = cmp.Or(cfg.NodePrepTimeout, 10*time.Minute)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	cfg.AdvertiseHost = cmp.Or(cfg.AdvertiseHost, DefaultAdvertiseHost)
	cfg.DrainDelay = cmp.Or(cfg.DrainDelay, DefaultDrainDelay)
	cfg.ModelCacheDir = cmp.Or(cfg.ModelCacheDir, filepath.Join(os.TempDir(), "jobgate-models", cfg.ID))
	// Absolute: jobs run in folders of their own, and containers bind them.
	if abs, err := filepath.Abs(cfg.CheckpointDir); err == nil {
		cfg.CheckpointDir = abs
	}
	if abs, err := filepath.Abs(cfg.SpoolDir); err == nil {
		cfg.SpoolDir = abs
	}
	if abs, err := filepath.Abs(cfg.ModelCacheDir); err == nil {
		cfg.ModelCacheDir = abs
	}
	w := &Worker{cfg: cfg, rdb: rdb, store: st, ends: st, starts: st, artifacts: arts, executors: executors, secrets: secrets, superseded: make(chan struct{}),
		logger: logger.With(slog.String("worker_id", cfg.ID)), now: time.Now, running: map[string]context.CancelCauseFunc{}, gpuJobs: map[string]*gpuJob{},
		instance: newInstanceID(), held: map[string]*heldAttempt{}, ports: portSet{}}
	cfg.Metrics.WatchCapacity(w.capacity)
	return w
}

// ID is the worker's registry ID.
func (w *Worker) ID() string { return w.cfg.ID }

// Run serves until ctx is done, then shuts down in this order: stop taking
// tasks, give running jobs ShutdownTimeout to end, stop and requeue the rest
// (within StopTimeout), hand back the jobs placed on it but not started,
// leave the registry. It heartbeats until it has left, so that the scheduler
// does not take it for lost while it drains.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(w.cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	w.sweepSpool(ctx)
	reg := w.registration()
	cluster, err := w.store.ClusterID(ctx)
	if err != nil {
		return err
	}
	w.cluster = cluster
	if err := w.claim(ctx, reg); err != nil {
		switch {
		case errors.Is(err, errIDInUse):
			return err
		case ctx.Err() != nil:
			return nil // told to stop while it waited for the ID
		}
		return fmt.Errorf("register worker: %w", err)
	}
	// Heartbeats begin with the claim: a process that waits for the ID to
	// be free (see claim) sees this one alive from now on. They go on
	// until the worker has drained and leaves the registry.
	hbCtx, endHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); w.heartbeat(hbCtx) }()
	stopHeartbeat := sync.OnceFunc(func() { endHeartbeat(); <-hbDone })
	defer stopHeartbeat()

	// stoppedStarting is what Run returns when it fails to start: nil when
	// it was told to stop meanwhile, after leaving the registry.
	stoppedStarting := func(err error) error {
		if ctx.Err() == nil {
			return err
		}
		stopHeartbeat()
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = w.store.StopWorker(cleanup, w.cfg.ID)
		return nil
	}

	w.recordSavedEnds(ctx)
	w.recoverOwn(ctx)
	w.reap(ctx)
	if ok, err := w.prepareNode(ctx); !ok {
		return err // out of service, or stopped during node preparation
	}

	subs, err := w.subscribe(ctx)
	if err != nil {
		return stoppedStarting(err)
	}
	defer subs.close()
	srv, srvRedis, err := w.taskServer(ctx, subs.waker)
	if err != nil {
		return err
	}
	defer srvRedis.Close()
	mux := asynq.NewServeMux()
	mux.HandleFunc(queue.TypeRunJob, w.handleRunJob)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.logger.InfoContext(ctx, "worker started", slog.String("executor", reg.Executor), slog.Int("slots", w.cfg.Slots),
		slog.Bool("host_process", reg.AllowHostProcess))
	_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)

	superseded := w.serve(ctx, srv, subs)
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	stopHeartbeat()
	if superseded {
		return idInUse("another process took worker ID %s over while this one could not heartbeat; this one stopped", w.cfg.ID)
	}
	if err := w.store.StopWorker(cleanup, w.cfg.ID); err != nil {
		w.logger.WarnContext(cleanup, "leave registry", slog.Any("error", err))
	}
	_ = queue.Notify(cleanup, w.rdb, queue.ChannelScheduler)
	return nil
}

// serve runs the worker's background parts (reaper, exec sessions, GPU
// samples, cancels) while asynq hands it tasks, until ctx is done or
// another process took the worker's ID over (superseded); then it stops
// taking tasks, drains, and hands back what it could not finish.
func (w *Worker) serve(ctx context.Context, srv *asynq.Server, subs *subscriptions) (superseded bool) {
	// life outlives ctx until the worker has drained and left. serving
	// ends with ctx, or when another process took the worker's ID over.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	serving, endServing := context.WithCancel(ctx)
	defer endServing()
	go func() {
		select {
		case <-w.superseded:
			endServing()
		case <-serving.Done():
		}
	}()
	g, gctx := errgroup.WithContext(life)
	g.Go(func() error { w.reapEvery(gctx); return nil })
	// Exec sessions end when the shutdown begins, as they always did.
	g.Go(func() error { w.serveExec(serving, subs.execReqs); return nil })
	if w.cfg.GPUs != nil {
		g.Go(func() error { w.sampleGPUs(gctx); return nil })
	}
	g.Go(func() error { w.followCancels(gctx, subs.cancels); return nil })
	<-serving.Done()

	// Stop taking tasks (closing the waker releases a dequeue held by the
	// hook) and say so, so that the scheduler places nothing new here; drain
	// waits ShutdownTimeout for running handlers, then stops their
	// workloads, which requeue the attempts. Heartbeats and cancels go on
	// meanwhile. A superseded worker leaves the registry, which is the
	// other process's now, as it is.
	superseded = w.isSuperseded()
	subs.waker.Close()
	srv.Stop()
	if !superseded {
		w.setStopping(ctx)
	}
	w.drain(ctx, srv)
	if !superseded {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		w.handBack(cleanup)
	}
	endLife()
	g.Wait()
	return superseded
}

// registration is how this worker describes itself in the registry.
func (w *Worker) registration() store.Worker {
	execName := "none"
	if e := w.executors[api.ModeContainer]; e != nil {
		execName = e.Name()
	}
	_, allowProc := w.executors[api.ModeProcess]
	reg := store.Worker{ID: w.cfg.ID, Executor: execName, Slots: w.cfg.Slots,
		AllowHostProcess: w.cfg.AllowHostProcess && allowProc, StartedAt: w.now(), Mounts: w.mountNames(), StopGrace: w.cfg.StopGrace}
	if w.cfg.NodePrep != "" {
		reg.Status = store.WorkerPreparing
	}
	reg.Hostname, _ = os.Hostname()
	if w.cfg.GPUs != nil {
		for _, d := range w.cfg.GPUs.Devices() {
			reg.GPUs = append(reg.GPUs, store.WorkerGPU{Index: d.Index, UUID: d.UUID, Model: d.Model, MemoryMB: d.MemoryMB, Simulated: d.Simulated})
		}
	}
	return reg
}

// subscriptions are the channels a serving worker listens on: wake-ups for
// its queue, cancels and preemptions, and exec requests.
type subscriptions struct {
	waker    *queue.Waker
	cancels  *redis.PubSub
	execReqs *redis.PubSub
}

// subscribe listens on every channel before the worker takes a task, so
// that nothing published about one is missed.
func (w *Worker) subscribe(ctx context.Context) (*subscriptions, error) {
	waker, err := queue.NewWaker(ctx, w.rdb, queue.WorkerChannel(w.cfg.ID))
	if err != nil {
		return nil, fmt.Errorf("subscribe to wake-ups: %w", err)
	}
	s := &subscriptions{waker: waker}
	s.cancels = w.rdb.Subscribe(ctx, queue.ChannelCancel, queue.ChannelPreempt)
	if _, err := s.cancels.Receive(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to cancels: %w", err)
	}
	if s.execReqs, err = w.subscribeExec(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *subscriptions) close() {
	s.waker.Close()
	if s.cancels != nil {
		s.cancels.Close()
	}
	if s.execReqs != nil {
		s.execReqs.Close()
	}
}

// taskServer is the asynq server of this worker's queue, on a Redis client
// of its own whose hook turns asynq's poll of an empty queue into a wait on
// the wake-up channel (see dequeueWaitHook). The caller closes the client.
func (w *Worker) taskServer(ctx context.Context, waker *queue.Waker) (*asynq.Server, redis.UniversalClient, error) {
	srvRedis, err := secondClient(w.rdb)
	if err != nil {
		return nil, nil, err
	}
	srvRedis.AddHook(dequeueWaitHook{pendingKey: "asynq:{" + queue.WorkerQueue(w.cfg.ID) + "}:pending", waker: waker, max: w.cfg.IdleWait})
	srv := asynq.NewServerFromRedisClient(srvRedis, asynq.Config{
		Concurrency:       w.cfg.Slots,
		Queues:            map[string]int{queue.WorkerQueue(w.cfg.ID): 1},
		TaskCheckInterval: time.Millisecond,
		// Run stops what is still running after ShutdownTimeout itself (see
		// drain); asynq gives up on its handlers only after that too.
		ShutdownTimeout: w.cfg.ShutdownTimeout + w.cfg.StopTimeout,
		Logger:          asynqLogger{w.logger},
		LogLevel:        asynq.WarnLevel,
		RetryDelayFunc:  func(n int, _ error, _ *asynq.Task) time.Duration { return time.Duration(min(n+1, 10)) * time.Second },
		BaseContext:     func() context.Context { return context.WithoutCancel(ctx) },
	})
	return srv, srvRedis, nil
}

// followCancels stops the running attempts a cancel or preemption names,
// until ctx is done.
func (w *Worker) followCancels(ctx context.Context, sub *redis.PubSub) {
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			cause := errCancelRequested
			if m.Channel == queue.ChannelPreempt {
				cause = errPreempted
			}
			w.cancelRunning(m.Payload, cause)
		}
	}
}

// recoverOwn requeues the attempts an earlier life of this worker was running
// when it died, at once rather than when asynq's lease on them expires; their
// old tasks become stale.
func (w *Worker) recoverOwn(ctx context.Context) {
	regs, err := w.store.Workers(ctx)
	if err != nil {
		return
	}
	for _, r := range regs {
		if r.ID != w.cfg.ID {
			continue
		}
		for _, id := range r.Jobs {
			job, err := w.store.GetJobByID(ctx, id)
			if err != nil || job.Status != api.StatusRunning || job.Worker != w.cfg.ID {
				continue
			}
			if held, _ := w.holding(id, job.Attempt); held {
				continue // its end is saved, and recorded once the store takes it
			}
			if e := w.savedEnd(id, job.Attempt); e != nil {
				w.adoptEnd(e)
				continue
			}
			w.cleanupLeftovers(ctx, job)
			err = w.store.Requeue(ctx, job.Workspace, job.ID, job.Attempt, w.restartedDuring(job), w.now())
			if err == nil {
				w.logger.InfoContext(ctx, "requeued attempt of earlier run", slog.String("job_id", id), slog.Int("attempt", job.Attempt))
			}
		}
	}
}

// heartbeat beats every HeartbeatInterval until ctx is done, and fences
// the worker while its beats do not reach Redis (see watchSilence). A beat
// that fails is tried again after a fifth of the interval: the silence
// that ends when Redis answers again is kept short.
func (w *Worker) heartbeat(ctx context.Context) {
	w.beatOK(time.Now())
	go w.watchSilence(ctx)
	t := time.NewTimer(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sent := time.Now()
			bctx, cancel := context.WithTimeout(ctx, max(w.cfg.HeartbeatInterval, time.Second))
			err := w.store.Heartbeat(bctx, w.cfg.ID, w.instance)
			cancel()
			if err == nil {
				w.beatOK(sent)
				t.Reset(w.cfg.HeartbeatInterval - time.Since(sent))
			} else {
				t.Reset(w.cfg.HeartbeatInterval / 5)
			}
			switch {
			case errors.Is(err, store.ErrConflict):
				w.logger.ErrorContext(ctx, "another process took this worker's ID over while this one could not heartbeat: this one stops", slog.Any("error", err))
				w.supersededOnce.Do(func() { close(w.superseded) })
				return
			case err != nil:
				if ctx.Err() == nil {
					w.logger.WarnContext(ctx, "heartbeat", slog.Any("error", err))
				}
			default:
				w.recordHeldEnds(ctx)
			}
		}
	}
}

func (w *Worker) isSuperseded() bool {
	select {
	case <-w.superseded:
		return true
	default:
		return false
	}
}

func (w *Worker) cancelRunning(jobID string, cause error) {
	w.mu.Lock()
	cancel := w.running[jobID]
	w.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// handleRunJob runs one attempt. Job outcomes (success, failure, timeout,
// cancel) are recorded in the store and the task completes; only an
// infrastructure error (Redis unreachable) is returned so asynq retries it.
func (w *Worker) handleRunJob(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseRunJobPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log := w.logger.With(slog.String("job_id", p.JobID), slog.Int("attempt", p.Attempt))
	job, resumed, err := w.taskJob(ctx, p)
	if job == nil || err != nil {
		return err
	}
	ctx, span := w.traceAttempt(ctx, t, job, p, resumed)
	defer span.End()
	if job.Spec.Service != nil {
		// After the end is recorded: the controller, woken, finds it.
		defer w.serviceEnded(ctx)
	}
	exec, refused, err := w.executorFor(ctx, job)
	if err != nil {
		return err
	}
	if refused != nil {
		return w.finish(ctx, job, store.NewOutcome(api.StatusFailed, *refused))
	}

	secretEnv, err := w.openSecrets(ctx, job)
	if err != nil {
		log.WarnContext(ctx, "open the job's secrets", slog.Any("error", err))
		return w.finish(ctx, job, store.NewOutcome(api.StatusFailed, api.Reason{Code: api.ReasonSecretUnavailable, Detail: publicDetail(err)}))
	}
	devices, gpuEnv, err := w.gpusFor(job)
	if err != nil {
		return w.finish(ctx, job, store.NewOutcome(api.StatusFailed, api.Reason{Code: api.ReasonGPUUnavailable, Detail: err.Error()}))
	}

	if !resumed && w.isStopping() {
		return nil // handed back by the stopping worker (handBack)
	}
	if !resumed {
		if err := w.beatIfSilent(ctx); err != nil {
			return fmt.Errorf("heartbeat before the attempt: %w", err)
		}
	}
	if !w.hold(job.ID, p.Attempt) {
		return nil // this process runs it already
	}
	defer w.release(job.ID, p.Attempt)
	// The workload stops for its own reasons only (cancel, preemption,
	// timeout, the worker stopping; see register), not when asynq gives up
	// on the task's lease because Redis was out of reach for a while: asynq
	// delivers it again then, and this process knows it holds it. It is
	// registered before it starts, so that a cancel or preemption published
	// once it runs finds it.
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer w.register(job.ID, cancel)()
	var start store.Started
	if resumed {
		// Its start's answer was lost, and a cancel or preemption may have
		// been published while nothing here listened: the flags are in the
		// record.
		if j, err := w.store.GetJobByID(ctx, job.ID); err == nil {
			start.CancelRequested = j.CancelRequested
		}
		start.PreemptedBy = w.store.PreemptRequested(ctx, job.ID)
	} else if start, err = w.starts.StartBy(ctx, job.Workspace, job.ID, p.Attempt, w.cfg.ID, w.instance, p.Placement, w.now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	if !resumed && p.Attempt > 1 {
		w.reapEarlierAttempts(ctx, exec, job)
	}
	started := w.now()
	log.InfoContext(ctx, "attempt started", slog.String("mode", string(job.Spec.Mode)))
	if !resumed {
		w.cfg.Metrics.AttemptStarted(job, started)
	}
	if start.CancelRequested {
		cancel(errCancelRequested)
	}
	if start.PreemptedBy != "" {
		cancel(errPreempted)
	}
	defer w.trackGPUs(job.ID, job.GPUs)()
	if job.Spec.Service == nil { // a service job has no timeout: it runs until stopped
		var cancelTimeout context.CancelFunc
		runCtx, cancelTimeout = context.WithTimeoutCause(runCtx, time.Duration(job.Spec.TimeoutSeconds)*time.Second, errTimeout)
		defer cancelTimeout()
	}

	// Stopped with the grace the task's deadline was computed with.
	stopGrace := cmp.Or(p.StopGrace, w.cfg.StopGrace)
	outcome, runErr := w.runAttempt(runCtx, exec, job, p.Attempt, secretEnv, devices, gpuEnv, stopGrace)
	outcome.Worker, outcome.StartedAt = w.cfg.ID, &started

	if w.judge(ctx, log, job, p.Attempt, &outcome, runErr, context.Cause(runCtx)) {
		return w.requeue(ctx, job, outcome)
	}
	return w.finish(ctx, job, outcome)
}

// taskJob is the job a task runs, or nil when there is nothing to do: the
// job ended meanwhile, the task is of an earlier attempt, or another worker
// runs it. resumed: this worker's store record says it runs the attempt
// already, and it is to be taken up again (see redelivered).
func (w *Worker) taskJob(ctx context.Context, p queue.RunJobPayload) (job *api.Job, resumed bool, err error) {
	job, err = w.store.GetJobByID(ctx, p.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, fmt.Errorf("job %s: %w: %w", p.JobID, err, asynq.SkipRetry)
	}
	if err != nil {
		return nil, false, err
	}
	if job.Status.Terminal() || job.Attempt != p.Attempt {
		return nil, false, nil // canceled meanwhile, or a stale task of an earlier attempt
	}
	if job.Status == api.StatusRunning {
		// The store says this worker runs the attempt already: this
		// process (a task delivered again), or an earlier life of it.
		if job.Worker != w.cfg.ID {
			return nil, false, nil
		}
		if resumed, err = w.redelivered(ctx, job); !resumed {
			return nil, false, err
		}
	}
	return job, resumed, nil
}

// executorFor is the executor that runs job, or why this worker refuses to
// run it (the mode is not enabled here, or the workspace may not run host
// processes).
func (w *Worker) executorFor(ctx context.Context, job *api.Job) (Executor, *api.Reason, error) {
	exec := w.executors[job.Spec.Mode]
	if job.Spec.Mode == api.ModeProcess && !w.cfg.AllowHostProcess {
		exec = nil
	}
	if exec == nil {
		return nil, &api.Reason{Code: api.ReasonModeRefused,
			Detail: fmt.Sprintf("worker %s does not run %s jobs (start it with --allow-host-process)", w.cfg.ID, job.Spec.Mode)}, nil
	}
	if job.Spec.Mode == api.ModeProcess {
		// The gateway checked at submit; the grant may have been taken back
		// since (or the job was written to Redis by someone else).
		ws, err := w.store.Workspace(ctx, job.Workspace)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
		if ws == nil || !ws.AllowHostProcess {
			return nil, &api.Reason{Code: api.ReasonModeRefused,
				Detail: fmt.Sprintf("workspace %s may not run host-process jobs (the system admin grants allow_host_process)", job.Workspace)}, nil
		}
	}
	return exec, nil, nil
}

// judge sets how an attempt ended from what ran it returned (runErr) and
// why its context ended (cause), and reports whether the attempt goes back
// to the queue: not the job's failure (preempted, the worker stopping), or
// a failure with retries left. Failures that another attempt would repeat
// (an image that is not there, outputs over the cap, an input that is not
// there) end the job.
func (w *Worker) judge(ctx context.Context, log *slog.Logger, job *api.Job, attempt int, outcome *store.Outcome, runErr, cause error) (requeue bool) {
	fail := func(code, detail string) {
		outcome.Status = api.StatusFailed
		outcome.SetReason(api.Reason{Code: code, Detail: detail})
	}
	switch {
	case runErr != nil && errors.Is(runErr, ErrImageNotFound):
		log.WarnContext(ctx, "image not found", slog.Any("error", runErr))
		fail(api.ReasonImageNotFound, cmp.Or(job.Spec.Image, "no image given"))
		return false
	case runErr != nil && errors.Is(runErr, ErrStart):
		log.WarnContext(ctx, "start failed", slog.Any("error", runErr))
		fail(api.ReasonStartFailed, startDetail(job.Spec, runErr))
		return false
	case errors.Is(cause, errCancelRequested):
		outcome.Status = api.StatusCanceled
		why := api.Reason{Code: api.ReasonCanceled}
		// A sweep that stops a trial says why (early_terminated, timeout).
		if asked, err := w.store.CancelReason(ctx, job.ID); err == nil && asked.Code != "" {
			why = asked
		}
		outcome.SetReason(why)
		return false
	case errors.Is(cause, errPreempted):
		// Not the job's failure: back to the queue, retries untouched.
		fail(api.ReasonPreempted, fmt.Sprintf("its GPUs went to high-priority job %s", w.store.PreemptRequested(ctx, job.ID)))
		return true
	case errors.As(cause, new(*errFenced)) && !exitedZero(outcome, runErr):
		// Stopped before the scheduler places it elsewhere: not the job's
		// failure. Recorded only if it has not been requeued meanwhile. One
		// that exited 0 (before the fence, while its end waited for Redis,
		// or on the SIGTERM) succeeded.
		fail(api.ReasonWorkerLost, fmt.Sprintf("worker %s lost touch with Redis (%s) and stopped the attempt", w.cfg.ID, cause))
		return true
	case errors.Is(cause, errWorkerStopped):
		// The worker is shutting down: the attempt did not fail on its own.
		fail(api.ReasonWorkerStopped, "worker shut down during the attempt")
		return true
	case errors.Is(runErr, errOutputsTooLarge):
		// Retrying would write the same again.
		fail(api.ReasonOutputsTooLarge, detail(runErr, errOutputsTooLarge))
		return false
	case errors.Is(runErr, errBatchErrors):
		// The rows would fail again.
		fail(api.ReasonBatchErrors, detail(runErr, errBatchErrors))
		return false
	case errors.Is(runErr, errBatchUnavailable):
		fail(api.ReasonBatchUnavailable, detail(runErr, errBatchUnavailable))
		return false
	case errors.Is(runErr, errInputUnavailable):
		// The data will not be there for another attempt either.
		fail(api.ReasonInputUnavailable, detail(runErr, errInputUnavailable))
		return false
	case errors.Is(cause, errTimeout):
		fail(api.ReasonTimeout, fmt.Sprintf("exceeded timeout_seconds=%d", job.Spec.TimeoutSeconds))
	case errors.Is(runErr, errPreparationFailed):
		// Retried like a failed command: a preparation may fail for a
		// passing reason, such as a download.
		fail(api.ReasonPreparationFailed, detail(runErr, errPreparationFailed))
	case errors.Is(runErr, errPortTaken):
		// Retried like a crash: another attempt gets another port.
		fail(api.ReasonExecutorError, runErr.Error())
	case runErr != nil:
		log.ErrorContext(ctx, "executor", slog.Any("error", runErr))
		fail(api.ReasonExecutorError, "the worker could not run the attempt (its log says why)")
	case outcome.ExitCode != nil && *outcome.ExitCode == 0 && job.Spec.Service == nil:
		outcome.Status = api.StatusSucceeded
		return false
	case job.Spec.Service != nil:
		// A replica runs until it is stopped: exiting at all is a crash.
		fail(api.ReasonExitCode, fmt.Sprintf("the service exited with %d before it was stopped", derefOr(outcome.ExitCode, -1)))
	default:
		fail(api.ReasonExitCode, fmt.Sprintf("exited with %d", derefOr(outcome.ExitCode, -1)))
	}
	return attempt <= job.Spec.MaxRetries
}

// startDetail is the detail of a start_failed reason: which program of spec
// could not be started, the preparation's or the command's. What the
// executor said (podman's or the kernel's words) is in the job's log and
// the worker's, not in the record.
func startDetail(spec api.JobSpec, err error) string {
	argv, prefix := spec.Command, ""
	if errors.Is(err, errInPreparation) {
		argv, prefix = spec.Preparation, "preparation: "
	}
	if len(argv) == 0 || argv[0] == "" {
		return prefix + "empty command"
	}
	return fmt.Sprintf("%s%s could not be started (the job's log says why)", prefix, argv[0])
}

// startStore is what starting an attempt needs of the store.
type startStore interface {
	StartBy(ctx context.Context, ws, id string, attempt int, workerID, instance string, placement int64, now time.Time) (store.Started, error)
}

var _ startStore = (*store.Store)(nil)

// detail is err's message without the sentinel's own words, which the reason
// code already says. Only for errors the worker wrote itself, whose words
// may go into a job's record.
func detail(err, sentinel error) string {
	msg := err.Error()
	for _, cut := range []string{sentinel.Error() + ": ", ": " + sentinel.Error()} {
		msg = strings.Replace(msg, cut, "", 1)
	}
	return msg
}

func derefOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

// runAttempt runs the workload with its logs shipped and stored at rest;
// stopGrace is the workload's Attempt.StopGrace.
func (w *Worker) runAttempt(ctx context.Context, exec Executor, job *api.Job, attempt int, secretEnv map[string]string, devices []string, gpuEnv map[string]string, stopGrace time.Duration) (store.Outcome, error) {
	spool, err := w.createSpool(job.ID, attempt)
	if err != nil {
		return store.Outcome{}, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	// Earlier attempts whose worker died stored no log at rest: store what
	// the live stream holds of them, before this attempt's lines join it.
	w.storeLostLogs(ctx, job.ID, attempt)
	// The job's own token, for the API and MLflow: it reaches only this job
	// and its children, and dies with the attempt (or its TTL, if the worker
	// dies first).
	token, err := w.store.CreateJobToken(ctx, job.ID, job.Workspace, attempt, jobTokenTTL(job.Spec))
	if err != nil {
		return store.Outcome{}, fmt.Errorf("job token: %w", err)
	}
	defer func() {
		revoke, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := w.store.RevokeJobToken(revoke, token); err != nil {
			w.logger.WarnContext(ctx, "revoke job token", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}()
	hidden := map[string]string{"JOBGATE_JOB_TOKEN": token}
	for k, v := range secretEnv {
		hidden[k] = v
	}
	var onMetrics func(context.Context)
	if job.Spec.ParentID != "" {
		// Perhaps a sweep's trial: its controller judges each point.
		onMetrics = func(ctx context.Context) { _ = queue.Notify(ctx, w.rdb, queue.ChannelSweeps) }
	}
	ship := newLogShipper(job.ID, attempt, w.store, spool, redactor(hidden),
		logLimits{line: w.cfg.MaxLogLineBytes, live: w.cfg.MaxLiveLogBytes, file: w.cfg.MaxLogBytes}, onMetrics)
	// Every way out ends the shipper's goroutine; the normal one closes it
	// below, before the log is stored at rest (Close is idempotent).
	defer ship.Close()
	env := w.attemptEnv(job, attempt, token, secretEnv, gpuEnv)
	traceEnv(ctx, env)
	a := Attempt{JobID: job.ID, Workspace: job.Workspace, Number: attempt, Spec: job.Spec, Env: env, Devices: devices,
		Worker: w.cfg.ID, Cluster: w.cluster, StopGrace: stopGrace}
	// The checkpoint folder outlives the attempt: a preempted or retried job
	// resumes from what it saved there.
	ckpt := filepath.Join(w.cfg.CheckpointDir, cmp.Or(job.Spec.CheckpointFrom, job.ID))
	if err := os.MkdirAll(ckpt, 0o777); err == nil {
		_ = os.Chmod(ckpt, 0o777) // the job may run as any user
		giveFolder(&a, "JOBGATE_CHECKPOINT_DIR", ckpt, "/checkpoint")
	}
	// The outputs folder lives for one attempt; what the attempt left in it
	// is collected into the artifact store when it ends.
	outDir, err := w.outputsDir(job.ID, attempt)
	if err != nil {
		return store.Outcome{}, err
	}
	defer func() {
		if err := os.RemoveAll(outDir); err != nil {
			w.logger.WarnContext(ctx, "remove outputs folder", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}()
	giveFolder(&a, "JOBGATE_OUTPUTS", outDir, "/outputs")
	if a.Spec.Mode == api.ModeProcess {
		// MLflow's artifact calls write here (the tracking API's artifact_uri).
		if err := w.store.SetOutputsPath(ctx, job.ID, outDir); err != nil {
			w.logger.WarnContext(ctx, "record outputs path", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}
	removeWorkDir, err := w.giveWorkDir(&a)
	if err != nil {
		return store.Outcome{}, err
	}
	defer removeWorkDir(ctx)
	// Inputs last: a download may take long, and runs under the attempt's
	// timeout and cancel as the workload does.
	dropInputs, runErr := w.giveInputs(ctx, &a, job, attempt, ship.stderr)
	defer dropInputs()
	var svc *replica
	if runErr == nil && job.Spec.Service != nil {
		svc, runErr = w.giveService(ctx, &a, exec, job, attempt, token)
		defer svc.close()
	}
	var res Outcome
	switch {
	case runErr != nil:
	case svc != nil:
		res, runErr = w.runService(ctx, exec, a, svc, ship.stdout, ship.stderr)
	case job.Spec.Batch != nil:
		res, runErr = w.runBatch(ctx, job, attempt, ship.stderr)
	case job.Spec.BatchScore != nil:
		res, runErr = w.runBatchScore(ctx, exec, a, job, attempt, outDir, ship.stdout, ship.stderr)
	default:
		res, runErr = runSteps(ctx, exec, a, ship.stdout, ship.stderr)
	}
	if runErr != nil {
		// Say why in the job's own log too, where the user looks first.
		fmt.Fprintf(ship.stderr, "jobgate: %v\n", runErr)
	}
	// Collecting a large model may take longer than the rest of the cleanup.
	collect, cancelCollect := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancelCollect()
	outErr := w.collectOutputs(collect, job.ID, outDir, ship.stderr)
	if outErr != nil {
		fmt.Fprintf(ship.stderr, "jobgate: %v\n", outErr)
	}
	if err := ship.Close(); err != nil {
		w.logger.WarnContext(ctx, "ship logs to redis", slog.String("job_id", job.ID), slog.Any("error", err))
	}
	w.storeLog(ctx, job.ID, attempt, spool)
	var out store.Outcome
	if runErr == nil {
		code := res.ExitCode
		out.ExitCode = &code
		runErr = outErr
	}
	return out, runErr
}

// attemptEnv is the workload's environment: the job's env, its secrets and
// GPU variables, and the JOBGATE_* variables (with the job's own token)
// that let it reach the API and MLflow.
func (w *Worker) attemptEnv(job *api.Job, attempt int, token string, secretEnv, gpuEnv map[string]string) map[string]string {
	env := make(map[string]string, len(job.Spec.Env)+len(secretEnv)+10)
	for k, v := range job.Spec.Env {
		env[k] = v
	}
	for k, v := range secretEnv {
		env[k] = v
	}
	for k, v := range gpuEnv {
		env[k] = v
	}
	env["JOBGATE_JOB_ID"] = job.ID
	env["JOBGATE_ATTEMPT"] = strconv.Itoa(attempt)
	env["JOBGATE_WORKSPACE"] = job.Workspace
	env["JOBGATE_URL"] = w.cfg.GatewayURL
	env["JOBGATE_JOB_TOKEN"] = token
	// An unchanged MLflow script logs into this job, unless the job points
	// MLflow at a server of its own.
	if _, own := env["MLFLOW_TRACKING_URI"]; !own { // in its env or its secrets
		env["MLFLOW_TRACKING_URI"] = w.cfg.GatewayURL
		env["MLFLOW_TRACKING_TOKEN"] = token
		env["MLFLOW_RUN_ID"] = job.ID
	}
	return env
}

// storeLog stores the attempt's log (its spool file) at rest. After the
// shipper's Close, which may take a while against a slow Redis: the log at
// rest gets its 30 seconds whatever shipping took.
func (w *Worker) storeLog(ctx context.Context, jobID string, attempt int, spool *os.File) {
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := spool.Seek(0, 0); err == nil {
		if err := w.artifacts.Put(cleanup, artifact.LogKey(jobID, attempt), spool); err != nil {
			w.logger.ErrorContext(cleanup, "store log at rest", slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}

// giveFolder gives the workload host folder dir under the variable name: a
// container gets it bind-mounted at target, a host process its own path.
func giveFolder(a *Attempt, name, dir, target string) {
	if a.Spec.Mode == api.ModeContainer {
		a.Mounts = append(a.Mounts, Mount{Source: dir, Target: target})
		a.Env[name] = target
		return
	}
	a.Env[name] = dir
}

// gpusFor turns the GPU indexes the scheduler gave the attempt into what the
// workload needs. Real GPUs in a container come through CDI when a CDI spec
// is installed, and the container sees them numbered from 0; otherwise (host
// processes, simulated GPUs, no CDI) only the visibility variables are set,
// with the host's indexes.
func (w *Worker) gpusFor(job *api.Job) (devices []string, env map[string]string, err error) {
	if len(job.GPUs) == 0 {
		if w.cfg.GPUs != nil {
			return nil, gpu.EnvFor(nil), nil // hide every GPU from jobs that asked for none
		}
		return nil, nil, nil
	}
	if w.cfg.GPUs == nil {
		return nil, nil, fmt.Errorf("worker %s has no GPUs, but the job was given %v", w.cfg.ID, job.GPUs)
	}
	all := w.cfg.GPUs.Devices()
	var devs []gpu.Device
	for _, idx := range job.GPUs {
		i := slices.IndexFunc(all, func(d gpu.Device) bool { return d.Index == idx })
		if i < 0 {
			return nil, nil, fmt.Errorf("worker %s has no GPU %d", w.cfg.ID, idx)
		}
		devs = append(devs, all[i])
	}
	if job.Spec.Mode == api.ModeContainer && !devs[0].Simulated && gpu.CDISpecPresent() {
		inside := make([]gpu.Device, len(devs))
		for i, d := range devs {
			inside[i] = d
			inside[i].Index = i
		}
		return gpu.CDIDevices(devs), gpu.EnvFor(inside), nil
	}
	return nil, gpu.EnvFor(devs), nil
}

// openSecrets decrypts the secrets the job names into env var → value. Its
// errors are publicErrors: their detail is for the job's record, the error
// below it (Redis's, the cipher's) for the worker's log.
func (w *Worker) openSecrets(ctx context.Context, job *api.Job) (map[string]string, error) {
	if len(job.Spec.Secrets) == 0 {
		return nil, nil
	}
	if w.secrets == nil {
		return nil, &publicError{detail: fmt.Sprintf("worker %s has no secrets key (start it with --secrets-key-file)", w.cfg.ID)}
	}
	out := make(map[string]string, len(job.Spec.Secrets))
	for env, name := range job.Spec.Secrets {
		sealed, err := w.store.Secret(ctx, job.Workspace, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &publicError{detail: fmt.Sprintf("secret %q was deleted", name)}
		}
		if err != nil {
			return nil, &publicError{detail: fmt.Sprintf("secret %q could not be read", name), err: err}
		}
		v, err := w.secrets.Open(job.Workspace, name, sealed)
		if err != nil {
			return nil, &publicError{detail: fmt.Sprintf("secret %q could not be opened (is this worker's key the gateway's?)", name), err: err}
		}
		out[env] = string(v)
	}
	return out, nil
}

// publicError is an error whose detail the worker wrote for a job's record
// (a reason's detail); err, the error beneath with Redis's, podman's or Go's
// words, is for the worker's log only.
type publicError struct {
	detail string
	err    error
}

func (e *publicError) Error() string {
	if e.err == nil {
		return e.detail
	}
	return e.detail + ": " + e.err.Error()
}

func (e *publicError) Unwrap() error { return e.err }

// publicDetail is the detail of the publicError in err's chain, or a
// generic one: never err's own text.
func publicDetail(err error) string {
	var pe *publicError
	if errors.As(err, &pe) {
		return pe.detail
	}
	return "the worker could not do it (its log says why)"
}

// minMaskedLine is the shortest line of a multi-line secret that is masked
// on its own: shorter ones ("}", "==") would mask that text everywhere in
// the log and tell nothing worth hiding.
const minMaskedLine = 4

// redaction masks secret values in log lines (see redactor); a nil one
// masks nothing.
type redaction struct {
	// vals are the masked values, longest first.
	vals []string
	r    *strings.Replacer
}

// redactor replaces every secret value in a log line with ***, longest
// first so a secret containing another is masked whole. Logs are shipped a
// line at a time, so a multi-line value (a PEM key, JSON credentials) is
// masked line by line: each of its lines, without surrounding blanks, of
// at least minMaskedLine bytes. A one-line value (leading and trailing
// newlines aside) is masked whole, however short. It is nil when there is
// nothing to mask.
func redactor(secretEnv map[string]string) *redaction {
	vals := make([]string, 0, len(secretEnv))
	for _, v := range secretEnv {
		// A value read from a file often ends in a newline; it is still
		// one line, masked whatever its length.
		if one := strings.Trim(v, "\r\n"); !strings.Contains(one, "\n") {
			if one != "" {
				vals = append(vals, one)
			}
			continue
		}
		for _, line := range strings.Split(v, "\n") {
			if line = strings.Trim(line, " \t\r"); len(line) >= minMaskedLine {
				vals = append(vals, line)
			}
		}
	}
	if len(vals) == 0 {
		return nil
	}
	slices.SortFunc(vals, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	vals = slices.Compact(vals)
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, "***")
	}
	return &redaction{vals: vals, r: strings.NewReplacer(pairs...)}
}

// mask returns line with every secret value in it replaced by ***.
func (m *redaction) mask(line []byte) []byte {
	if m == nil {
		return line
	}
	for _, v := range m.vals {
		if bytes.Contains(line, []byte(v)) {
			return []byte(m.r.Replace(string(line)))
		}
	}
	return line
}

// longest is the length of the longest masked value; 0 for a nil m.
func (m *redaction) longest() int {
	if m == nil {
		return 0
	}
	return len(m.vals[0])
}

// cut is where a piece of a long line may end so that masking the pieces one
// by one masks what masking the whole line would: buf is the next piece's
// worth of the line, and what follows it is not known yet. cut follows the
// values in buf as mask does (leftmost first, longest first at one place,
// none overlapping) and stops at the first place where one may begin that
// buf ends too soon to tell (buf's end is the start of a value): the bytes
// from there belong to the next piece. Otherwise, as when buf ends in plain
// text, it is len(buf). A value lying in buf whole stays in this piece, so
// what is carried is shorter than the longest value. A nil m cuts at
// len(buf).
func (m *redaction) cut(buf []byte) int {
	if m == nil {
		return len(buf)
	}
	// next[k] is where vals[k] occurs next at or after i, -1 where it does
	// not; looked for again once i is past it.
	next := make([]int, len(m.vals))
	for k := range next {
		next[k] = -2
	}
	tail := len(buf) - m.longest() + 1 // a value beginning before tail is in buf whole
	for i := 0; ; {
		at, n := -1, 0
		for k, v := range m.vals {
			if next[k] != -1 && next[k] < i {
				if j := bytes.Index(buf[i:], []byte(v)); j >= 0 {
					next[k] = i + j
				} else {
					next[k] = -1
				}
			}
			if next[k] >= 0 && (at < 0 || next[k] < at) {
				at, n = next[k], len(v)
			}
		}
		// Up to the next value (and at it: a longer one may begin there),
		// does one begin that buf cuts short?
		end := len(buf) - 1
		if at >= 0 {
			end = at
		}
		for p := max(i, tail); p <= end; p++ {
			if m.cutShort(buf[p:]) {
				return p
			}
		}
		if at < 0 {
			return len(buf)
		}
		i = at + n
	}
}

// cutShort says whether b, the end of a piece, may be the start of a value
// longer than it.
func (m *redaction) cutShort(b []byte) bool {
	for _, v := range m.vals {
		if len(v) <= len(b) {
			return false // the others are shorter still
		}
		if v[0] == b[0] && bytes.HasPrefix([]byte(v), b) {
			return true
		}
	}
	return false
}

func (w *Worker) cleanupLeftovers(ctx context.Context, job *api.Job) {
	w.removeOutputsDirs(ctx, job.ID)
	w.removeInputsDirs(ctx, job.ID)
	w.removeWorkDirs(ctx, job.ID)
	w.removeBatchScoreDirs(ctx, job.ID)
	if exec := w.executors[job.Spec.Mode]; exec != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := exec.Cleanup(cleanup, job.ID); err != nil {
			w.logger.WarnContext(ctx, "clean up after earlier run", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}
}

// finish records the end of the job, waiting for Redis if it does not
// answer (see record); a conflict means someone else ended it first (a
// cancel of a queued job racing the start), which is fine.
func (w *Worker) finish(ctx context.Context, job *api.Job, o store.Outcome) error {
	return w.recordEnd(ctx, &attemptEnd{Workspace: job.Workspace, JobID: job.ID, Attempt: job.Attempt, Outcome: o, At: w.now()})
}

// requeue records that the attempt ended and the job goes on as a new
// attempt, waiting for Redis as finish does.
func (w *Worker) requeue(ctx context.Context, job *api.Job, o store.Outcome) error {
	return w.recordEnd(ctx, &attemptEnd{Requeue: true, Workspace: job.Workspace, JobID: job.ID, Attempt: job.Attempt, Outcome: o, At: w.now()})
}

// recordEnd records e (see record), then does what follows an end.
func (w *Worker) recordEnd(ctx context.Context, e *attemptEnd) error {
	err := w.record(ctx, e)
	if err != nil && !endGone(err) {
		return err
	}
	if err == nil { // an end gone was counted by whoever recorded it
		w.cfg.Metrics.AttemptEnded(e.Workspace, e.Requeue, e.Outcome.Status, e.Outcome.ReasonCode, e.Outcome.StartedAt, e.At)
	}
	w.ended(ctx, e)
	return nil
}

// ended logs e, ends the tracked runs the job left open, and wakes the
// scheduler.
func (w *Worker) ended(ctx context.Context, e *attemptEnd) {
	traceEnded(ctx, e)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	o := e.Outcome
	if e.Requeue {
		w.logger.InfoContext(ctx, "attempt requeued", slog.String("job_id", e.JobID), slog.Int("attempt", e.Attempt), slog.String("reason", o.Reason), slog.String("reason_code", o.ReasonCode))
		_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)
		return
	}
	w.logger.InfoContext(ctx, "job ended", slog.String("job_id", e.JobID), slog.String("status", string(o.Status)), slog.String("reason", o.Reason), slog.String("reason_code", o.ReasonCode))
	// MLflow runs the job started and left open (it died before end_run)
	// would otherwise run forever: nobody else would end them.
	if n, err := w.store.EndTrackedRuns(ctx, e.Workspace, e.JobID, api.StatusFailed,
		fmt.Sprintf("job %s ended (%s) without ending this run", e.JobID, o.Status), w.now()); err != nil {
		w.logger.WarnContext(ctx, "end the job's open tracked runs", slog.String("job_id", e.JobID), slog.Any("error", err))
	} else if n > 0 {
		w.logger.InfoContext(ctx, "ended the job's open tracked runs", slog.String("job_id", e.JobID), slog.Int("runs", n))
	}
	_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)
}
