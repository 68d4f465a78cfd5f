package gateway

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// experimentsScanCap bounds how many of an experiment's jobs are read to sort
// them by a metric.
const experimentsScanCap = 10_000

// defaultExperiment is the experiment jobs get when they name none; to
// MLflow it is experiment "0".
const defaultExperiment = "default"

// experimentActivity is when experiment name of ws last got a job: zero for
// the default experiment before its first job (it always exists), a
// not_found error for an experiment ws does not have.
func (g *Gateway) experimentActivity(ctx context.Context, ws, name string) (time.Time, error) {
	if !nameRE.MatchString(name) {
		return time.Time{}, api.Errorf(api.CodeNotFound, "no experiment %q", name)
	}
	last, err := g.store.ExperimentActivity(ctx, ws, name)
	switch {
	case errors.Is(err, store.ErrNotFound) && name == defaultExperiment:
		return time.Time{}, nil
	case errors.Is(err, store.ErrNotFound):
		return time.Time{}, api.Errorf(api.CodeNotFound, "no experiment %q", name)
	}
	return last, err
}

// createExperiment registers experiment name in p's workspace before it has
// jobs (MLflow's clients create experiments first); false when it exists.
func (g *Gateway) createExperiment(ctx context.Context, p principal, name string) (bool, error) {
	if !nameRE.MatchString(name) {
		return false, api.Errorf(api.CodeInvalid, "experiment name %q: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	created, err := g.store.CreateExperiment(ctx, p.Workspace, name, g.now())
	if err != nil || !created {
		return false, err
	}
	g.auditAs(ctx, p.Workspace, p.Actor, "experiment.create", name)
	return true, nil
}

func (g *Gateway) listExperiments(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	exps, err := g.store.Experiments(ctx, ws)
	if err != nil {
		return err
	}
	out := make([]api.Experiment, 0, len(exps))
	for name, last := range exps {
		e := api.Experiment{Name: name}
		e.LastActivity, _ = time.Parse(time.RFC3339Nano, last)
		if e.JobCount, err = g.store.ExperimentJobCount(ctx, ws, name); err != nil {
			return err
		}
		out = append(out, e)
	}
	// Most recently active first.
	slices.SortFunc(out, func(a, b api.Experiment) int {
		return cmp.Or(b.LastActivity.Compare(a.LastActivity), strings.Compare(a.Name, b.Name))
	})
	return c.JSON(http.StatusOK, api.ExperimentList{Experiments: out})
}

// experimentJobs is the "which run was best" view: the experiment's jobs with
// their status and last metric values, newest first, or sorted by a metric
// with ?sort=accuracy (ascending) or ?sort=-accuracy (descending); jobs
// without that metric come last.
func (g *Gateway) experimentJobs(c echo.Context) error {
	ctx := c.Request().Context()
	ws, name := principalOf(c).Workspace, c.Param("name")
	if !nameRE.MatchString(name) {
		return api.Errorf(api.CodeNotFound, "no experiment %q", name)
	}
	limit := 100
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return api.Errorf(api.CodeBadRequest, "limit must be an integer between 1 and 1000")
		}
		limit = n
	}
	sortBy := c.QueryParam("sort")
	desc := strings.HasPrefix(sortBy, "-")
	metric := strings.TrimPrefix(sortBy, "-")
	if sortBy != "" && !store.ValidMetricName(metric) {
		return api.Errorf(api.CodeBadRequest, "sort must be a metric name, with - in front for descending (e.g. -accuracy)")
	}
	exps, err := g.store.Experiments(ctx, ws)
	if err != nil {
		return err
	}
	if _, ok := exps[name]; !ok {
		return api.Errorf(api.CodeNotFound, "no experiment %q", name)
	}
	var jobs []api.Job
	cursor := ""
	for len(jobs) < experimentsScanCap {
		page, next, err := g.store.ListJobs(ctx, ws, store.ListFilter{Experiment: name, Limit: 500, Cursor: cursor})
		if err != nil {
			return err
		}
		jobs = append(jobs, page...)
		if next == "" || (metric == "" && len(jobs) >= limit) {
			break
		}
		cursor = next
	}
	if metric != "" {
		slices.SortStableFunc(jobs, func(a, b api.Job) int {
			av, aok := a.Metrics[metric]
			bv, bok := b.Metrics[metric]
			switch {
			case !aok && !bok:
				return 0
			case !aok:
				return 1
			case !bok:
				return -1
			case desc:
				return cmp.Compare(bv, av)
			}
			return cmp.Compare(av, bv)
		})
	}
	jobs = jobs[:min(limit, len(jobs))]
	// Params too, so that runs compare side by side (the portal's table).
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	params, err := g.store.ParamsOf(ctx, ids)
	if err != nil {
		return err
	}
	for i := range jobs {
		redactSpec(&jobs[i].Spec)
		jobs[i].Params = params[jobs[i].ID]
	}
	return c.JSON(http.StatusOK, api.ExperimentJobs{Experiment: name, Jobs: jobs})
}
