// Package deploy is the deployment controller: it keeps each deployment's
// replicas running. A replica is a slot (store.ReplicaSlot) whose current
// job, of kind service, runs the deployment's model server over one model
// version; the job is submitted through the job service (SubmitService) and
// placed by the normal scheduler, and a worker runs it and reports where it
// serves (store.Endpoint).
//
// Only the leader reconciles (internal/leader, as placement and the cron
// loop), on a wake-up (queue.ChannelDeploy: a deployment was made, changed
// or deleted, a replica's attempt ended, a router holds a request for lack
// of a replica) and on a timer. One pass, per deployment:
//
//   - a slot whose job ended is restarted (same slot, Restarts+1, after a
//     back-off of 1s, 2s, 4s, ... at most 60s), unless the controller wanted
//     it gone (Draining, an older revision): then it is forgotten;
//   - the desired count per target is the spec's replicas or the
//     autoscaler's (ceil(in-flight / target_concurrency) within min and max,
//     at least 1 while a router holds a request; down only after
//     scale_down_delay_seconds of low load);
//   - without a rolling update, missing slots are made and surplus ones
//     drained; during one (slots of an older revision are alive) it surges
//     one: one new-revision replica at a time is started, and an old one is
//     drained only once a new one is ready, so the ready replicas never fall
//     below the desired count;
//   - draining is a cancel of the slot's job: the worker takes the endpoint
//     out of the routers' tables, waits its drain delay and stops the
//     server, which finishes its in-flight requests;
//   - a deleting deployment drains every replica and is removed once all
//     their jobs ended;
//   - the deployment's state (status, reason, desired) is written for the
//     API to show.
//
// After the deployments, at most every SweepInterval, a pass sweeps the
// orphans (sweep): live service jobs that no slot names, left by a
// controller that died (or lost Redis, or a cancel) between SubmitService
// and writing the slot, by a DELETE that removed the deployment meanwhile,
// or by two leaders briefly overlapping. Each is canceled once it was seen
// unowned for OrphanGrace.
package deploy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// Defaults of a deployment spec, applied where the spec leaves them out.
const (
	DefaultReplicas              = 1
	DefaultTargetConcurrency     = 8
	DefaultScaleDownDelaySeconds = 120
	DefaultReadinessPath         = "/v2/health/ready"
	// MaxRestartBackoff bounds the wait before a crashed replica restarts.
	MaxRestartBackoff = 60 * time.Second
	// failedAfterRestarts is how many restarts in a row, with no replica
	// ready, make a deployment failed rather than deploying.
	failedAfterRestarts = 3
)

// Config configures a Controller. Zero values get the defaults on each
// field.
type Config struct {
	// Tick is the longest wait between passes; default 1s.
	Tick time.Duration
	// BusyTick is the wait between passes while a deployment is changing
	// (a rolling update, replicas starting, a delete); default 100ms.
	BusyTick time.Duration
	// LoadMaxAge is how old a router's load report may be and still count;
	// default 10s.
	LoadMaxAge time.Duration
	// SweepInterval is the least time between two orphan sweeps; default
	// 5s.
	SweepInterval time.Duration
	// OrphanGrace is how long a live service job must be seen with no slot
	// naming it, over consecutive sweeps of this controller, before it is
	// canceled: longer than a submit takes to reach its slot, so that the
	// job another (overlapping) leader just submitted is not taken for an
	// orphan; default 30s.
	OrphanGrace time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// leadership tells a loop that only the leader runs whether this process
// leads (internal/leader.Elector).
type leadership interface {
	Listen() *leader.Subscription
}

var _ leadership = (*leader.Elector)(nil)

// jobService makes and cancels the replicas' jobs (internal/job.Service).
type jobService interface {
	SubmitService(ctx context.Context, ws, actor string, spec api.JobSpec) (*api.Job, error)
	Cancel(ctx context.Context, ws, actor, id string) error
}

var _ jobService = (*job.Service)(nil)

// Controller reconciles deployments while this process leads.
type Controller struct {
	cfg    Config
	leader leadership
	rdb    redis.UniversalClient
	store  *store.Store
	jobs   jobService
	logger *slog.Logger

	mu sync.Mutex // over the sweep's state
	// lastSweep is when the last orphan sweep ran; unowned, since when each
	// live service job without a slot has been seen so, over consecutive
	// sweeps (reset when this process starts leading).
	lastSweep time.Time
	unowned   map[string]time.Time
}

// New returns a Controller that reconciles while lead says this process
// leads (nil: always, for tests), submitting through jobs; Run runs it.
func New(cfg Config, lead leadership, rdb redis.UniversalClient, st *store.Store, jobs jobService, logger *slog.Logger) *Controller {
	cfg.Tick = cmp.Or(cfg.Tick, time.Second)
	cfg.BusyTick = cmp.Or(cfg.BusyTick, 100*time.Millisecond)
	cfg.LoadMaxAge = cmp.Or(cfg.LoadMaxAge, 10*time.Second)
	cfg.SweepInterval = cmp.Or(cfg.SweepInterval, 5*time.Second)
	cfg.OrphanGrace = cmp.Or(cfg.OrphanGrace, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Controller{cfg: cfg, leader: lead, rdb: rdb, store: st, jobs: jobs, logger: logger.With(slog.String("component", "deploy")),
		unowned: map[string]time.Time{}}
}

// Run reconciles on every wake-up (queue.ChannelDeploy) and timer while
// this process leads, until ctx is done. It returns nil then.
func (c *Controller) Run(ctx context.Context) error {
	waker, err := queue.NewWaker(ctx, c.rdb, queue.ChannelDeploy)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("deploy: subscribe: %w", err)
	}
	defer waker.Close()
	leading := c.leader == nil
	var sub *leader.Subscription
	if c.leader != nil {
		sub = c.leader.Listen()
		defer sub.Unlisten()
	}
	for ctx.Err() == nil {
		gen := waker.Gen()
		if sub != nil {
			select {
			case l := <-sub.C():
				if l && !leading {
					c.resetSweep() // what it saw before it last led is stale
				}
				leading = l
			default:
			}
		}
		wait := c.cfg.Tick
		if leading {
			busy, err := c.Pass(ctx)
			if err != nil && ctx.Err() == nil {
				c.logger.WarnContext(ctx, "deployments pass", slog.Any("error", err))
			}
			if busy {
				wait = c.cfg.BusyTick
			}
		}
		waker.Wait(ctx, gen, wait)
	}
	return nil
}

// Pass reconciles every deployment once, leader or not, then sweeps the
// orphans if SweepInterval passed since the last sweep, and says whether a
// deployment is changing (so the next pass should come soon).
func (c *Controller) Pass(ctx context.Context) (busy bool, err error) {
	names, err := c.store.DeploymentNames(ctx, "")
	if err != nil {
		return false, err
	}
	var errs []error
	for _, n := range names {
		b, err := c.reconcile(ctx, n[0], n[1])
		busy = busy || b
		if err != nil {
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", n[0], n[1], err))
		}
	}
	c.mu.Lock()
	due := c.lastSweep.IsZero() || c.cfg.Now().Sub(c.lastSweep) >= c.cfg.SweepInterval
	c.mu.Unlock()
	if due {
		if err := c.SweepOrphans(ctx); err != nil {
			errs = append(errs, fmt.Errorf("orphan sweep: %w", err))
		}
	}
	return busy, errors.Join(errs...)
}

// resetSweep forgets what the sweeps saw.
func (c *Controller) resetSweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastSweep, c.unowned = time.Time{}, map[string]time.Time{}
}

// SweepOrphans cancels the live service jobs that no replica slot wants:
//
//   - a job that no slot names (its deployment is gone, or the replica it
//     was made for has none or names another job) once this controller has
//     seen it so for OrphanGrace, over consecutive sweeps. A job is indexed
//     from the MULTI that makes it (store.ServiceJobs), so none escapes;
//     the grace, measured on this controller's own clock from when it
//     first saw the job (not from the job's creation, so no clock skew
//     between gateways counts), covers the moment between a submit and its
//     slot's write, by this controller (whose own sweep runs after the
//     slots are written) or by another leader overlapping it;
//   - a job whose slot is draining and whose cancel was never asked (a
//     drain whose cancel failed): asked again at once.
//
// Each cancel is in the audit log as job.cancel by deployment:NAME,
// preceded by a deployment.orphan entry whose target is the job and why.
func (c *Controller) SweepOrphans(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	c.lastSweep = now
	jobs, err := c.store.ServiceJobs(ctx)
	if err != nil {
		return err
	}
	type depKey struct{ ws, name string }
	slots := map[depKey]map[string]store.ReplicaSlot{}
	seen := map[string]bool{}
	var errs []error
	for _, j := range jobs {
		svc := j.Spec.Service
		if svc == nil {
			continue
		}
		k := depKey{j.Workspace, svc.Deployment}
		byID, ok := slots[k]
		if !ok {
			ss, err := c.store.ReplicaSlots(ctx, k.ws, k.name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			byID = map[string]store.ReplicaSlot{}
			for _, s := range ss {
				byID[s.ID] = s
			}
			slots[k] = byID
		}
		sl, ok := byID[svc.Replica]
		var why string
		switch {
		case ok && sl.JobID == j.ID:
			if !sl.Draining || j.CancelRequested {
				continue
			}
			why = fmt.Sprintf("replica %s is draining and its job was not canceled", svc.Replica)
		default:
			seen[j.ID] = true
			first, known := c.unowned[j.ID]
			if !known {
				c.unowned[j.ID] = now
				continue
			}
			if now.Sub(first) < c.cfg.OrphanGrace || j.CancelRequested {
				continue
			}
			_, _, err := c.store.Deployment(ctx, k.ws, k.name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				why = fmt.Sprintf("deployment %s does not exist", k.name)
			case err != nil:
				errs = append(errs, err)
				continue
			case !ok:
				why = fmt.Sprintf("deployment %s has no replica %s", k.name, svc.Replica)
			case sl.JobID == "":
				why = fmt.Sprintf("replica %s of deployment %s runs no job", svc.Replica, k.name)
			default:
				why = fmt.Sprintf("replica %s of deployment %s runs job %s", svc.Replica, k.name, sl.JobID)
			}
			why = "orphan: " + why
		}
		if err := c.reap(ctx, j, why); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(c.unowned, j.ID)
	}
	for id := range c.unowned {
		if !seen[id] {
			delete(c.unowned, id) // ended, or a slot names it now
		}
	}
	return errors.Join(errs...)
}

// reap cancels service job j for why, and says so in the audit log.
func (c *Controller) reap(ctx context.Context, j *api.Job, why string) error {
	actor := "deployment:" + j.Spec.Service.Deployment
	c.logger.WarnContext(ctx, "replica job canceled", slog.String("workspace", j.Workspace), slog.String("job", j.ID), slog.String("reason", why))
	e := api.AuditEntry{Time: c.cfg.Now().UTC(), Workspace: j.Workspace, Actor: actor, Action: "deployment.orphan", Target: j.ID + " (" + why + ")"}
	if err := c.store.Audit(ctx, e); err != nil {
		c.logger.ErrorContext(ctx, "audit", slog.String("action", e.Action), slog.Any("error", err))
	}
	if err := c.jobs.Cancel(ctx, j.Workspace, actor, j.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("cancel job %s (%s): %w", j.ID, why, err)
	}
	return nil
}

// replica is a slot with what the controller sees of its job.
type replica struct {
	slot store.ReplicaSlot
	job  *api.Job
	ep   *store.Endpoint
}

// ended: the slot's job ended (or is gone).
func (r *replica) ended() bool {
	return r.slot.JobID != "" && (r.job == nil || r.job.Status.Terminal())
}

// ready: the slot's job runs and its endpoint answers its readiness probe.
func (r *replica) ready() bool {
	return !r.slot.Draining && r.job != nil && r.job.Status == api.StatusRunning &&
		r.ep != nil && r.ep.State == store.EndpointReady
}

// current: the slot runs the deployment's revision and one of its targets.
func current(s store.ReplicaSlot, d *store.DeploymentRecord) bool {
	return s.Revision == d.Revision && targetOf(s, d) >= 0
}

func targetOf(s store.ReplicaSlot, d *store.DeploymentRecord) int {
	return slices.IndexFunc(d.Targets, func(t api.DeploymentTarget) bool { return t.Model == s.Model && t.Version == s.Version })
}

// Backoff is how long a replica restarted for the n-th time (from 1)
// waits: 1s, 2s, 4s, ... at most MaxRestartBackoff.
func Backoff(n int) time.Duration {
	if n < 1 {
		return 0
	}
	if n > 7 {
		return MaxRestartBackoff
	}
	return min(time.Second<<(n-1), MaxRestartBackoff)
}

func (c *Controller) reconcile(ctx context.Context, ws, name string) (busy bool, err error) {
	d, st, err := c.store.Deployment(ctx, ws, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	prev := st
	now := c.cfg.Now()
	reps, err := c.replicas(ctx, ws, name)
	if err != nil {
		return false, err
	}
	log := c.logger.With(slog.String("workspace", ws), slog.String("deployment", name))
	actor := "deployment:" + name
	routing := false

	// Ended jobs: forget what was meant to go, restart the rest.
	live := reps[:0]
	for _, r := range reps {
		gone := r.slot.Draining && r.slot.JobID == ""
		if r.ended() {
			gone = r.slot.Draining || d.Deleting || !current(r.slot, d)
		}
		if gone {
			if err := c.store.RemoveReplicaSlot(ctx, ws, name, r.slot.ID); err != nil {
				return false, err
			}
			routing = true
			continue
		}
		if r.ended() {
			r.slot.Restarts++
			wait := Backoff(r.slot.Restarts)
			if r.job != nil && r.job.StartedAt != nil && r.job.FinishedAt != nil && r.job.FinishedAt.Sub(*r.job.StartedAt) > 10*time.Minute {
				wait = Backoff(1) // it served a while: a fresh crash, not a loop
			}
			nb := now.Add(wait)
			r.slot.NotBefore = &nb
			why := "its job is gone"
			if r.job != nil {
				why = fmt.Sprintf("job %s ended %s", r.job.ID, r.job.Status)
				if r.job.Reason != "" {
					why += ": " + r.job.Reason
				}
			}
			r.slot.Reason = fmt.Sprintf("restart %d in %s (%s)", r.slot.Restarts, wait, why)
			log.InfoContext(ctx, "replica restarts", slog.String("replica", r.slot.ID), slog.Int("restarts", r.slot.Restarts), slog.String("reason", why))
			r.slot.JobID = ""
			r.job, r.ep = nil, nil
			if err := c.store.PutReplicaSlot(ctx, ws, name, r.slot); err != nil {
				return false, err
			}
		}
		live = append(live, r)
	}
	reps = live

	if d.Deleting {
		for _, r := range reps {
			if err := c.drain(ctx, ws, name, actor, r); err != nil {
				return true, err
			}
		}
		if len(reps) == 0 {
			if err := c.store.RemoveDeployment(ctx, ws, name); err != nil {
				return false, err
			}
			_ = queue.Notify(ctx, c.rdb, queue.ChannelRouting)
			log.InfoContext(ctx, "deployment removed")
			return false, nil
		}
		st.Status, st.Reason = api.DeploymentDeleting, fmt.Sprintf("%d replicas draining", len(reps))
		_ = queue.Notify(ctx, c.rdb, queue.ChannelRouting)
		return true, c.writeState(ctx, ws, name, prev, st)
	}

	desired, err := c.desired(ctx, d, &st, now)
	if err != nil {
		return false, err
	}
	st.Desired = desired

	var old []*replica
	for _, r := range reps {
		if !r.slot.Draining && !current(r.slot, d) {
			old = append(old, r)
		}
	}
	rolling := len(old) > 0
	readyNew := 0
	for ti, t := range d.Targets {
		var cur []*replica
		for _, r := range reps {
			if !r.slot.Draining && current(r.slot, d) && targetOf(r.slot, d) == ti {
				cur = append(cur, r)
			}
		}
		notReady := 0
		for _, r := range cur {
			if r.ready() {
				readyNew++
			} else {
				notReady++
			}
		}
		switch {
		case len(cur) < desired:
			n := desired - len(cur)
			if rolling {
				// Surge one: the next new replica once this one is ready.
				n = 0
				if notReady == 0 {
					n = 1
				}
			}
			for range n {
				s := store.ReplicaSlot{ID: newReplicaID(), Revision: d.Revision, Model: t.Model, Version: t.Version, CreatedAt: now}
				if err := c.store.PutReplicaSlot(ctx, ws, name, s); err != nil {
					return false, err
				}
				reps = append(reps, &replica{slot: s})
			}
		case len(cur) > desired:
			for _, r := range pickToDrain(cur, len(cur)-desired) {
				if err := c.drain(ctx, ws, name, actor, r); err != nil {
					return false, err
				}
			}
		}
	}
	if rolling {
		// An old replica goes only when a new one is ready to take its
		// place: the ready ones never fall below the desired count.
		surplus := readyNew + len(old) - desired*len(d.Targets)
		for _, r := range pickToDrain(old, min(max(surplus, 0), len(old))) {
			if err := c.drain(ctx, ws, name, actor, r); err != nil {
				return false, err
			}
		}
	}

	// Start the slots that have no job, once their back-off is over.
	var nextStart time.Time
	for _, r := range reps {
		if r.slot.Draining || r.slot.JobID != "" {
			continue
		}
		if r.slot.NotBefore != nil && now.Before(*r.slot.NotBefore) {
			if nextStart.IsZero() || r.slot.NotBefore.Before(nextStart) {
				nextStart = *r.slot.NotBefore
			}
			continue
		}
		if err := c.start(ctx, d, actor, r, now); err != nil {
			return false, err
		}
	}
	if routing {
		_ = queue.Notify(ctx, c.rdb, queue.ChannelRouting)
	}
	st.Status, st.Reason = status(d, reps, desired, rolling)
	busy = rolling || st.Status == api.DeploymentDeploying || st.Status == api.DeploymentDegraded ||
		(!nextStart.IsZero() && nextStart.Sub(now) < c.cfg.Tick)
	return busy, c.writeState(ctx, ws, name, prev, st)
}

// replicas reads a deployment's slots with their jobs and endpoints.
func (c *Controller) replicas(ctx context.Context, ws, name string) ([]*replica, error) {
	slots, err := c.store.ReplicaSlots(ctx, ws, name)
	if err != nil {
		return nil, err
	}
	var ids []string
	reps := make([]*replica, len(slots))
	for i, s := range slots {
		reps[i] = &replica{slot: s}
		if s.JobID != "" {
			ids = append(ids, s.JobID)
		}
	}
	jobs, err := c.store.JobsOf(ctx, ws, ids)
	if err != nil {
		return nil, err
	}
	eps, err := c.store.Endpoints(ctx, ids...)
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		r.job = jobs[r.slot.JobID]
		for i := range eps {
			if eps[i].JobID == r.slot.JobID {
				r.ep = &eps[i]
			}
		}
	}
	return reps, nil
}

// drain takes r out of service: its slot is marked Draining (the routers
// drop it), and its job is canceled (the worker drains it, then stops it).
func (c *Controller) drain(ctx context.Context, ws, name, actor string, r *replica) error {
	if r.slot.Draining {
		return nil
	}
	r.slot.Draining = true
	if err := c.store.PutReplicaSlot(ctx, ws, name, r.slot); err != nil {
		return err
	}
	_ = queue.Notify(ctx, c.rdb, queue.ChannelRouting)
	if r.slot.JobID == "" || r.job == nil || r.job.Status.Terminal() {
		return nil
	}
	if err := c.jobs.Cancel(ctx, ws, actor, r.slot.JobID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("drain replica %s: %w", r.slot.ID, err)
	}
	return nil
}

// start submits the job of slot r.
func (c *Controller) start(ctx context.Context, d *store.DeploymentRecord, actor string, r *replica, now time.Time) error {
	ti := targetOf(r.slot, d)
	if ti < 0 {
		return nil
	}
	spec := ReplicaSpec(d.Spec, d.Targets[ti], d.Revision, r.slot.ID)
	j, err := c.jobs.SubmitService(ctx, d.Workspace, actor, spec)
	var je *job.Error
	if errors.As(err, &je) {
		// The spec no longer passes (a workspace rule changed, no worker
		// has the GPUs): say why, and try again after a while.
		nb := now.Add(MaxRestartBackoff)
		r.slot.NotBefore = &nb
		r.slot.Reason = "its job is refused: " + je.Message
		return c.store.PutReplicaSlot(ctx, d.Workspace, d.Spec.Name, r.slot)
	}
	if err != nil {
		return err
	}
	r.slot.JobID, r.slot.NotBefore, r.job = j.ID, nil, j
	if err := c.store.PutReplicaSlot(ctx, d.Workspace, d.Spec.Name, r.slot); err != nil {
		// The job runs without its slot knowing; cancel it so it does not
		// run unowned.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return errors.Join(err, c.jobs.Cancel(cleanup, d.Workspace, actor, j.ID))
	}
	return nil
}

// ReplicaSpec is the job spec of replica id of a deployment at revision,
// serving target: what the controller submits, and what the API validates
// a deployment's spec with.
func ReplicaSpec(spec api.DeploymentSpec, t api.DeploymentTarget, revision int, id string) api.JobSpec {
	name := spec.Name + "-" + id
	if len(name) > 128 {
		name = name[len(name)-128:]
		name = strings.TrimLeft(name, "._-")
	}
	return api.JobSpec{
		Name:      name,
		Image:     spec.Image,
		Command:   slices.Clone(spec.Command),
		Env:       maps.Clone(spec.Env),
		Resources: spec.Resources,
		Priority:  cmp.Or(spec.Priority, api.PriorityHigh),
		Tags:      map[string]string{"deployment": spec.Name, "replica": id},
		Service: &api.Service{Deployment: spec.Name, Replica: id, Revision: revision, Model: t.Model, Version: t.Version,
			SHA256: t.SHA256, ReadinessPath: cmp.Or(spec.ReadinessPath, DefaultReadinessPath)},
	}
}

// newReplicaID names a new slot: short, random, a valid part of a job name.
func newReplicaID() string { return "r" + strings.ToLower(rand.Text()[:7]) }

// pickToDrain chooses n of rs to drain: replicas that are not ready first,
// then the newest.
func pickToDrain(rs []*replica, n int) []*replica {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b *replica) int {
		if a.ready() != b.ready() {
			if a.ready() {
				return 1
			}
			return -1
		}
		return b.slot.CreatedAt.Compare(a.slot.CreatedAt)
	})
	return rs[:min(n, len(rs))]
}

// desired is the replica count per target: the spec's, or the
// autoscaler's from the routers' load reports, which it records in st.
func (c *Controller) desired(ctx context.Context, d *store.DeploymentRecord, st *store.DeploymentState, now time.Time) (int, error) {
	a := d.Spec.Autoscale
	if a == nil {
		st.LowSince = nil
		if d.Spec.Replicas != nil {
			return *d.Spec.Replicas, nil
		}
		return DefaultReplicas, nil
	}
	loads, err := c.store.Loads(ctx, d.Workspace, d.Spec.Name, now, c.cfg.LoadMaxAge)
	if err != nil {
		return 0, err
	}
	var inFlight float64
	waiting := 0
	for _, l := range loads {
		inFlight += l.InFlight
		waiting += l.Waiting
	}
	if inFlight > 0 || waiting > 0 {
		st.LastRequest = &now
	}
	target := cmp.Or(a.TargetConcurrency, DefaultTargetConcurrency)
	want := int(math.Ceil(inFlight/float64(target) - 1e-9))
	if waiting > 0 {
		want = max(want, 1)
	}
	want = min(max(want, a.Min), a.Max)
	cur := st.Desired
	if st.Status == "" {
		cur = max(a.Min, 1) // a new deployment starts one replica, as Knative's initial scale
	}
	cur = min(max(cur, a.Min), a.Max)
	delay := time.Duration(cmp.Or(a.ScaleDownDelaySeconds, DefaultScaleDownDelaySeconds)) * time.Second
	switch {
	case want > cur:
		cur, st.LowSince = want, nil
	case want < cur:
		if st.LowSince == nil {
			st.LowSince = &now
		} else if now.Sub(*st.LowSince) >= delay {
			cur, st.LowSince = want, nil
		}
	default:
		st.LowSince = nil
	}
	return cur, nil
}

// status says how a deployment stands, and why.
func status(d *store.DeploymentRecord, reps []*replica, desired int, rolling bool) (api.DeploymentStatus, string) {
	total := desired * len(d.Targets)
	ready, live := 0, 0
	var waiting, crashing *replica
	for _, r := range reps {
		if r.slot.Draining {
			continue
		}
		live++
		if r.ready() {
			ready++
			continue
		}
		if r.slot.Restarts > 0 && (crashing == nil || r.slot.Restarts > crashing.slot.Restarts) {
			crashing = r
		}
		if waiting == nil {
			waiting = r
		}
	}
	switch {
	case total == 0 && live == 0:
		if d.Spec.Autoscale != nil {
			return api.DeploymentScaledToZero, "idle: no replica until a request comes"
		}
		return api.DeploymentScaledToZero, "replicas is 0"
	case rolling:
		return api.DeploymentDeploying, fmt.Sprintf("rolling update to revision %d: %d of %d replicas ready", d.Revision, ready, total)
	case ready >= total:
		return api.DeploymentReady, ""
	case crashing != nil && ready > 0:
		return api.DeploymentDegraded, fmt.Sprintf("%d of %d replicas ready; replica %s: %s", ready, total, crashing.slot.ID, replicaReason(crashing))
	case crashing != nil && ready == 0 && crashing.slot.Restarts >= failedAfterRestarts:
		return api.DeploymentFailed, fmt.Sprintf("no replica ready; replica %s keeps crashing: %s", crashing.slot.ID, replicaReason(crashing))
	case waiting != nil && waiting.job == nil && strings.HasPrefix(waiting.slot.Reason, "its job is refused"):
		return api.DeploymentFailed, fmt.Sprintf("replica %s: %s", waiting.slot.ID, waiting.slot.Reason)
	case waiting != nil:
		return api.DeploymentDeploying, fmt.Sprintf("%d of %d replicas ready; replica %s: %s", ready, total, waiting.slot.ID, replicaReason(waiting))
	}
	return api.DeploymentDeploying, fmt.Sprintf("%d of %d replicas ready", ready, total)
}

// replicaReason says what a replica that is not ready waits for.
func replicaReason(r *replica) string {
	switch {
	case r.job == nil:
		return cmp.Or(r.slot.Reason, "starting")
	case r.job.Status == api.StatusQueued:
		return "waiting: " + r.job.Reason
	case r.ep == nil:
		return fmt.Sprintf("job %s runs on %s; the server has not reported its address yet", r.job.ID, r.job.Worker)
	}
	return fmt.Sprintf("server at %s on %s is %s", r.ep.Address, r.ep.Worker, r.ep.State)
}

// ReplicaState is what a replica is, from its slot, its job and its
// endpoint (nil job or endpoint: none).
func ReplicaState(s store.ReplicaSlot, j *api.Job, ep *store.Endpoint) (api.ReplicaState, string) {
	r := &replica{slot: s, job: j, ep: ep}
	switch {
	case s.Draining || (ep != nil && ep.State == store.EndpointDraining):
		return api.ReplicaDraining, ""
	case r.ready():
		return api.ReplicaReady, ""
	case j == nil || j.Status != api.StatusRunning:
		return api.ReplicaPending, replicaReason(r)
	}
	return api.ReplicaStarting, replicaReason(r)
}

// writeState writes st when it differs from what was read.
func (c *Controller) writeState(ctx context.Context, ws, name string, prev, st store.DeploymentState) error {
	a, _ := json.Marshal(prev)
	b, _ := json.Marshal(st)
	if string(a) == string(b) {
		return nil
	}
	return c.store.SetDeploymentState(ctx, ws, name, st)
}
