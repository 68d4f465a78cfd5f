package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// jobMetrics serves GET /v1/jobs/{id}/metrics: every point of the job's
// metrics, each metric in step order. ?name=loss (repeatable) keeps only
// those metrics; a name the job has not reported is left out.
func (g *Gateway) jobMetrics(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	for k := range q {
		if k != "name" {
			return api.Errorf(api.CodeBadRequest, "unknown query parameter %q (use name)", k)
		}
	}
	names := q["name"]
	for _, n := range names {
		if !store.ValidMetricName(n) {
			return api.Errorf(api.CodeBadRequest,
				"name %q is not a metric name (a letter or _, then up to 127 letters, digits and _ . - /)", n)
		}
	}
	// Another workspace's job is a 404, as if it did not exist.
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	series, err := g.store.Metrics(ctx, j.ID, names...)
	if err != nil {
		return err
	}
	out := api.JobMetrics{Metrics: make(map[string][]api.MetricPoint, len(series))}
	for name, pts := range series {
		view := make([]api.MetricPoint, len(pts))
		for i, p := range pts {
			view[i] = api.MetricPoint{Step: p.Step, Value: p.Value, Timestamp: p.Time}
		}
		out.Metrics[name] = view
	}
	return c.JSON(http.StatusOK, out)
}
