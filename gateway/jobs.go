package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
)

func (g *Gateway) submitJob(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	body, err := readBody(c)
	if err != nil {
		return err
	}
	spec, err := decodeSpec(bytes.NewReader(body))
	if err != nil {
		return err
	}
	res, err := g.jobs.Submit(ctx, job.Request{Workspace: p.Workspace, Actor: p.Actor, ByJob: p.JobID, Spec: spec,
		IdempotencyKey: c.Request().Header.Get("Idempotency-Key")})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/jobs/"+res.Job.ID)
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	if res.Fresh {
		return c.JSON(http.StatusCreated, freshView(res.Job, res.Position))
	}
	return c.JSON(http.StatusCreated, g.view(ctx, res.Job))
}

// freshView is view of a job just stored, at place pos of the pending set
// (-1: not pending), from what the submit knows: such a job has no
// attempt, parameter or notification yet, and its tags are its spec's.
func freshView(j *api.Job, pos int64) api.JobDetail {
	redactSpec(&j.Spec)
	var v api.JobDetail
	if j.Status == api.StatusQueued && pos >= 0 {
		v.QueuePosition = &pos
	}
	if len(j.Spec.Tags) > 0 {
		j.Tags = maps.Clone(j.Spec.Tags)
	}
	v.Job = *j
	return v
}

// readBody reads the whole (size-capped) request body.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.Errorf(api.CodeTooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return nil, api.Errorf(api.CodeBadRequest, "read body: %v", err)
	}
	return body, nil
}

func (g *Gateway) getJob(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.view(ctx, j))
}

// view is the job as the API shows it (api.JobDetail: what the record does
// not hold added), its callback secret hidden.
func (g *Gateway) view(ctx context.Context, j *api.Job) api.JobDetail {
	redactSpec(&j.Spec)
	var v api.JobDetail
	notes, _ := g.store.Notifications(ctx, j.ID)
	v.Notifications = convert(notes, func(n store.Notification) api.Notification { return api.Notification(n) })
	if j.Status == api.StatusQueued {
		if n := g.store.PendingPosition(ctx, j.ID); n >= 0 {
			v.QueuePosition = &n
		}
	}
	attempts, _ := g.store.Attempts(ctx, j.ID)
	v.Attempts = convert(attempts, func(a store.AttemptRecord) api.Attempt { return api.Attempt(a) })
	j.Params, j.Tags, _ = g.store.ParamsAndTags(ctx, j.ID)
	v.Job = *j
	return v
}

func (g *Gateway) listJobs(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		switch k {
		case "status", "experiment", "limit", "cursor":
		default:
			return api.Errorf(api.CodeBadRequest, "unknown query parameter %q (use status, experiment, limit, cursor)", k)
		}
	}
	f := store.ListFilter{Status: api.Status(q.Get("status")), Experiment: q.Get("experiment"), Cursor: q.Get("cursor")}
	if f.Status != "" && !f.Status.Valid() {
		return api.Errorf(api.CodeBadRequest, "status must be one of queued, running, succeeded, failed, canceled")
	}
	if f.Experiment != "" && !nameRE.MatchString(f.Experiment) {
		return api.Errorf(api.CodeBadRequest, "experiment %q is not a valid experiment name", f.Experiment)
	}
	if f.Cursor != "" {
		if _, err := ulid.ParseStrict(strings.ToUpper(f.Cursor)); err != nil {
			return api.Errorf(api.CodeBadRequest, "cursor is not one this API returned")
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return api.Errorf(api.CodeBadRequest, "limit must be an integer between 1 and 500")
		}
		f.Limit = n
	}
	jobs, next, err := g.store.ListJobs(c.Request().Context(), principalOf(c).Workspace, f)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []api.Job{}
	}
	for i := range jobs {
		redactSpec(&jobs[i].Spec)
	}
	return c.JSON(http.StatusOK, api.JobList{Jobs: jobs, NextCursor: next})
}

func (g *Gateway) cancelJob(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	id := c.Param("id")
	if err := g.jobs.Cancel(ctx, p.Workspace, p.Actor, id); err != nil {
		return err
	}
	j, err := g.store.GetJob(ctx, p.Workspace, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.view(ctx, j))
}

func (g *Gateway) jobChildren(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	kids, err := g.store.Children(ctx, j.ID, 1000)
	if err != nil {
		return err
	}
	for i := range kids {
		redactSpec(&kids[i].Spec)
	}
	return c.JSON(http.StatusOK, api.JobList{Jobs: kids})
}

// redactSpec hides what a spec holds that the API never shows again.
func redactSpec(s *api.JobSpec) { job.Redact(s) }

func (g *Gateway) listWorkers(c echo.Context) error {
	ctx := c.Request().Context()
	ws, err := g.store.Workers(ctx)
	if err != nil {
		return err
	}
	if p := principalOf(c); !p.System {
		if err := g.hideOtherJobs(ctx, p.Workspace, ws); err != nil {
			return err
		}
	}
	now, err := g.store.Time(ctx) // the heartbeats' clock
	if err != nil {
		return err
	}
	out := api.WorkerList{Workers: make([]api.Worker, 0, len(ws))}
	for _, w := range ws {
		out.Workers = append(out.Workers, workerView(w, g.workers.WorkerState(w, now)))
	}
	return c.JSON(http.StatusOK, out)
}

// hideOtherJobs leaves in the workers' job lists, and as GPU holders, only
// jobs of workspace ws: the registry is shared, the jobs on it are not.
func (g *Gateway) hideOtherJobs(ctx context.Context, ws string, workers []store.Worker) error {
	var ids []string
	for _, w := range workers {
		ids = append(ids, w.Jobs...)
		for _, gp := range w.GPUs {
			if gp.JobID != "" {
				ids = append(ids, gp.JobID)
			}
		}
	}
	owner, err := g.store.JobWorkspaces(ctx, ids)
	if err != nil {
		return err
	}
	for i := range workers {
		w := &workers[i]
		w.Jobs = slices.DeleteFunc(w.Jobs, func(id string) bool { return owner[id] != ws })
		for k := range w.GPUs {
			if owner[w.GPUs[k].JobID] != ws {
				w.GPUs[k].JobID = ""
			}
		}
	}
	return nil
}
