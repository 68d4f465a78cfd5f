package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
	"github.com/jobgate/jobgate/queue"
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
	if p.JobID != "" {
		// A job's token submits children of its own tree; a job that
		// names no parent gets itself.
		if spec.ParentID == "" {
			spec.ParentID = p.JobID
		} else if err := g.checkJobTree(ctx, p, spec.ParentID); err != nil {
			return err
		}
		if err := g.checkChild(ctx, p, &spec); err != nil {
			return err
		}
	}
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		job, err := g.createJob(ctx, p.Workspace, p.Actor, spec)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Location", "/v1/jobs/"+job.ID)
		return c.JSON(http.StatusCreated, g.view(ctx, job))
	}
	job, replayed, err := g.createIdempotent(ctx, p, key, spec)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/jobs/"+job.ID)
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusCreated, g.view(ctx, job))
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

// createJob validates spec for workspace ws and queues it, on behalf of
// actor (a token name, or "trigger:NAME" / "schedule:NAME"). Every way a job
// is made goes through here: the API, webhook triggers and schedules.
func (g *Gateway) createJob(ctx context.Context, ws, actor string, spec api.JobSpec) (*api.Job, error) {
	return g.createJobWith(ctx, ws, actor, spec, func(ctx context.Context, j *api.Job) (bool, error) {
		return true, g.store.CreateJob(ctx, j)
	})
}

// createJobWith is createJob with the job stored by save, which may store
// more in the same step (an Idempotency-Key's or a delivery's completion)
// or, when a job was already made under those, store nothing and say so
// (made false): then no job comes back, and no error.
func (g *Gateway) createJobWith(ctx context.Context, ws, actor string, spec api.JobSpec, save func(context.Context, *api.Job) (made bool, err error)) (*api.Job, error) {
	if err := g.checkSpec(ctx, ws, &spec); err != nil {
		return nil, err
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
		CreatedAt:  g.now().UTC(),
		Spec:       spec,
	}
	if made, err := save(ctx, job); err != nil || !made {
		return nil, err
	}
	_ = queue.Notify(ctx, g.rdb, queue.ChannelScheduler)
	g.auditAs(ctx, ws, actor, "job.submit", job.ID)
	return job, nil
}

// checkSpec fills spec's defaults and checks everything a job must pass in
// workspace ws: the fields, that some worker could run it, the workspace's
// rules, and where its callback may go. Jobs, schedules and triggers all
// check their specs here.
func (g *Gateway) checkSpec(ctx context.Context, ws string, spec *api.JobSpec) error {
	if err := normalize(spec, SpecLimits{DefaultTimeoutSeconds: g.cfg.DefaultTimeoutSeconds,
		MaxTimeoutSeconds: g.cfg.MaxTimeoutSeconds, MaxRetries: g.cfg.MaxRetries}); err != nil {
		return err
	}
	if spec.Mode == api.ModeProcess {
		if err := g.checkHostProcess(ctx, ws); err != nil {
			return err
		}
	}
	if err := g.sched.Admissible(ctx, *spec); err != nil {
		return err
	}
	if err := g.checkWorkspaceRules(ctx, ws, *spec); err != nil {
		return err
	}
	if err := g.checkInputs(ctx, ws, *spec); err != nil {
		return err
	}
	if spec.Notify != nil {
		if err := webhook.ValidateURL(spec.Notify.URL, g.cfg.CallbackPolicy); err != nil {
			return specErr("notify.url: %v", err)
		}
	}
	if spec.ParentID != "" {
		parent, err := g.store.GetJob(ctx, ws, spec.ParentID)
		if errors.Is(err, store.ErrNotFound) {
			return specErr("parent_id: no job %q in this workspace", spec.ParentID)
		}
		if err != nil {
			return err
		}
		if parent.Status == api.StatusCanceled {
			return specErr("parent_id: job %s was canceled; it takes no new children", parent.ID)
		}
	}
	return nil
}

// checkHostProcess refuses mode process (403) unless the system admin
// granted workspace ws allow_host_process: a host process runs as the
// worker's own user, outside any container and past the image allow-list.
func (g *Gateway) checkHostProcess(ctx context.Context, ws string) error {
	w, err := g.store.Workspace(ctx, ws)
	if err != nil {
		return err
	}
	if !w.AllowHostProcess {
		return errorf(http.StatusForbidden, CodeForbidden,
			"mode: workspace %s may not run host-process jobs (mode process); the system admin grants it with PATCH /v1/workspaces/%s {\"allow_host_process\": true}", ws, ws)
	}
	return nil
}

// checkWorkspaceRules applies what the workspace decides about a spec: the
// image allow-list, and that every secret it names exists.
func (g *Gateway) checkWorkspaceRules(ctx context.Context, ws string, spec api.JobSpec) error {
	w, err := g.store.Workspace(ctx, ws)
	if err != nil {
		return err
	}
	if spec.Mode == api.ModeContainer && len(w.ImageAllowlist) > 0 {
		ok := false
		for _, prefix := range w.ImageAllowlist {
			ok = ok || strings.HasPrefix(spec.Image, prefix)
		}
		if !ok {
			return specErr("image %q is not allowed in workspace %s (allowed prefixes: %s)", spec.Image, ws, strings.Join(w.ImageAllowlist, ", "))
		}
	}
	if len(spec.Secrets) > 0 && g.secrets == nil {
		return specErr("secrets: this gateway has no secrets key (start it with --secrets-key-file)")
	}
	for env, name := range spec.Secrets {
		if _, err := g.store.Secret(ctx, ws, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return specErr("secrets.%s: no secret named %q in workspace %s", env, name, ws)
			}
			return err
		}
	}
	return nil
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
	if err := g.cancel(ctx, p.Workspace, p.Actor, id); err != nil {
		return err
	}
	j, err := g.store.GetJob(ctx, p.Workspace, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.view(ctx, j))
}

// maxCancelTree bounds how many descendants one cancel reaches.
const maxCancelTree = 10_000

// cancel cancels job id of ws on behalf of actor, and its children, theirs,
// and so on: a queued job at once, a running one by asking its worker to stop
// it. Canceling an ended job does nothing (its children are still canceled).
// The API and schedules (Replace) cancel through here.
func (g *Gateway) cancel(ctx context.Context, ws, actor, id string) error {
	if err := g.cancelOne(ctx, ws, actor, id); err != nil {
		return err
	}
	todo := []string{id}
	for seen := 0; len(todo) > 0 && seen < maxCancelTree; {
		kids, err := g.store.Children(ctx, todo[0], maxCancelTree)
		if err != nil {
			return err
		}
		todo = todo[1:]
		for _, k := range kids {
			seen++
			if !k.Status.Terminal() {
				if err := g.cancelOne(ctx, ws, actor, k.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			todo = append(todo, k.ID)
		}
	}
	return nil
}

func (g *Gateway) cancelOne(ctx context.Context, ws, actor, id string) error {
	res, err := g.store.Cancel(ctx, ws, id, g.now())
	if err != nil {
		return err
	}
	if res != store.CancelAlreadyEnded {
		g.auditAs(ctx, ws, actor, "job.cancel", id)
	}
	switch res {
	case store.CancelRequested:
		return g.rdb.Publish(ctx, queue.ChannelCancel, id).Err()
	case store.CancelDone:
		_ = queue.Notify(ctx, g.rdb, queue.ChannelScheduler)
	}
	return nil
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
func redactSpec(s *api.JobSpec) {
	if s.Notify != nil && s.Notify.Secret != "" {
		n := *s.Notify
		n.Secret = "***"
		s.Notify = &n
	}
}

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
		out.Workers = append(out.Workers, workerView(w, g.sched.workerState(w, now)))
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
