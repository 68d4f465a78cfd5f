package gateway

import (
	"cmp"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

const (
	defaultQueueLimit = 100
	maxQueueLimit     = 1000
)

// getQueue is GET /v1/queue: the caller's workspace's waiting jobs (every
// workspace's for the system token) in the scheduler's order, each with
// the reason it waits. Position counts only the jobs the caller sees, so
// another workspace's queue does not show through it.
func (g *Gateway) getQueue(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		if k != "limit" {
			return api.Errorf(api.CodeBadRequest, "unknown query parameter %q (use limit)", k)
		}
	}
	limit := defaultQueueLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxQueueLimit {
			return api.Errorf(api.CodeInvalid, "limit must be an integer between 1 and %d", maxQueueLimit)
		}
		limit = n
	}
	p := principalOf(c)
	ws := p.Workspace
	if p.System {
		ws = ""
	}
	jobs, total, err := g.store.QueuedJobs(c.Request().Context(), ws, limit)
	if err != nil {
		return err
	}
	out := api.Queue{Pending: make([]api.QueuedJob, 0, len(jobs)), Total: total}
	for i, j := range jobs {
		out.Pending = append(out.Pending, api.QueuedJob{
			Position: i + 1, ID: j.ID, Name: j.Name, Workspace: j.Workspace, Experiment: j.Experiment,
			Priority: cmp.Or(j.Spec.Priority, api.PriorityNormal), GPUs: j.Spec.Resources.GPUs, GPUModel: j.Spec.Resources.GPUModel,
			CreatedAt: j.CreatedAt, ReasonCode: j.ReasonCode, Reason: j.Reason,
		})
	}
	return c.JSON(http.StatusOK, out)
}
