package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Tracking: what a job (or a tracked run) records about itself: metrics,
// params and tags, and for tracked runs their start and end. The functions
// here are the tracking code; the REST handlers below and the MLflow dialect
// (mlflow.go, which translates MLflow's requests and answers onto them) both
// call them. They take the caller's principal, not its HTTP request, and
// return an *api.Error for what the caller got wrong.

// maxMetricsPerPost bounds one POST /v1/jobs/{id}/metrics.
const maxMetricsPerPost = 10_000

// trackedJob is job id in p's workspace, and for a job token in its tree;
// store.ErrNotFound when there is none.
func (g *Gateway) trackedJob(ctx context.Context, p principal, id string) (*api.Job, error) {
	j, err := g.store.GetJob(ctx, p.Workspace, id)
	if err != nil {
		return nil, err
	}
	if err := g.checkJobTree(ctx, p, j.ID); err != nil {
		return nil, err
	}
	return j, nil
}

// runData is what job id recorded: each metric's latest point (the one at
// its highest step), its params and its tags.
func (g *Gateway) runData(ctx context.Context, id string) (latest map[string]store.MetricPoint, params, tags map[string]string, err error) {
	if latest, err = g.store.LatestPoints(ctx, id); err != nil {
		return nil, nil, nil, err
	}
	params, tags, err = g.store.ParamsAndTags(ctx, id)
	return latest, params, tags, err
}

// outputsFolder is where job id's outputs are, as the job sees them: for a
// host process the folder its worker recorded, "" when none is known.
func (g *Gateway) outputsFolder(ctx context.Context, j *api.Job) string {
	if j.Spec.Mode == api.ModeContainer {
		return "/outputs"
	}
	return g.store.OutputsPath(ctx, j.ID)
}

// startRun records a tracked run for p: a job record jobgate does not
// execute, running from started until endRun ends it. A parent (spec's
// ParentID) must be in p's reach and not canceled: a canceled parent's
// children were canceled with it, and a new one would never be.
func (g *Gateway) startRun(ctx context.Context, p principal, spec api.JobSpec, started time.Time) (*api.Job, error) {
	if spec.ParentID != "" {
		parent, err := g.trackedJob(ctx, p, spec.ParentID)
		if err != nil {
			return nil, err
		}
		if parent.Status == api.StatusCanceled {
			return nil, api.Errorf(api.CodeConflict, "parent run %s was canceled; it takes no new runs", parent.ID)
		}
	}
	j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: p.Workspace, Name: spec.Name, Experiment: spec.Experiment,
		Status: api.StatusRunning, Attempt: 1, CreatedAt: started, Spec: spec}
	if err := g.store.CreateJob(ctx, j); err != nil {
		return nil, err
	}
	g.auditAs(ctx, p.Workspace, p.Actor, "run.create", j.ID)
	return g.store.GetJob(ctx, p.Workspace, j.ID)
}

// endRun ends j, a tracked run that is running, with status (which jobs run
// by workers never get from here), and returns it as it is now. A run that
// is not tracked, or no longer running, is returned as it is: a job jobgate
// runs ends when its process does.
func (g *Gateway) endRun(ctx context.Context, j *api.Job, status api.Status, reason api.Reason) (*api.Job, error) {
	if j.Spec.Mode != api.ModeTracked || j.Status != api.StatusRunning {
		return j, nil
	}
	o := store.NewOutcome(status, reason)
	o.StartedAt = j.StartedAt
	if err := g.store.Finish(ctx, j.Workspace, j.ID, 1, o, g.now()); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	return g.store.GetJob(ctx, j.Workspace, j.ID)
}

// postMetrics serves POST /v1/jobs/{id}/metrics: points a job reports through
// the API instead of its stdout (the job's own token may call it).
func (g *Gateway) postMetrics(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.trackedJob(ctx, principalOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	// api.MetricsInput, with what may be missing or malformed left for the
	// checks below, which name the field.
	var in struct {
		Metrics []struct {
			Name      string   `json:"name"`
			Value     *float64 `json:"value"`
			Step      *int64   `json:"step"`
			Timestamp *string  `json:"timestamp"`
		} `json:"metrics"`
	}
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if len(in.Metrics) == 0 || len(in.Metrics) > maxMetricsPerPost {
		return invalid("metrics: send 1 to %d points, not %d", maxMetricsPerPost, len(in.Metrics))
	}
	now := g.now().UTC()
	pts := make([]store.MetricPoint, len(in.Metrics))
	for i, m := range in.Metrics {
		if m.Value == nil {
			return invalid("metrics[%d].value is required", i)
		}
		var ts *time.Time
		if m.Timestamp != nil {
			t, err := time.Parse(time.RFC3339Nano, *m.Timestamp)
			if err != nil {
				return invalid("metrics[%d].timestamp %q must be RFC 3339, e.g. 2026-01-02T03:04:05Z", i, *m.Timestamp)
			}
			ts = &t
		}
		p, err := metricPoint(m.Name, *m.Value, m.Step, ts, now)
		if err != nil {
			return invalid("metrics[%d].%s", i, err)
		}
		pts[i] = p
	}
	if err := g.logMetrics(ctx, j.ID, pts); err != nil {
		return err
	}
	// A sweep's trial is judged as its point arrives.
	if err := g.observeTrial(ctx, j); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.MetricsRecorded{Recorded: len(pts)})
}

// metricPoint checks one reported point; the error starts with the field.
func metricPoint(name string, value float64, step *int64, ts *time.Time, now time.Time) (store.MetricPoint, error) {
	p := store.MetricPoint{Name: name, Value: value, Step: store.NextStep, Time: now}
	switch {
	case !store.ValidMetricName(name):
		return p, fmt.Errorf("name: %q is not a metric name (a letter or _, then up to 127 letters, digits and _ . - /)", name)
	case math.IsNaN(value) || math.IsInf(value, 0):
		return p, fmt.Errorf("value: must be a finite number")
	}
	if step != nil {
		if *step < 0 || *step > store.MaxMetricStep {
			return p, fmt.Errorf("step: %d is out of range [0, 2^53]", *step)
		}
		p.Step = *step
	}
	if ts != nil && !ts.IsZero() {
		p.Time = ts.UTC()
	}
	return p, nil
}

// logMetrics stores pts; the name limit is the client's problem (422).
func (g *Gateway) logMetrics(ctx context.Context, id string, pts []store.MetricPoint) error {
	err := g.store.AppendMetrics(ctx, id, pts)
	if errors.Is(err, store.ErrMetricLimit) {
		return refuse(invalid("metrics: a job may have at most %d metric names; points of new names were dropped", store.MaxMetricNames),
			fmt.Sprintf("a run may have at most %d metric names; points of new names were dropped", store.MaxMetricNames))
	}
	return err
}

// postParams serves POST /v1/jobs/{id}/params: {"params": {"lr": "0.01"}}.
// A param is logged once; the same value again is fine, another is a 409.
func (g *Gateway) postParams(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.trackedJob(ctx, principalOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	var in api.ParamsInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := g.logParams(ctx, j.ID, in.Params); err != nil {
		return err
	}
	return g.getJob(c)
}

// logParams stores params; a param that changes is a 409, a bad key or value
// and too many params a 422.
func (g *Gateway) logParams(ctx context.Context, id string, params map[string]string) error {
	err := g.store.SetParams(ctx, id, params)
	switch {
	case errors.Is(err, store.ErrParamChanged):
		return refuse(api.Errorf(api.CodeConflict, "params: %v: a param keeps its first value", err), err.Error())
	case errors.Is(err, store.ErrTooMany):
		return refuse(invalid("params: %v", err), err.Error())
	case isKVError(err):
		return refuse(invalid("params: %v", err), err.Error())
	}
	return err
}

// postTags serves POST /v1/jobs/{id}/tags: {"tags": {"stage": "tuned"}};
// a tag's value may change.
func (g *Gateway) postTags(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.trackedJob(ctx, principalOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	var in api.TagsInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := g.setTags(ctx, j.ID, in.Tags); err != nil {
		return err
	}
	return g.getJob(c)
}

// setTags stores tags; a bad key or value and too many tags are a 422.
func (g *Gateway) setTags(ctx context.Context, id string, tags map[string]string) error {
	err := g.store.SetTags(ctx, id, tags)
	if err != nil && (errors.Is(err, store.ErrTooMany) || isKVError(err)) {
		return refuse(invalid("tags: %v", err), err.Error())
	}
	return err
}

// refusal is the tracking code's refusal of what its caller sent: the
// *api.Error the REST API answers (what errors.As finds), and the words an
// MLflow server answers the same with, which the MLflow dialect uses
// (mlflowInvalidFrom).
type refusal struct {
	err    *api.Error
	mlflow string
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(e *api.Error, mlflow string) error { return &refusal{err: e, mlflow: mlflow} }

// isKVError tells the store's validation errors (bad key or value) from
// Redis failures.
func isKVError(err error) bool {
	var kv *store.KVError
	return errors.As(err, &kv)
}
