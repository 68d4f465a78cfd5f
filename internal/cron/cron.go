// Package cron is the cron loop: it fires the workspaces' schedules
// ("retrain every night at 02:00 Europe/Amsterdam"), submitting each tick's
// job through the job service. The schedule API (gateway/) keeps the
// schedules; Lock and Start are the firing it shares with its "run now".
//
// Firing: every gateway runs a Cron, but only the leader (the one elector of
// the process, internal/leader) fires. Even so, each tick fires at most once however many gateways run or
// think they lead (a lease can overlap while it changes hands): a gateway
// first claims the (schedule, tick) pair in Redis (a key set only if absent,
// kept two days, in the same step that moves the schedule's last tick), and
// only the claimer creates the job. A gateway that dies between its claim
// and the job loses that one tick; the next tick fires as usual.
//
// Missed ticks: after downtime, only the latest tick missed since the last
// one handled (or since creation or resume) fires, and only if it is late by
// no more than starting_deadline_seconds; otherwise it is recorded as
// skipped.
//
// Concurrency: a schedule's firings (ticks and runs by hand) hold a
// per-schedule lock, so Forbid and Replace always see the job the previous
// firing made. "Still running" means not ended: queued (waiting for a slot)
// or running.
package cron

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/schedule"
	"github.com/jobgate/jobgate/internal/store"
)

// Concurrency policies: what a tick does while the schedule's previous job
// has not ended.
const (
	// PolicyAllow starts the new job anyway.
	PolicyAllow = "Allow"
	// PolicyForbid skips the tick, recording why.
	PolicyForbid = "Forbid"
	// PolicyReplace cancels the previous job, then starts the new one.
	PolicyReplace = "Replace"
)

const (
	// HistoryCap is how many runs a schedule's history keeps.
	HistoryCap = 100
	// tickClaimTTL keeps a tick's claim; far longer than any gateway takes
	// to fire it.
	tickClaimTTL = 48 * time.Hour
	// scheduleWakeMax bounds the firing loop's sleep, so new, resumed and
	// changed schedules are seen within it.
	scheduleWakeMax = time.Second
	// scheduleLockWait is how long a firing waits for another firing of the
	// same schedule to finish.
	scheduleLockWait = 5 * time.Second
)

// Config configures a Cron.
type Config struct {
	// ID names this process in the tick claims (the elector's ID). Required.
	ID string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// TracerProvider, when set, makes each fired tick a schedule.tick span,
	// where its job's trace begins; nil makes none.
	TracerProvider trace.TracerProvider
}

// leadership tells a loop that only the leader runs whether this process
// leads (internal/leader.Elector).
type leadership interface {
	Listen() *leader.Subscription
}

var _ leadership = (*leader.Elector)(nil)

// submitter makes and cancels jobs (internal/job.Service).
type submitter interface {
	Submit(ctx context.Context, req job.Request) (job.Result, error)
	Cancel(ctx context.Context, ws, actor, id string) error
}

var _ submitter = (*job.Service)(nil)

// Cron fires schedules while this process leads.
type Cron struct {
	cfg    Config
	leader leadership
	store  *store.Store
	jobs   submitter
	logger *slog.Logger
}

// New returns a Cron that fires while lead says this process leads,
// submitting through jobs; Run runs it.
func New(cfg Config, lead leadership, st *store.Store, jobs submitter, logger *slog.Logger) *Cron {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cron{cfg: cfg, leader: lead, store: st, jobs: jobs, logger: logger}
}

// zones caches time zones by name: LoadLocation reads the zone database on
// every call, and the firing loop looks every second. Only known zones are
// kept, so it is bounded by the IANA database.
var zones sync.Map // name → *time.Location

// LoadZone is schedule.LoadLocation, cached.
func LoadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	loc, err := schedule.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

// Parse returns sc's cron expression and time zone.
func Parse(sc *store.Schedule) (schedule.Schedule, *time.Location, error) {
	cs, err := schedule.Parse(sc.Cron)
	if err != nil {
		return cs, nil, err
	}
	loc, err := LoadZone(sc.Timezone)
	return cs, loc, err
}

// Base is the instant after which sc's ticks count: the latest tick handled,
// or its creation or resumption if later.
func Base(sc *store.Schedule) time.Time {
	if sc.LastTick.After(sc.Since) {
		return sc.LastTick
	}
	return sc.Since
}

// Upcoming returns the next n ticks of cs after the latest one due at now,
// counting from from (so @every schedules stay anchored to their last tick).
func Upcoming(cs schedule.Schedule, loc *time.Location, from, now time.Time, n int) []time.Time {
	if t, ok := schedule.MissedTicks(cs, loc, from, now); ok {
		from = t
	}
	return schedule.Next(cs, loc, from, n)
}

// Lock takes sc's firing lock, waiting up to scheduleLockWait for
// another firing to finish, and returns the function that releases it.
func (c *Cron) Lock(ctx context.Context, sc *store.Schedule) (func(), error) {
	token := rand.Text()
	wait := time.NewTimer(scheduleLockWait)
	defer wait.Stop()
	for {
		ok, err := c.store.LockSchedule(ctx, sc.Workspace, sc.Name, token, 30*time.Second)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				_ = c.store.UnlockSchedule(cleanup, sc.Workspace, sc.Name, token)
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait.C:
			return nil, api.Errorf(api.CodeConflict, "schedule %q is being fired by another request; retry", sc.Name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Start starts sc's job now under its concurrency policy, or says
// why it does not (Forbid while the previous job has not ended). The job is
// stored with run, completed with its id and firing time, in sc's history
// and as sc's latest job, in one step (store.CreateScheduledJob): a gateway
// that dies after it cannot leave a job the policy does not see. The caller
// holds sc's firing lock and read sc under it, and records run itself when
// no job is made. Errors are the job service's.
func (c *Cron) Start(ctx context.Context, sc *store.Schedule, run store.ScheduleRun) (_ *api.Job, skipped string, err error) {
	actor := "schedule:" + sc.Name
	if sc.ConcurrencyPolicy != PolicyAllow && sc.LastJob != "" {
		prev, err := c.store.GetJob(ctx, sc.Workspace, sc.LastJob)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, "", err
		case prev.Status.Terminal():
		case sc.ConcurrencyPolicy == PolicyForbid:
			return nil, fmt.Sprintf("previous job still running (job %s is %s)", prev.ID, prev.Status), nil
		default:
			if err := c.jobs.Cancel(ctx, sc.Workspace, actor, prev.ID); err != nil {
				return nil, "", fmt.Errorf("replace job %s: %w", prev.ID, err)
			}
		}
	}
	res, err := c.jobs.Submit(ctx, job.Request{Workspace: sc.Workspace, Actor: actor, Spec: sc.Job,
		Save: func(ctx context.Context, j *api.Job) (bool, error) {
			fired := c.cfg.Now().UTC()
			run.FiredAt, run.JobID = &fired, j.ID
			return true, c.store.CreateScheduledJob(ctx, j, sc, run, HistoryCap)
		}})
	return res.Job, "", err
}

// Run fires due ticks until ctx is done, while this process leads. It
// sleeps until the earliest next tick of any schedule, at most
// scheduleWakeMax, or until leadership changes. It returns nil.
func (c *Cron) Run(ctx context.Context) error {
	sub := c.leader.Listen()
	defer sub.Unlisten()
	leading := false
	for ctx.Err() == nil {
		wait := scheduleWakeMax
		if leading {
			if next := c.Fire(ctx, c.cfg.Now()); !next.IsZero() {
				wait = min(wait, max(next.Sub(c.cfg.Now()), 5*time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case leading = <-sub.C():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// Fire fires, for every schedule, the latest tick due at now that was not
// handled yet, and returns the earliest tick after that of any schedule
// (zero if none): one pass of Run, leader or not. Errors are logged per
// schedule.
func (c *Cron) Fire(ctx context.Context, now time.Time) time.Time {
	all, err := c.store.AllSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.logger.WarnContext(ctx, "schedules: list", slog.Any("error", err))
		}
		return time.Time{}
	}
	var earliest time.Time
	for i := range all {
		sc := &all[i]
		if sc.Paused {
			continue
		}
		log := c.logger.With(slog.String("workspace", sc.Workspace), slog.String("schedule", sc.Name))
		cs, loc, err := Parse(sc)
		if err != nil {
			log.WarnContext(ctx, "schedules: unusable schedule", slog.Any("error", err))
			continue
		}
		from := Base(sc)
		if tick, ok := schedule.MissedTicks(cs, loc, from, now); ok && ctx.Err() == nil {
			// A tick once claimed is fired and recorded to the end, even
			// while the gateway stops.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := c.fireTick(fctx, sc, tick, now); err != nil {
				log.WarnContext(ctx, "schedules: fire", slog.Time("tick", tick), slog.Any("error", err))
			}
			cancel()
			from = tick
		}
		if next := schedule.Next(cs, loc, from, 1); len(next) == 1 && (earliest.IsZero() || next[0].Before(earliest)) {
			earliest = next[0]
		}
	}
	return earliest
}

// fireTick claims tick of sc and, if this call got it, fires it or records
// why not: too late for the starting deadline, Forbid, or a job the
// gateway now refuses (the workspace's rules changed, say).
func (c *Cron) fireTick(ctx context.Context, sc *store.Schedule, tick, now time.Time) error {
	ok, err := c.store.ClaimScheduleTick(ctx, sc, tick, c.cfg.ID, tickClaimTTL)
	if err != nil || !ok {
		return err
	}
	ctx, span := c.traceTick(ctx, sc, tick)
	defer span.End()
	run := store.ScheduleRun{ScheduledAt: tick.UTC()}
	deadline := time.Duration(sc.StartingDeadlineSeconds) * time.Second
	if !schedule.WithinDeadline(tick, now, deadline) {
		run.SkippedReason = fmt.Sprintf("missed: due %s ago, past the starting deadline of %ds",
			now.Sub(tick).Truncate(time.Second), sc.StartingDeadlineSeconds)
		return c.store.RecordScheduleRun(ctx, sc, run, HistoryCap)
	}
	unlock, err := c.Lock(ctx, sc)
	if err != nil {
		run.SkippedReason = "another firing of this schedule did not finish in time"
		return errors.Join(err, c.store.RecordScheduleRun(ctx, sc, run, HistoryCap))
	}
	defer unlock()
	cur, err := c.store.Schedule(ctx, sc.Workspace, sc.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && cur.ID != sc.ID) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	_, skipped, err := c.Start(ctx, cur, run)
	var je *job.Error
	switch {
	case err == nil && skipped == "":
		return nil // recorded with its job
	case err == nil:
		run.SkippedReason = skipped
	case errors.As(err, &je) && je.Code.Status() < 500:
		run.SkippedReason = "job refused: " + je.Message
		err = nil
	default:
		run.SkippedReason = "internal error: the job could not be created (see the gateway log)"
	}
	return errors.Join(err, c.store.RecordScheduleRun(ctx, cur, run, HistoryCap))
}
