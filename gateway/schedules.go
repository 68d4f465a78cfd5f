package gateway

// Schedules start a workspace's job on a cron schedule ("retrain every night
// at 02:00 Europe/Amsterdam"). The handlers below keep the schedules; the
// cron loop (internal/cron) fires them, and says how.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/cron"
	"github.com/jobgate/jobgate/internal/schedule"
	"github.com/jobgate/jobgate/internal/store"
)

const (
	// maxSchedules a workspace may hold; the firing loop reads them all
	// every second.
	maxSchedules = 500
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

// scheduleView is a schedule as the API shows it.
func (g *Gateway) scheduleView(sc *store.Schedule) api.Schedule {
	v := api.Schedule{Name: sc.Name, Cron: sc.Cron, Timezone: sc.Timezone, ConcurrencyPolicy: sc.ConcurrencyPolicy,
		StartingDeadlineSeconds: sc.StartingDeadlineSeconds, Job: sc.Job, Paused: sc.Paused,
		CreatedAt: sc.CreatedAt, CreatedBy: sc.CreatedBy, Next: []time.Time{},
		LastScheduledAt: timePtr(sc.LastTick), LastFiredAt: timePtr(sc.LastFiredAt), LastJobID: sc.LastJob}
	redactSpec(&v.Job)
	if cs, loc, err := cron.Parse(sc); err == nil && !sc.Paused {
		v.Next = cron.Upcoming(cs, loc, cron.Base(sc), g.now(), 5)
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
	req.Timezone = cmp.Or(req.Timezone, "UTC")
	req.ConcurrencyPolicy = cmp.Or(req.ConcurrencyPolicy, cron.PolicyAllow)
	if err := checkScheduleTiming(req.Cron, req.Timezone, req.ConcurrencyPolicy, req.StartingDeadlineSeconds); err != nil {
		return err
	}
	if raw := bytes.TrimSpace(req.Job); len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return invalid("job is required: the job spec each tick submits, as for POST /v1/jobs")
	}
	spec, err := g.scheduleJob(ctx, p.Workspace, req.Job)
	if err != nil {
		return err
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

// checkScheduleTiming checks a schedule's cron, time zone, concurrency
// policy and starting deadline, each as a field of its own.
func checkScheduleTiming(expr, timezone, policy string, deadline int) error {
	if _, err := schedule.Parse(expr); err != nil {
		return invalid("cron: %v (use 5 fields such as \"0 2 * * *\", 6 with seconds first, or @hourly, @daily, @every 6h)", err)
	}
	if _, err := cron.LoadZone(timezone); err != nil {
		return invalid("timezone: %v", err)
	}
	if !slices.Contains([]string{cron.PolicyAllow, cron.PolicyForbid, cron.PolicyReplace}, policy) {
		return invalid("concurrency_policy must be %s, %s or %s, not %q", cron.PolicyAllow, cron.PolicyForbid, cron.PolicyReplace, policy)
	}
	if deadline < 0 || deadline > maxStartingDeadlineSeconds {
		return invalid("starting_deadline_seconds must be 0 (no deadline) or up to %d seconds, not %d", maxStartingDeadlineSeconds, deadline)
	}
	return nil
}

// scheduleJob reads a schedule's job spec, as sent, and checks it as the
// job service would on each tick.
func (g *Gateway) scheduleJob(ctx context.Context, ws string, raw json.RawMessage) (api.JobSpec, error) {
	spec, err := decodeSpec(bytes.NewReader(raw))
	if err != nil {
		return spec, inJob(err)
	}
	if err := g.jobs.Validate(ctx, ws, &spec); err != nil {
		return spec, inJob(err)
	}
	return spec, nil
}

// schedulePatchBody is api.SchedulePatch with the job kept as sent, for
// the spec decoder (decodeSpec), as on create.
type schedulePatchBody struct {
	api.SchedulePatch
	RawJob json.RawMessage `json:"job,omitempty"`
}

// patchSchedule serves PATCH /v1/schedules/:name (api.SchedulePatch): each
// field given replaces the schedule's, checked as on create; the name,
// history and pause state stay. A new cron or time zone counts from now:
// ticks of the new schedule before the change never fire, however late
// (the store's Since moves, as on resume). An empty patch ({}) changes
// nothing and answers the schedule, as PATCH /v1/deployments/:name does.
func (g *Gateway) patchSchedule(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	var body schedulePatchBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	p := body.SchedulePatch
	if raw := bytes.TrimSpace(body.RawJob); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		spec, err := g.scheduleJob(ctx, ws, raw)
		if err != nil {
			return err
		}
		p.Job = &spec
	}
	cur, err := g.scheduleParam(c)
	if err != nil {
		return err
	}
	var changed []string
	for _, f := range []struct {
		name  string
		given bool
	}{{"cron", p.Cron != nil}, {"timezone", p.Timezone != nil}, {"concurrency_policy", p.ConcurrencyPolicy != nil},
		{"starting_deadline_seconds", p.StartingDeadlineSeconds != nil}, {"job", p.Job != nil}} {
		if f.given {
			changed = append(changed, f.name)
		}
	}
	if len(changed) == 0 {
		return c.JSON(http.StatusOK, g.scheduleView(cur))
	}
	// Each field given is checked as on create, with the others as stored;
	// they cannot change meanwhile in a way that matters, as each field is
	// valid alone.
	next := *cur
	applySchedulePatch(&next, p)
	if err := checkScheduleTiming(next.Cron, next.Timezone, next.ConcurrencyPolicy, next.StartingDeadlineSeconds); err != nil {
		return err
	}
	now := g.now().UTC()
	sc, err := g.store.UpdateSchedule(ctx, ws, cur.Name, func(sc *store.Schedule) error {
		if sc.ID != cur.ID {
			return api.Errorf(api.CodeConflict, "schedule %q was replaced while it was being changed; retry", cur.Name)
		}
		retimed := (p.Cron != nil && strings.TrimSpace(*p.Cron) != sc.Cron) || (p.Timezone != nil && *p.Timezone != sc.Timezone)
		applySchedulePatch(sc, p)
		if retimed && now.After(sc.Since) {
			// Ticks of the new timing up to now were never due under the
			// old one: none fires late.
			sc.Since = now
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no schedule %q", cur.Name)
	}
	if err != nil {
		return err
	}
	g.audit(c, ws, "schedule.update", sc.Name+" ("+strings.Join(changed, ", ")+")")
	return c.JSON(http.StatusOK, g.scheduleView(sc))
}

// applySchedulePatch replaces sc's fields with those p gives.
func applySchedulePatch(sc *store.Schedule, p api.SchedulePatch) {
	if p.Cron != nil {
		sc.Cron = strings.TrimSpace(*p.Cron)
	}
	if p.Timezone != nil {
		sc.Timezone = cmp.Or(*p.Timezone, "UTC")
	}
	if p.ConcurrencyPolicy != nil {
		sc.ConcurrencyPolicy = cmp.Or(*p.ConcurrencyPolicy, cron.PolicyAllow)
	}
	if p.StartingDeadlineSeconds != nil {
		sc.StartingDeadlineSeconds = *p.StartingDeadlineSeconds
	}
	if p.Job != nil {
		sc.Job = *p.Job
	}
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
	unlock, err := g.cron.Lock(ctx, sc)
	if err != nil {
		return err
	}
	defer unlock()
	if sc, err = g.scheduleParam(c); err != nil { // as the previous firing left it
		return err
	}
	job, skipped, err := g.cron.Start(ctx, sc, store.ScheduleRun{ScheduledAt: g.now().UTC(), Manual: true})
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
	runs, err := g.store.ScheduleHistory(c.Request().Context(), sc.Workspace, sc.Name, cron.HistoryCap)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.ScheduleHistory{History: convert(runs, func(r store.ScheduleRun) api.ScheduleRun { return api.ScheduleRun(r) })})
}
