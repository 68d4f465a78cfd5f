package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
)

// A sweep (issue 17) is a tracked parent job, whose ID it shares, and a
// record in Redis (store.SweepRecord); its trials are the parent's child
// jobs, so canceling the sweep cancels them all. The controller
// (internal/sweep) runs it: here as it is created and as a trial reports a
// metric point through the API (observeTrial), and in the leader's loop
// (trials that end, points recorded from a job's log). Reads change
// nothing.

// observeTrial judges j's sweep as j's metric points arrive; a job that is
// no sweep's trial is left alone.
func (g *Gateway) observeTrial(ctx context.Context, j *api.Job) error {
	id, err := g.sweeps.TrialOf(ctx, j)
	if err != nil || id == "" {
		return err
	}
	return g.sweeps.Judge(ctx, j.Workspace, id)
}

// createSweep serves POST /v1/sweeps.
func (g *Gateway) createSweep(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	body, err := readBody(c)
	if err != nil {
		return err
	}
	spec, err := api.DecodeSweepSpecJSON(body)
	if err != nil {
		var se *api.SpecError
		if errors.As(err, &se) && se.Syntax {
			return api.Errorf(api.CodeBadRequest, "request body: %s", se.Msg)
		}
		return specErr("%v", err)
	}
	// A picked seed stays below 2^53, so that a client reading JSON numbers
	// as doubles (a browser, jq) shows the seed that reproduces the sweep.
	seed := rand.Int64N(1 << 53)
	if spec.Sampling.Seed != nil {
		seed = *spec.Sampling.Seed
	}
	smp, err := sweep.NewSampler(spec, seed)
	if err != nil {
		return specErr("%v", err)
	}
	// The template is checked as its first trial will run.
	params, err := smp.Trial(0)
	if err != nil {
		return specErr("%v", err)
	}
	first, err := sweep.RenderTrial(spec, "", 0, params)
	if err != nil {
		return err
	}
	if err := g.jobs.Validate(ctx, p.Workspace, &first); err != nil {
		return sweep.InTrial(err)
	}
	now := g.now().UTC()
	name := cmp.Or(spec.Name, "sweep")
	// A sweep and its trials are one experiment (its own name when none is
	// given), so they are compared side by side like any experiment's runs.
	spec.Experiment = cmp.Or(spec.Experiment, spec.Trial.Experiment, name)
	parent, err := g.startRun(ctx, p, api.JobSpec{Name: name, Experiment: spec.Experiment,
		Mode: api.ModeTracked, Command: []string{}}, now)
	if err != nil {
		return err
	}
	rec := store.SweepRecord{ID: parent.ID, Workspace: p.Workspace, Actor: p.Actor, Spec: spec, Seed: seed,
		Status: api.SweepRunning, CreatedAt: now, Trials: []store.SweepTrialState{}}
	if err := g.store.CreateSweep(ctx, rec); err != nil {
		return err
	}
	g.audit(c, p.Workspace, "sweep.create", fmt.Sprintf("%s (%s, %d trials)", rec.ID, spec.Sampling.Type, smp.Size()))
	cur, err := g.sweeps.Reconcile(ctx, p.Workspace, rec.ID)
	if err != nil {
		return err
	}
	v, err := g.sweepView(ctx, cur)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/sweeps/"+rec.ID)
	return c.JSON(http.StatusCreated, v)
}

// sweepView is GET /v1/sweeps/{id}'s answer for rec.
func (g *Gateway) sweepView(ctx context.Context, rec *store.SweepRecord) (api.Sweep, error) {
	v := api.Sweep{ID: rec.ID, Status: rec.Status, Spec: rec.Spec, CreatedAt: rec.CreatedAt, EndedAt: rec.EndedAt,
		Seed: rec.Seed, Trials: make([]api.SweepTrial, 0, len(rec.Trials))}
	redactSpec(&v.Spec.Trial)
	series, err := g.sweeps.Series(ctx, rec)
	if err != nil {
		return v, err
	}
	goal := rec.Spec.Objective.Goal
	for _, t := range rec.Trials {
		st := api.SweepTrial{Index: t.Index, JobID: t.JobID, Params: maps.Clone(t.Params), State: api.StatusFailed, Reason: t.Stop,
			Rung: t.Rung, Segments: slices.Clone(t.Segments)}
		if t.JobID == "" && t.Stop == nil {
			st.State = api.StatusQueued // decided; its job is being made
		}
		if t.JobID != "" {
			j, err := g.store.GetJob(ctx, rec.Workspace, t.JobID)
			if err != nil {
				return v, err
			}
			st.State = j.Status
			if st.Reason == nil && j.Status.Terminal() && j.ReasonCode != "" {
				st.Reason = &api.Reason{Code: j.ReasonCode, Detail: j.Reason}
			}
		}
		if s := series[t.Index]; len(s) > 0 {
			last, best := s[len(s)-1], s[0]
			for _, x := range s {
				if goal.Better(x, best) {
					best = x
				}
			}
			st.Metric, st.BestMetric, st.Step = &last, &best, len(s)
			if v.Best == nil || goal.Better(best, *v.Best.BestMetric) {
				b := st
				v.Best = &b
			}
		}
		v.Trials = append(v.Trials, st)
	}
	return v, nil
}

// listSweeps serves GET /v1/sweeps: a page of the workspace's sweeps,
// newest first, each without its trials (a list reads no trial's job).
func (g *Gateway) listSweeps(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		if k != "limit" && k != "cursor" {
			return api.Errorf(api.CodeBadRequest, "unknown query parameter %q (use limit, cursor)", k)
		}
	}
	cursor, limit := q.Get("cursor"), 50
	if cursor != "" {
		if _, err := ulid.ParseStrict(strings.ToUpper(cursor)); err != nil {
			return api.Errorf(api.CodeBadRequest, "cursor is not one this API returned")
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return api.Errorf(api.CodeBadRequest, "limit must be an integer between 1 and 500")
		}
		limit = n
	}
	recs, next, err := g.store.ListSweeps(c.Request().Context(), principalOf(c).Workspace, cursor, limit)
	if err != nil {
		return err
	}
	out := api.SweepList{Sweeps: make([]api.SweepSummary, 0, len(recs)), NextCursor: next}
	for _, r := range recs {
		sampling := r.Spec.Sampling
		if sampling.Seed == nil {
			seed := r.Seed
			sampling.Seed = &seed
		}
		out.Sweeps = append(out.Sweeps, api.SweepSummary{ID: r.ID, Name: r.Spec.Name, Experiment: r.Spec.Experiment,
			Status: r.Status, Sampling: sampling, Objective: r.Spec.Objective, Trials: len(r.Trials),
			MaxTotalTrials: r.Spec.Limits.MaxTotalTrials, CreatedAt: r.CreatedAt, EndedAt: r.EndedAt})
	}
	return c.JSON(http.StatusOK, out)
}

// getSweep serves GET /v1/sweeps/{id}.
func (g *Gateway) getSweep(c echo.Context) error {
	v, err := g.currentSweep(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// sweepTrials serves GET /v1/sweeps/{id}/trials: best objective first.
func (g *Gateway) sweepTrials(c echo.Context) error {
	v, err := g.currentSweep(c)
	if err != nil {
		return err
	}
	sweep.SortTrials(v.Trials, v.Spec.Objective.Goal)
	return c.JSON(http.StatusOK, api.SweepTrials{Trials: v.Trials})
}

func (g *Gateway) currentSweep(c echo.Context) (api.Sweep, error) {
	ctx := c.Request().Context()
	rec, err := g.store.GetSweep(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return api.Sweep{}, err
	}
	return g.sweepView(ctx, rec)
}

// cancelSweep serves POST /v1/sweeps/{id}/cancel: the sweep ends canceled
// and so does every trial still running (the parent job's tree).
func (g *Gateway) cancelSweep(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	now := g.now().UTC()
	rec, err := g.store.UpdateSweep(ctx, p.Workspace, c.Param("id"), func(r *store.SweepRecord) (bool, error) {
		if r.Status != api.SweepRunning {
			return false, nil
		}
		r.Status, r.EndedAt = api.SweepCanceled, &now
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := g.jobs.Cancel(ctx, p.Workspace, p.Actor, rec.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	g.audit(c, p.Workspace, "sweep.cancel", rec.ID)
	v, err := g.sweepView(ctx, rec)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
