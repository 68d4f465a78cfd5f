package gateway

// Schedules start a workspace's job on a cron schedule ("retrain every night
// at 02:00 Europe/Amsterdam").
//
// Firing: every gateway runs runSchedules, but only the scheduler's leader
// fires. Even so, each tick fires at most once however many gateways run or
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

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/schedule"
	"github.com/jobgate/jobgate/internal/store"
)

// Concurrency policies: what a tick does while the schedule's previous job
// has not ended.
const (
	// policyAllow starts the new job anyway.
	policyAllow = "Allow"
	// policyForbid skips the tick, recording why.
	policyForbid = "Forbid"
	// policyReplace cancels the previous job, then starts the new one.
	policyReplace = "Replace"
)

const (
	// maxSchedules a workspace may hold; the firing loop reads them all
	// every second.
	maxSchedules = 500
	// scheduleHistoryCap is how many runs a schedule's history keeps.
	scheduleHistoryCap = 100
	// tickClaimTTL keeps a tick's claim; far longer than any gateway takes
	// to fire it.
	tickClaimTTL = 48 * time.Hour
	// scheduleWakeMax bounds the firing loop's sleep, so new, resumed and
	// changed schedules are seen within it.
	scheduleWakeMax = time.Second
	// scheduleLockWait is how long a firing waits for another firing of the
	// same schedule to finish.
	scheduleLockWait = 5 * time.Second
	// maxStartingDeadlineSeconds: a year.
	maxStartingDeadlineSeconds = 366 * 24 * 3600
)

// scheduleRequest is the body of POST /v1/schedules.
type scheduleRequest struct {
	Name                    string          `json:"name"`
	Cron                    string          `json:"cron"`
	Timezone                string          `json:"timezone"`
	ConcurrencyPolicy       string          `json:"concurrency_policy"`
	StartingDeadlineSeconds int             `json:"starting_deadline_seconds"`
	Job                     json.RawMessage `json:"job"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// zones caches time zones by name: LoadLocation reads the zone database on
// every call, and the firing loop looks every second. Only known zones are
// kept, so it is bounded by the IANA database.
var zones sync.Map // name → *time.Location

func loadZone(name string) (*time.Location, error) {
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

// parseSchedule returns sc's cron expression and time zone.
func parseSchedule(sc *store.Schedule) (schedule.Schedule, *time.Location, error) {
	cs, err := schedule.Parse(sc.Cron)
	if err != nil {
		return cs, nil, err
	}
	loc, err := loadZone(sc.Timezone)
	return cs, loc, err
}

// base is the instant after which sc's ticks count: the latest tick handled,
// or its creation or resumption if later.
func base(sc *store.Schedule) time.Time {
	if sc.LastTick.After(sc.Since) {
		return sc.LastTick
	}
	return sc.Since
}

// upcoming returns the next n ticks of cs after the latest one due at now,
// counting from from (so @every schedules stay anchored to their last tick).
func upcoming(cs schedule.Schedule, loc *time.Location, from, now time.Time, n int) []time.Time {
	if t, ok := schedule.MissedTicks(cs, loc, from, now); ok {
		from = t
	}
	return schedule.Next(cs, loc, from, n)
}

// scheduleView is a schedule as the API shows it.
func (g *Gateway) scheduleView(sc *store.Schedule) api.Schedule {
	v := api.Schedule{Name: sc.Name, Cron: sc.Cron, Timezone: sc.Timezone, ConcurrencyPolicy: sc.ConcurrencyPolicy,
		StartingDeadlineSeconds: sc.StartingDeadlineSeconds, Job: sc.Job, Paused: sc.Paused,
		CreatedAt: sc.CreatedAt, CreatedBy: sc.CreatedBy, Next: []time.Time{},
		LastScheduledAt: timePtr(sc.LastTick), LastFiredAt: timePtr(sc.LastFiredAt), LastJobID: sc.LastJob}
	redactSpec(&v.Job)
	if cs, loc, err := parseSchedule(sc); err == nil && !sc.Paused {
		v.Next = upcoming(cs, loc, base(sc), g.now(), 5)
	}
	return v
}

// scheduleParam is the :name schedule of the caller's workspace; one of
// another workspace is 404, as if it did not exist.
func (g *Gateway) scheduleParam(c echo.Context) (*store.Schedule, error) {
	name := c.Param("name")
	sc, err := g.store.Schedule(c.Request().Context(), principalOf(c).Workspace, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no schedule %q", name)
	}
	return sc, err
}

func (g *Gateway) createSchedule(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	var req scheduleRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if _, err := schedule.Parse(req.Cron); err != nil {
		return invalid("cron: %v (use 5 fields such as \"0 2 * * *\", 6 with seconds first, or @hourly, @daily, @every 6h)", err)
	}
	req.Timezone = cmp.Or(req.Timezone, "UTC")
	if _, err := loadZone(req.Timezone); err != nil {
		return invalid("timezone: %v", err)
	}
	req.ConcurrencyPolicy = cmp.Or(req.ConcurrencyPolicy, policyAllow)
	if !slices.Contains([]string{policyAllow, policyForbid, policyReplace}, req.ConcurrencyPolicy) {
		return invalid("concurrency_policy must be %s, %s or %s, not %q", policyAllow, policyForbid, policyReplace, req.ConcurrencyPolicy)
	}
	if req.StartingDeadlineSeconds < 0 || req.StartingDeadlineSeconds > maxStartingDeadlineSeconds {
		return invalid("starting_deadline_seconds must be 0 (no deadline) or up to %d seconds, not %d", maxStartingDeadlineSeconds, req.StartingDeadlineSeconds)
	}
	if raw := bytes.TrimSpace(req.Job); len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return invalid("job is required: the job spec each tick submits, as for POST /v1/jobs")
	}
	spec, err := decodeSpec(bytes.NewReader(req.Job))
	if err != nil {
		return inJob(err)
	}
	if err := g.checkSpec(ctx, p.Workspace, &spec); err != nil {
		return inJob(err)
	}
	now := g.now().UTC()
	sc := store.Schedule{ID: newID("sch_"), Workspace: p.Workspace, Name: req.Name, Cron: strings.TrimSpace(req.Cron),
		Timezone: req.Timezone, ConcurrencyPolicy: req.ConcurrencyPolicy, StartingDeadlineSeconds: req.StartingDeadlineSeconds,
		Job: spec, CreatedAt: now, CreatedBy: p.Actor, Since: now}
	switch err := g.store.CreateSchedule(ctx, sc, maxSchedules); {
	case errors.Is(err, store.ErrConflict):
		return api.Errorf(api.CodeConflict, "schedule %q exists in workspace %s", req.Name, p.Workspace)
	case errors.Is(err, store.ErrLimit):
		return invalid("workspace %s already has %d schedules, the most it may hold; delete one first", p.Workspace, maxSchedules)
	case err != nil:
		return err
	}
	g.audit(c, p.Workspace, "schedule.create", sc.Name)
	c.Response().Header().Set("Location", "/v1/schedules/"+sc.Name)
	return c.JSON(http.StatusCreated, g.scheduleView(&sc))
}

func (g *Gateway) listSchedules(c echo.Context) error {
	all, err := g.store.Schedules(c.Request().Context(), principalOf(c).Workspace)
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b store.Schedule) int { return strings.Compare(a.Name, b.Name) })
	out := api.ScheduleList{Schedules: make([]api.Schedule, 0, len(all))}
	for i := range all {
		out.Schedules = append(out.Schedules, g.scheduleView(&all[i]))
	}
	return c.JSON(http.StatusOK, out)
}

func (g *Gateway) getSchedule(c echo.Context) error {
	sc, err := g.scheduleParam(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.scheduleView(sc))
}

func (g *Gateway) deleteSchedule(c echo.Context) error {
	ws, name := principalOf(c).Workspace, c.Param("name")
	if err := g.store.DeleteSchedule(c.Request().Context(), ws, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no schedule %q", name)
		}
		return err
	}
	g.audit(c, ws, "schedule.delete", name)
	return c.NoContent(http.StatusNoContent)
}

func (g *Gateway) pauseSchedule(c echo.Context) error  { return g.setPaused(c, true) }
func (g *Gateway) resumeSchedule(c echo.Context) error { return g.setPaused(c, false) }

// setPaused pauses or resumes the :name schedule. Ticks due while it was
// paused never fire; a run by hand still does.
func (g *Gateway) setPaused(c echo.Context, paused bool) error {
	ctx := c.Request().Context()
	ws, name := principalOf(c).Workspace, c.Param("name")
	if err := g.store.SetSchedulePaused(ctx, ws, name, paused, g.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no schedule %q", name)
		}
		return err
	}
	action := "schedule.resume"
	if paused {
		action = "schedule.pause"
	}
	g.audit(c, ws, action, name)
	sc, err := g.scheduleParam(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.scheduleView(sc))
}

// runSchedule fires the :name schedule now, paused or not, under its
// concurrency policy: with Forbid while its previous job has not ended it is
// a 409 and nothing starts. It answers 201 with the job.
func (g *Gateway) runSchedule(c echo.Context) error {
	ctx := c.Request().Context()
	sc, err := g.scheduleParam(c)
	if err != nil {
		return err
	}
	unlock, err := g.lockSchedule(ctx, sc)
	if err != nil {
		return err
	}
	defer unlock()
	if sc, err = g.scheduleParam(c); err != nil { // as the previous firing left it
		return err
	}
	job, skipped, err := g.startScheduled(ctx, sc, store.ScheduleRun{ScheduledAt: g.now().UTC(), Manual: true})
	if err != nil {
		return err
	}
	if skipped != "" {
		return api.Errorf(api.CodeConflict, "%s; the schedule's concurrency_policy is %s", skipped, sc.ConcurrencyPolicy)
	}
	g.audit(c, sc.Workspace, "schedule.run", sc.Name)
	c.Response().Header().Set("Location", "/v1/jobs/"+job.ID)
	return c.JSON(http.StatusCreated, g.view(ctx, job))
}

func (g *Gateway) scheduleHistory(c echo.Context) error {
	sc, err := g.scheduleParam(c)
	if err != nil {
		return err
	}
	runs, err := g.store.ScheduleHistory(c.Request().Context(), sc.Workspace, sc.Name, scheduleHistoryCap)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.ScheduleHistory{History: convert(runs, func(r store.ScheduleRun) api.ScheduleRun { return api.ScheduleRun(r) })})
}

// lockSchedule takes sc's firing lock, waiting up to scheduleLockWait for
// another firing to finish, and returns the function that releases it.
func (g *Gateway) lockSchedule(ctx context.Context, sc *store.Schedule) (func(), error) {
	token := newID("")
	wait := time.NewTimer(scheduleLockWait)
	defer wait.Stop()
	for {
		ok, err := g.store.LockSchedule(ctx, sc.Workspace, sc.Name, token, 30*time.Second)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				_ = g.store.UnlockSchedule(cleanup, sc.Workspace, sc.Name, token)
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait.C:
			return nil, errorf(http.StatusConflict, CodeConflict, "schedule %q is being fired by another request; retry", sc.Name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startScheduled starts sc's job now under its concurrency policy, or says
// why it does not (Forbid while the previous job has not ended). The job is
// stored with run, completed with its id and firing time, in sc's history
// and as sc's latest job, in one step (store.CreateScheduledJob): a gateway
// that dies after it cannot leave a job the policy does not see. The caller
// holds sc's firing lock and read sc under it, and records run itself when
// no job is made. Errors are createJob's.
func (g *Gateway) startScheduled(ctx context.Context, sc *store.Schedule, run store.ScheduleRun) (job *api.Job, skipped string, err error) {
	actor := "schedule:" + sc.Name
	if sc.ConcurrencyPolicy != policyAllow && sc.LastJob != "" {
		prev, err := g.store.GetJob(ctx, sc.Workspace, sc.LastJob)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, "", err
		case prev.Status.Terminal():
		case sc.ConcurrencyPolicy == policyForbid:
			return nil, fmt.Sprintf("previous job still running (job %s is %s)", prev.ID, prev.Status), nil
		default:
			if err := g.cancel(ctx, sc.Workspace, actor, prev.ID); err != nil {
				return nil, "", fmt.Errorf("replace job %s: %w", prev.ID, err)
			}
		}
	}
	job, err = g.createJobWith(ctx, sc.Workspace, actor, sc.Job, func(ctx context.Context, j *api.Job) (bool, error) {
		fired := g.now().UTC()
		run.FiredAt, run.JobID = &fired, j.ID
		return true, g.store.CreateScheduledJob(ctx, j, sc, run, scheduleHistoryCap)
	})
	return job, "", err
}

// leads reports whether this scheduler holds the leader lease, renewing it
// (the same lease, holder and TTL as Run's).
func (s *Scheduler) leads(ctx context.Context) (bool, error) {
	return s.store.AcquireLeadership(ctx, s.cfg.ID, s.cfg.LeaseTTL)
}

// runSchedules fires due ticks until ctx is done, while this gateway leads
// the scheduler. It sleeps until the earliest next tick of any schedule, at
// most scheduleWakeMax.
func (g *Gateway) runSchedules(ctx context.Context) error {
	leading := false
	for ctx.Err() == nil {
		wait := scheduleWakeMax
		ok, err := g.sched.leads(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				g.logger.WarnContext(ctx, "schedules: scheduler lease", slog.Any("error", err))
			}
		case ok != leading:
			leading = ok
			g.logger.InfoContext(ctx, "schedules: leadership", slog.Bool("leading", ok))
		}
		if err == nil && leading {
			if next := g.fireSchedules(ctx, g.now()); !next.IsZero() {
				wait = min(wait, max(next.Sub(g.now()), 5*time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	if leading {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = g.store.ReleaseLeadership(cleanup, g.cfg.SchedulerID)
	}
	return nil
}

// fireSchedules fires, for every schedule, the latest tick due at now that
// was not handled yet, and returns the earliest tick after that of any
// schedule (zero if none). Errors are logged per schedule.
func (g *Gateway) fireSchedules(ctx context.Context, now time.Time) time.Time {
	all, err := g.store.AllSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			g.logger.WarnContext(ctx, "schedules: list", slog.Any("error", err))
		}
		return time.Time{}
	}
	var earliest time.Time
	for i := range all {
		sc := &all[i]
		if sc.Paused {
			continue
		}
		log := g.logger.With(slog.String("workspace", sc.Workspace), slog.String("schedule", sc.Name))
		cs, loc, err := parseSchedule(sc)
		if err != nil {
			log.WarnContext(ctx, "schedules: unusable schedule", slog.Any("error", err))
			continue
		}
		from := base(sc)
		if tick, ok := schedule.MissedTicks(cs, loc, from, now); ok && ctx.Err() == nil {
			// A tick once claimed is fired and recorded to the end, even
			// while the gateway stops.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := g.fireTick(fctx, sc, tick, now); err != nil {
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
func (g *Gateway) fireTick(ctx context.Context, sc *store.Schedule, tick, now time.Time) error {
	ok, err := g.store.ClaimScheduleTick(ctx, sc, tick, g.cfg.SchedulerID, tickClaimTTL)
	if err != nil || !ok {
		return err
	}
	run := store.ScheduleRun{ScheduledAt: tick.UTC()}
	deadline := time.Duration(sc.StartingDeadlineSeconds) * time.Second
	if !schedule.WithinDeadline(tick, now, deadline) {
		run.SkippedReason = fmt.Sprintf("missed: due %s ago, past the starting deadline of %ds",
			now.Sub(tick).Truncate(time.Second), sc.StartingDeadlineSeconds)
		return g.store.RecordScheduleRun(ctx, sc, run, scheduleHistoryCap)
	}
	unlock, err := g.lockSchedule(ctx, sc)
	if err != nil {
		run.SkippedReason = "another firing of this schedule did not finish in time"
		return errors.Join(err, g.store.RecordScheduleRun(ctx, sc, run, scheduleHistoryCap))
	}
	defer unlock()
	cur, err := g.store.Schedule(ctx, sc.Workspace, sc.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && cur.ID != sc.ID) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	_, skipped, err := g.startScheduled(ctx, cur, run)
	var ae *Error
	switch {
	case err == nil && skipped == "":
		return nil // recorded with its job
	case err == nil:
		run.SkippedReason = skipped
	case errors.As(err, &ae) && ae.Code.Status() < 500:
		run.SkippedReason = "job refused: " + ae.Message
		err = nil
	default:
		run.SkippedReason = "internal error: the job could not be created (see the gateway log)"
	}
	return errors.Join(err, g.store.RecordScheduleRun(ctx, cur, run, scheduleHistoryCap))
}
