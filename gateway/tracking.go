package gateway

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// maxMetricsPerPost bounds one POST /v1/jobs/{id}/metrics.
const maxMetricsPerPost = 10_000

// postMetrics serves POST /v1/jobs/{id}/metrics: points a job reports through
// the API instead of its stdout (the job's own token may call it).
func (g *Gateway) postMetrics(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
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
	if err := g.appendMetrics(c, j.ID, pts); err != nil {
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

// appendMetrics stores pts; the name limit is the client's problem (422).
func (g *Gateway) appendMetrics(c echo.Context, id string, pts []store.MetricPoint) error {
	err := g.store.AppendMetrics(c.Request().Context(), id, pts)
	if errors.Is(err, store.ErrMetricLimit) {
		return invalid("metrics: a job may have at most %d metric names; points of new names were dropped", store.MaxMetricNames)
	}
	return err
}

// postParams serves POST /v1/jobs/{id}/params: {"params": {"lr": "0.01"}}.
// A param is logged once; the same value again is fine, another is a 409.
func (g *Gateway) postParams(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	var in api.ParamsInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := g.setParams(c, j.ID, in.Params); err != nil {
		return err
	}
	return g.getJob(c)
}

func (g *Gateway) setParams(c echo.Context, id string, params map[string]string) error {
	err := g.store.SetParams(c.Request().Context(), id, params)
	switch {
	case errors.Is(err, store.ErrParamChanged):
		return api.Errorf(api.CodeConflict, "params: %v: a param keeps its first value", err)
	case errors.Is(err, store.ErrTooMany):
		return invalid("params: %v", err)
	case isKVError(err):
		return invalid("params: %v", err)
	}
	return err
}

// postTags serves POST /v1/jobs/{id}/tags: {"tags": {"stage": "tuned"}};
// a tag's value may change.
func (g *Gateway) postTags(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	var in api.TagsInput
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if err := g.setTags(c, j.ID, in.Tags); err != nil {
		return err
	}
	return g.getJob(c)
}

func (g *Gateway) setTags(c echo.Context, id string, tags map[string]string) error {
	err := g.store.SetTags(c.Request().Context(), id, tags)
	if err != nil && (errors.Is(err, store.ErrTooMany) || isKVError(err)) {
		return invalid("tags: %v", err)
	}
	return err
}

// isKVError tells the store's validation errors (bad key or value) from
// Redis failures.
func isKVError(err error) bool {
	var kv *store.KVError
	return errors.As(err, &kv)
}
