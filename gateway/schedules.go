package gateway

// Schedules start a workspace's job on a cron schedule ("retrain every night
// at 02:00 Europe/Amsterdam"). The handlers below keep the schedules; the
// cron loop (internal/cron) fires them, and says how.

import (
	"bytes"
	"cmp"
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
	if _, err := schedule.Parse(req.Cron); err != nil {
		return invalid("cron: %v (use 5 fields such as \"0 2 * * *\", 6 with seconds first, or @hourly, @daily, @every 6h)", err)
	}
	req.Timezone = cmp.Or(req.Timezone, "UTC")
	if _, err := cron.LoadZone(req.Timezone); err != nil {
		return invalid("timezone: %v", err)
	}
	req.ConcurrencyPolicy = cmp.Or(req.ConcurrencyPolicy, cron.PolicyAllow)
	if !slices.Contains([]string{cron.PolicyAllow, cron.PolicyForbid, cron.PolicyReplace}, req.ConcurrencyPolicy) {
		return invalid("concurrency_policy must be %s, %s or %s, not %q", cron.PolicyAllow, cron.PolicyForbid, cron.PolicyReplace, req.ConcurrencyPolicy)
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
	if err := g.jobs.Validate(ctx, p.Workspace, &spec); err != nil {
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
