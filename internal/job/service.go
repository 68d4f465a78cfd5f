// Package job is the job service: the one way a job is made or canceled.
// Submit checks a spec (the fields, that some worker could run it, the
// workspace's rules, what a job token's child may ask for), honours an
// Idempotency-Key, stores the job and wakes the scheduler; Cancel cancels a
// job and its descendants; Validate checks a spec that is kept to submit
// later (a schedule's, a trigger's). The REST API, webhook triggers and
// schedules all submit through it, and so will deployments, batch scoring
// and sweeps. A refusal is an *Error with a code of api's closed set.
package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
	"github.com/jobgate/jobgate/queue"
)

// Config configures a Service. Zero values get the defaults on each field.
type Config struct {
	// Metrics counts submitted jobs and those canceled while queued; nil:
	// off.
	Metrics *metrics.Control
	// Limits bound what a spec may ask for.
	Limits Limits
	// CallbackPolicy says where a job's completion callback may go; the
	// zero value refuses loopback, link-local and private addresses.
	CallbackPolicy webhook.AddressPolicy
	// Secrets says that the gateway holds the secrets key, so jobs may name
	// workspace secrets; without it a job that names one is refused.
	Secrets bool
	// Now is the clock jobs are stamped with; default time.Now.
	Now func() time.Time
	// TracerProvider, when set, gives every submit a job.submit span; nil
	// makes none (the job still keeps the trace context its caller's
	// context carries).
	TracerProvider trace.TracerProvider
}

// Service submits and cancels jobs. It holds no state of its own: any number
// of them, in any number of gateways, may run against one Redis.
type Service struct {
	cfg    Config
	rdb    redis.UniversalClient
	store  *store.Store
	logger *slog.Logger
}

// New returns a Service over st; rdb carries the wake-ups (the scheduler's
// on a submit, a worker's on a cancel).
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, logger *slog.Logger) *Service {
	cfg.Limits.DefaultTimeoutSeconds = cmp.Or(cfg.Limits.DefaultTimeoutSeconds, 3600)
	cfg.Limits.MaxTimeoutSeconds = cmp.Or(cfg.Limits.MaxTimeoutSeconds, 7*24*3600)
	cfg.Limits.MaxRetries = cmp.Or(cfg.Limits.MaxRetries, 10)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, rdb: rdb, store: st, logger: logger}
}

// SaveFunc stores a new job. It may store more in the same Redis step (a
// delivery's claims, a schedule run's history entry) or, when a job was
// already made under those, store nothing and say so (made false): then
// Submit returns no job, and no error.
type SaveFunc func(ctx context.Context, j *api.Job) (made bool, err error)

// Request is one submission.
type Request struct {
	// Workspace the job belongs to.
	Workspace string
	// Actor submits it, as the audit log names it: a token's name,
	// "trigger:NAME", "schedule:NAME".
	Actor string
	// ByJob is the job whose own token (JOBGATE_JOB_TOKEN) submits; "" for
	// any other submitter. The new job is then a child in that job's tree
	// (its child if the spec names no parent) and may ask for nothing that
	// job lacks (see checkChild).
	ByJob string
	// Spec is the job as decoded; Submit fills its defaults.
	Spec api.JobSpec
	// IdempotencyKey, when set, makes the job once per key and workspace
	// (ByJob's key space is its own): the same key and spec return the
	// first job again (Result.Replayed).
	IdempotencyKey string
	// Save stores the job; nil is store.CreateJob. Not with an
	// IdempotencyKey, whose own step stores the job.
	Save SaveFunc
}

// Result is what Submit made.
type Result struct {
	// Job is the job made, or the first job of an Idempotency-Key replayed;
	// nil when Save made none.
	Job *api.Job
	// Replayed says that Job was made by an earlier request with the same
	// Idempotency-Key.
	Replayed bool
	// Fresh says that Job is the record as this request stored it, with
	// nothing added since (no attempt, parameter or notification), and
	// Position its place among the pending jobs then (0 is next; -1 when
	// it is not pending): the caller can show it without reading it back.
	Fresh    bool
	Position int64
}

// Submit checks req and queues its job, on behalf of req.Actor. A refusal is
// an *Error; any other error is a fault (Redis) and nothing was queued.
func (s *Service) Submit(ctx context.Context, req Request) (Result, error) {
	if err := refuseService(req.Spec); err != nil {
		return Result{}, err
	}
	return s.submit(ctx, req, trustClient)
}

// SubmitBatch queues the job of a batch (Spec.Batch set), on behalf of the
// batch API: the one path that takes a spec with Batch set. It is
// otherwise Submit: the same checks, Idempotency-Keys and placement.
func (s *Service) SubmitBatch(ctx context.Context, req Request) (Result, error) {
	if req.Spec.Batch == nil || req.Spec.Service != nil {
		return Result{}, errors.New("job: SubmitBatch needs a spec with Batch set (and no Service)")
	}
	return s.submit(ctx, req, trustBatch)
}

// trust says which submitter a spec comes from: a client's may set neither
// Service nor Batch.
type trust int

const (
	trustClient trust = iota
	trustService
	trustBatch
	// trustBatchScore: a batch-score spec whose model the gateway resolved
	// (resolveBatchScore), and its partitions.
	trustBatchScore
)

func (s *Service) submit(ctx context.Context, req Request, tr trust) (Result, error) {
	if tr == trustClient && req.Spec.Kind == api.KindBatchScore {
		if err := s.resolveBatchScore(ctx, req.Workspace, &req.Spec); err != nil {
			return Result{}, err
		}
		tr = trustBatchScore
	}
	if req.IdempotencyKey != "" && req.Save != nil {
		return Result{}, errors.New("job: a request with an Idempotency-Key stores its job itself; it takes no Save")
	}
	if req.ByJob != "" {
		if req.Spec.CheckpointFrom != "" {
			// The code inside a job must not reach another job's files.
			return Result{}, Errorf(api.CodeForbidden, "checkpoint_from", "checkpoint_from: a job's own token may not start a job from another job's checkpoint")
		}
		if req.Spec.ParentID == "" {
			req.Spec.ParentID = req.ByJob
		} else if err := s.checkJobTree(ctx, req.ByJob, req.Spec.ParentID); err != nil {
			return Result{}, err
		}
		if err := s.checkChild(ctx, req.Workspace, req.ByJob, &req.Spec); err != nil {
			return Result{}, err
		}
	}
	if req.IdempotencyKey != "" {
		j, replayed, err := s.createIdempotent(ctx, req, tr)
		return Result{Job: j, Replayed: replayed}, err
	}
	j, pos, err := s.create(ctx, req.Workspace, req.Actor, req.Spec, req.Save, tr)
	return Result{Job: j, Fresh: j != nil && req.Save == nil, Position: pos}, err
}

// refuseService refuses a client's spec that sets service: only the
// deployment controller makes a replica's job (SubmitService).
func refuseService(spec api.JobSpec) error {
	if spec.Service != nil {
		return specErr("service", "service: a job of kind service is a deployment's replica, made by the deployment controller; create a deployment instead (POST /v1/deployments)")
	}
	if spec.Batch != nil {
		return specErr("batch", "batch: a batch job is made by the batch API; post the rows instead (POST /v1/deployments/{name}/batch)")
	}
	return nil
}

// SubmitService queues the job of one replica of a deployment, on behalf of
// the deployment controller (actor "deployment:NAME"): the one path that
// takes a spec with Service set. Such a job has no timeout
// (TimeoutSeconds 0) and no retries (the controller restarts a replica
// itself); otherwise it is checked and placed as any other job.
func (s *Service) SubmitService(ctx context.Context, ws, actor string, spec api.JobSpec) (*api.Job, error) {
	if spec.Service == nil {
		return nil, errors.New("job: SubmitService needs a spec with Service set")
	}
	j, _, err := s.create(ctx, ws, actor, spec, nil, trustService)
	return j, err
}

// ValidateService is Validate for a replica's spec (Service set), as
// SubmitService checks it: the deployments API checks a deployment's
// image, command, env and resources with it before it keeps the spec.
func (s *Service) ValidateService(ctx context.Context, ws string, spec *api.JobSpec) error {
	if spec.Service == nil {
		return errors.New("job: ValidateService needs a spec with Service set")
	}
	return s.validate(ctx, ws, spec, trustService)
}

// checkJobTree refuses parent unless it is job byJob or one of its
// descendants: a job's token reaches only its own tree.
func (s *Service) checkJobTree(ctx context.Context, byJob, parent string) error {
	ok, err := s.store.IsInJobTree(ctx, byJob, parent)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(api.CodeForbidden, "parent_id", "job %s is not this job token's job (%s) or one of its descendants", parent, byJob)
	}
	return nil
}

// create validates spec for workspace ws, stores the job with save and wakes
// the scheduler. A nil save stores the job, its audit entry and the wake-up
// in one round trip (store.SubmitJob), and create returns the job's place
// in the pending set then; -1 otherwise.
func (s *Service) create(ctx context.Context, ws, actor string, spec api.JobSpec, save SaveFunc, tr trust) (*api.Job, int64, error) {
	if err := s.validate(ctx, ws, &spec, tr); err != nil {
		return nil, -1, err
	}
	job := &api.Job{
		ID:         strings.ToLower(ulid.Make().String()),
		Workspace:  ws,
		Name:       spec.Name,
		Experiment: spec.Experiment,
		Status:     api.StatusQueued,
		Reason:     "waiting for the scheduler",
		ReasonCode: api.ReasonWaitingForScheduler,
		Attempt:    1,
		CreatedAt:  s.cfg.Now().UTC(),
		Spec:       spec,
	}
	ctx, span := s.traceSubmit(ctx, job)
	defer span.End()
	pos := int64(-1)
	if save == nil {
		e := s.auditEntry(ws, actor, "job.submit", job.ID)
		var err error
		if pos, err = s.store.SubmitJob(ctx, job, store.Submission{Audit: &e, Wake: queue.ChannelScheduler}); err != nil {
			return nil, -1, err
		}
	} else if made, err := save(ctx, job); err != nil || !made {
		return nil, -1, err
	}
	s.cfg.Metrics.JobSubmitted(ws)
	if b := job.Spec.BatchScore; b != nil && b.Partition == 0 && b.InstanceCount > 1 {
		s.submitPartitions(ctx, job, actor)
	}
	if save != nil {
		_ = queue.Notify(ctx, s.rdb, queue.ChannelScheduler)
		s.audit(ctx, ws, actor, "job.submit", job.ID)
	}
	return job, pos, nil
}

// Validate fills spec's defaults and checks everything a job must pass in
// workspace ws: the fields, that some worker could run it, the workspace's
// rules, and where its callback may go. Jobs, schedules and triggers all
// check their specs here. A refusal is an *Error.
func (s *Service) Validate(ctx context.Context, ws string, spec *api.JobSpec) error {
	return s.validate(ctx, ws, spec, trustClient)
}

// validate is Validate; tr says where the spec comes from: only the
// deployment controller may set Service, only the batch API Batch.
func (s *Service) validate(ctx context.Context, ws string, spec *api.JobSpec, tr trust) error {
	switch {
	case tr != trustService && spec.Service != nil, tr != trustBatch && spec.Batch != nil:
		return refuseService(*spec)
	}
	if tr != trustBatchScore {
		if err := refuseResolved(spec.BatchScore); err != nil {
			return err
		}
	}
	if err := normalize(spec, s.cfg.Limits, tr == trustService); err != nil {
		return err
	}
	if spec.Mode == api.ModeProcess {
		if err := s.CheckHostProcess(ctx, ws); err != nil {
			return err
		}
	}
	if err := s.admissible(ctx, *spec); err != nil {
		return err
	}
	if err := s.checkWorkspaceRules(ctx, ws, *spec); err != nil {
		return err
	}
	if err := s.checkInputs(ctx, ws, *spec); err != nil {
		return err
	}
	if spec.Notify != nil {
		if err := webhook.ValidateURL(spec.Notify.URL, s.cfg.CallbackPolicy); err != nil {
			return specErr("notify.url", "notify.url: %v", err)
		}
	}
	if spec.CheckpointFrom != "" {
		from, err := s.store.GetJob(ctx, ws, spec.CheckpointFrom)
		if errors.Is(err, store.ErrNotFound) {
			return specErr("checkpoint_from", "checkpoint_from: no job %q in this workspace", spec.CheckpointFrom)
		}
		if err != nil {
			return err
		}
		if !from.Status.Terminal() {
			return specErr("checkpoint_from", "checkpoint_from: job %s is %s; a checkpoint folder is taken over once its job has ended", from.ID, from.Status)
		}
		// A chain shares its first job's folder.
		spec.CheckpointFrom = cmp.Or(from.Spec.CheckpointFrom, from.ID)
	}
	if spec.ParentID != "" {
		parent, err := s.store.GetJob(ctx, ws, spec.ParentID)
		if errors.Is(err, store.ErrNotFound) {
			return specErr("parent_id", "parent_id: no job %q in this workspace", spec.ParentID)
		}
		if err != nil {
			return err
		}
		if parent.Status == api.StatusCanceled {
			return specErr("parent_id", "parent_id: job %s was canceled; it takes no new children", parent.ID)
		}
	}
	return nil
}

// CheckHostProcess refuses mode process (forbidden) unless the system admin
// granted workspace ws allow_host_process: a host process runs as the
// worker's own user, outside any container and past the image allow-list.
// An exec beside a running host process asks it again.
func (s *Service) CheckHostProcess(ctx context.Context, ws string) error {
	w, err := s.store.Workspace(ctx, ws)
	if err != nil {
		return err
	}
	if !w.AllowHostProcess {
		return Errorf(api.CodeForbidden, "mode",
			"mode: workspace %s may not run host-process jobs (mode process); the system admin grants it with PATCH /v1/workspaces/%s {\"allow_host_process\": true}", ws, ws)
	}
	return nil
}

// checkWorkspaceRules applies what the workspace decides about a spec: the
// image allow-list, and that every secret it names exists.
func (s *Service) checkWorkspaceRules(ctx context.Context, ws string, spec api.JobSpec) error {
	w, err := s.store.Workspace(ctx, ws)
	if err != nil {
		return err
	}
	if spec.Mode == api.ModeContainer && len(w.ImageAllowlist) > 0 {
		ok := false
		for _, prefix := range w.ImageAllowlist {
			ok = ok || strings.HasPrefix(spec.Image, prefix)
		}
		if !ok {
			return specErr("image", "image %q is not allowed in workspace %s (allowed prefixes: %s)", spec.Image, ws, strings.Join(w.ImageAllowlist, ", "))
		}
	}
	if len(spec.Secrets) > 0 && !s.cfg.Secrets {
		return specErr("secrets", "secrets: this gateway has no secrets key (start it with --secrets-key-file)")
	}
	for env, name := range spec.Secrets {
		if _, err := s.store.Secret(ctx, ws, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return specErr("secrets."+env, "secrets.%s: no secret named %q in workspace %s", env, name, ws)
			}
			return err
		}
	}
	return nil
}

// checkInputs checks that every datastore the spec's inputs name exists in
// workspace ws.
func (s *Service) checkInputs(ctx context.Context, ws string, spec api.JobSpec) error {
	for _, name := range slices.Sorted(maps.Keys(spec.Inputs)) {
		in := spec.Inputs[name]
		if _, err := s.store.Datastore(ctx, ws, in.Datastore); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return specErr("inputs."+name+".datastore", "inputs.%s.datastore: no datastore %q in workspace %s", name, in.Datastore, ws)
			}
			return err
		}
	}
	return nil
}

// admissible refuses at submit what no registered worker could ever run,
// with what exists. A job for capacity that is only busy or down is accepted
// and waits.
func (s *Service) admissible(ctx context.Context, spec api.JobSpec) error {
	if spec.Resources.GPUs == 0 && spec.Mode != api.ModeProcess {
		return nil
	}
	workers, err := s.store.Workers(ctx)
	if err != nil {
		return err
	}
	if spec.Resources.GPUs > 0 {
		var have []string
		for _, w := range workers {
			if placement.CanRun(w, spec) {
				return nil
			}
			if len(w.GPUs) > 0 {
				have = append(have, fmt.Sprintf("%s: %d× %s (%d MB)", w.ID, len(w.GPUs), w.GPUs[0].Model, w.GPUs[0].MemoryMB))
			}
		}
		if len(have) == 0 {
			return specErr("resources.gpus", "resources.gpus: needs %s, but no registered worker has GPUs", placement.DescribeGPUs(spec.Resources))
		}
		return specErr("resources.gpus", "resources.gpus: needs %s on one worker; workers have %s", placement.DescribeGPUs(spec.Resources), strings.Join(have, "; "))
	}
	for _, w := range workers {
		if w.AllowHostProcess {
			return nil
		}
	}
	return specErr("mode", "mode: no registered worker runs host-process jobs (of %d workers; start one with `jobgate worker --allow-host-process`)", len(workers))
}

// maxCancelTree bounds how many descendants one cancel reaches.
const maxCancelTree = 10_000

// Cancel cancels job id of ws on behalf of actor, and its children, theirs,
// and so on: a queued job at once, a running one by asking its worker to stop
// it. Canceling an ended job does nothing (its children are still canceled).
// The API and schedules (Replace) cancel through here. A job that does not
// exist is store.ErrNotFound.
func (s *Service) Cancel(ctx context.Context, ws, actor, id string) error {
	return s.CancelFor(ctx, ws, actor, id, api.Reason{})
}

// CancelFor is Cancel with the reason the job's end carries, instead of
// canceled (a sweep's early termination or timeout); its children, if any,
// end with a plain cancel.
func (s *Service) CancelFor(ctx context.Context, ws, actor, id string, why api.Reason) error {
	if err := s.cancelOne(ctx, ws, actor, id, why); err != nil {
		return err
	}
	todo := []string{id}
	for seen := 0; len(todo) > 0 && seen < maxCancelTree; {
		kids, err := s.store.Children(ctx, todo[0], maxCancelTree)
		if err != nil {
			return err
		}
		todo = todo[1:]
		for _, k := range kids {
			seen++
			if !k.Status.Terminal() {
				if err := s.cancelOne(ctx, ws, actor, k.ID, api.Reason{}); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			todo = append(todo, k.ID)
		}
	}
	return nil
}

func (s *Service) cancelOne(ctx context.Context, ws, actor, id string, why api.Reason) error {
	res, err := s.store.CancelFor(ctx, ws, id, why, s.cfg.Now())
	if err != nil {
		return err
	}
	if res != store.CancelAlreadyEnded {
		s.audit(ctx, ws, actor, "job.cancel", id)
	}
	switch res {
	case store.CancelRequested:
		return s.rdb.Publish(ctx, queue.ChannelCancel, id).Err()
	case store.CancelDone:
		s.cfg.Metrics.JobFinished(ws, api.StatusCanceled)
		_ = queue.Notify(ctx, s.rdb, queue.ChannelScheduler)
	}
	return nil
}

// auditEntry is the audit log's entry of an action of actor in ws, now.
func (s *Service) auditEntry(ws, actor, action, target string) api.AuditEntry {
	return api.AuditEntry{Time: s.cfg.Now().UTC(), Workspace: ws, Actor: actor, Action: action, Target: target}
}

// audit records an action of actor in ws. A failure to record is logged,
// not returned: the action already happened.
func (s *Service) audit(ctx context.Context, ws, actor, action, target string) {
	e := s.auditEntry(ws, actor, action, target)
	if err := s.store.Audit(ctx, e); err != nil {
		s.logger.ErrorContext(ctx, "audit", "action", action, "error", err)
	}
}
