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

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
	"github.com/jobgate/jobgate/internal/tmpl"
)

// A sweep (issue 17) is a tracked parent job, whose ID it shares, and a
// record in Redis (store.SweepRecord); its trials are the parent's child
// jobs, so canceling the sweep cancels them all. The sweep advances
// (reconcileSweep) when it is created, read, canceled and when one of its
// trials reports a metric point, which is also when the early termination
// rule is applied (observeTrial).

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
	seed := rand.Int64()
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
	first, err := renderTrial(spec, "", 0, params)
	if err != nil {
		return err
	}
	if err := g.jobs.Validate(ctx, p.Workspace, &first); err != nil {
		return inTrial(err)
	}
	now := g.now().UTC()
	name := cmp.Or(spec.Name, "sweep")
	parent, err := g.startRun(ctx, p, api.JobSpec{Name: name, Experiment: cmp.Or(spec.Experiment, spec.Trial.Experiment),
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
	cur, err := g.reconcileSweep(ctx, p.Workspace, rec.ID)
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

// inTrial says that a refused job spec is the sweep's trial template.
func inTrial(err error) error {
	var je *job.Error
	if errors.As(err, &je) {
		return &job.Error{Code: je.Code, Field: strings.TrimSuffix("trial."+je.Field, "."), Message: "trial: " + je.Message}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return api.Errorf(ae.Code, "trial: %s", ae.Message)
	}
	return err
}

// renderTrial is trial index's job: the template with its parameters in
// {{ .params.NAME }} of the command and env, a child of the sweep.
func renderTrial(spec api.SweepSpec, sweepID string, index int, params map[string]string) (api.JobSpec, error) {
	js := spec.Trial
	data := map[string]any{"params": toAny(params)}
	var err error
	if js.Command, err = tmpl.RenderArgs(js.Command, data); err != nil {
		return js, specErr("trial.command: %v", err)
	}
	if js.Env != nil {
		if js.Env, err = tmpl.RenderMap(js.Env, data); err != nil {
			return js, specErr("trial.env: %v", err)
		}
	}
	js.ParentID = sweepID
	js.Experiment = cmp.Or(js.Experiment, spec.Experiment)
	js.Name = fmt.Sprintf("%s-trial-%d", cmp.Or(js.Name, spec.Name, "sweep"), index)
	return js, nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// trialKey is the Idempotency-Key trial index of a sweep is made under: a
// gateway that goes on with a sweep another one left finds its trials
// rather than making them twice.
func trialKey(sweepID string, index int) string {
	return "sweep-" + sweepID + "-trial-" + strconv.Itoa(index)
}

// reconcileSweep brings sweep id to where it should be: trials made up to
// max_concurrent_trials running and max_total_trials in all, the running
// ones canceled once timeout_seconds passed, and the sweep ended when no
// trial runs and none is left to make.
func (g *Gateway) reconcileSweep(ctx context.Context, ws, id string) (*store.SweepRecord, error) {
	return g.store.UpdateSweep(ctx, ws, id, func(rec *store.SweepRecord) (bool, error) {
		if rec.Status != api.SweepRunning {
			return false, nil
		}
		smp, err := sweep.NewSampler(rec.Spec, rec.Seed)
		if err != nil {
			return false, err
		}
		actor := "sweep:" + rec.ID
		now := g.now().UTC()
		timedOut := rec.Spec.Limits.TimeoutSeconds > 0 &&
			now.Sub(rec.CreatedAt).Seconds() >= float64(rec.Spec.Limits.TimeoutSeconds)
		changed := false
		active, won := 0, false
		for i := range rec.Trials {
			t := &rec.Trials[i]
			if t.JobID == "" {
				continue
			}
			j, err := g.store.GetJob(ctx, ws, t.JobID)
			if err != nil {
				return false, err
			}
			switch {
			case !j.Status.Terminal() && timedOut:
				if t.Stop == nil {
					t.Stop = &api.Reason{Code: api.ReasonTimeout, Detail: fmt.Sprintf("the sweep's timeout_seconds %d passed", rec.Spec.Limits.TimeoutSeconds)}
					changed = true
				}
				if err := g.jobs.Cancel(ctx, ws, actor, t.JobID); err != nil && !errors.Is(err, store.ErrNotFound) {
					return false, err
				}
				active++
			case !j.Status.Terminal():
				active++
			case j.Status == api.StatusSucceeded || t.Stop != nil && t.Stop.Code == api.ReasonEarlyTerminated:
				won = true
			}
		}
		for !timedOut && active < rec.Spec.Limits.MaxConcurrentTrials && rec.Next < smp.Size() {
			i := rec.Next
			params, err := smp.Trial(i)
			if err != nil {
				return false, err
			}
			t := store.SweepTrialState{Index: i, Params: params}
			js, err := renderTrial(rec.Spec, rec.ID, i, params)
			if err == nil {
				var res job.Result
				res, err = g.jobs.Submit(ctx, job.Request{Workspace: ws, Actor: actor, Spec: js, IdempotencyKey: trialKey(rec.ID, i)})
				if err == nil {
					t.JobID = res.Job.ID
					if err := g.store.SetParams(ctx, t.JobID, params); err != nil {
						return false, err
					}
					active++
				}
			}
			var je *job.Error
			var ae *api.Error
			switch {
			case errors.As(err, &je), errors.As(err, &ae):
				// A refused trial counts as failed; the sweep goes on.
				t.Stop = &api.Reason{Code: api.ReasonStartFailed, Detail: inTrial(err).Error()}
			case err != nil:
				return false, err
			}
			rec.Trials = append(rec.Trials, t)
			rec.Next++
			changed = true
		}
		if active == 0 && (timedOut || rec.Next >= smp.Size()) {
			rec.Status = api.SweepFailed
			status := api.StatusFailed
			if won {
				rec.Status, status = api.SweepSucceeded, api.StatusSucceeded
			}
			rec.EndedAt = &now
			if parent, err := g.store.GetJob(ctx, ws, rec.ID); err == nil {
				if _, err := g.endRun(ctx, parent, status, api.Reason{}); err != nil {
					return false, err
				}
			}
			changed = true
		}
		return changed, nil
	})
}

// observeTrial applies j's sweep's early termination rule to j, a job whose
// metric points names just arrived, and goes on with the sweep. A job that
// is no sweep's trial is left alone.
func (g *Gateway) observeTrial(ctx context.Context, j *api.Job, names []string) error {
	if j.Spec.ParentID == "" || j.Status.Terminal() {
		return nil
	}
	rec, err := g.store.GetSweep(ctx, j.Workspace, j.Spec.ParentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Status != api.SweepRunning || !slices.Contains(names, rec.Spec.Objective.Metric) {
		return nil
	}
	series, err := g.trialSeries(ctx, rec)
	if err != nil {
		return err
	}
	index := slices.IndexFunc(rec.Trials, func(t store.SweepTrialState) bool { return t.JobID == j.ID })
	if index < 0 {
		return nil
	}
	d := sweep.Decide(rec.Spec.EarlyTermination, rec.Spec.Objective.Goal, rec.Trials[index].Index, series)
	if d.Stop {
		_, err := g.store.UpdateSweep(ctx, j.Workspace, rec.ID, func(r *store.SweepRecord) (bool, error) {
			for i := range r.Trials {
				if r.Trials[i].JobID == j.ID && r.Trials[i].Stop == nil {
					r.Trials[i].Stop = &api.Reason{Code: api.ReasonEarlyTerminated, Detail: d.Detail}
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return err
		}
		if err := g.jobs.Cancel(ctx, j.Workspace, "sweep:"+rec.ID, j.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	_, err = g.reconcileSweep(ctx, j.Workspace, rec.ID)
	return err
}

// trialSeries are the objective's points of every trial of rec, by index.
func (g *Gateway) trialSeries(ctx context.Context, rec *store.SweepRecord) (sweep.Series, error) {
	series := sweep.Series{}
	for _, t := range rec.Trials {
		if t.JobID == "" {
			continue
		}
		m, err := g.store.Metrics(ctx, t.JobID, rec.Spec.Objective.Metric)
		if err != nil {
			return nil, err
		}
		pts := m[rec.Spec.Objective.Metric]
		if len(pts) == 0 {
			continue
		}
		vals := make([]float64, len(pts))
		for i, p := range pts {
			vals[i] = p.Value
		}
		series[t.Index] = vals
	}
	return series, nil
}

// sweepView is GET /v1/sweeps/{id}'s answer for rec.
func (g *Gateway) sweepView(ctx context.Context, rec *store.SweepRecord) (api.Sweep, error) {
	v := api.Sweep{ID: rec.ID, Status: rec.Status, Spec: rec.Spec, CreatedAt: rec.CreatedAt, EndedAt: rec.EndedAt,
		Seed: rec.Seed, Trials: make([]api.SweepTrial, 0, len(rec.Trials))}
	redactSpec(&v.Spec.Trial)
	series, err := g.trialSeries(ctx, rec)
	if err != nil {
		return v, err
	}
	goal := rec.Spec.Objective.Goal
	for _, t := range rec.Trials {
		st := api.SweepTrial{Index: t.Index, JobID: t.JobID, Params: maps.Clone(t.Params), State: api.StatusFailed, Reason: t.Stop}
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
	sortTrials(v.Trials, v.Spec.Objective.Goal)
	return c.JSON(http.StatusOK, api.SweepTrials{Trials: v.Trials})
}

// sortTrials orders trials by their best objective, best first; those that
// reported none go last, in index order.
func sortTrials(trials []api.SweepTrial, goal api.Goal) {
	slices.SortStableFunc(trials, func(a, b api.SweepTrial) int {
		switch {
		case a.BestMetric == nil || b.BestMetric == nil:
			if (a.BestMetric == nil) != (b.BestMetric == nil) {
				if a.BestMetric == nil {
					return 1
				}
				return -1
			}
		case goal.Better(*a.BestMetric, *b.BestMetric):
			return -1
		case goal.Better(*b.BestMetric, *a.BestMetric):
			return 1
		}
		return cmp.Compare(a.Index, b.Index)
	})
}

func (g *Gateway) currentSweep(c echo.Context) (api.Sweep, error) {
	ctx := c.Request().Context()
	rec, err := g.reconcileSweep(ctx, principalOf(c).Workspace, c.Param("id"))
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
