package client

import (
	"context"
	"net/http"

	"github.com/jobgate/jobgate/api"
)

// Detail returns the job with what its record does not hold: where it
// stands in the queue, how its earlier attempts ended and its completion
// callbacks (GET /v1/jobs/{id}).
func (c *Client) Detail(ctx context.Context, id string) (*api.JobDetail, error) {
	p, err := jobPath(id, "")
	if err != nil {
		return nil, err
	}
	var d api.JobDetail
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Attempts returns how the job's ended attempts ended, oldest first: the
// current attempt is not among them until it ends.
func (c *Client) Attempts(ctx context.Context, id string) ([]api.Attempt, error) {
	d, err := c.Detail(ctx, id)
	if err != nil {
		return nil, err
	}
	return d.Attempts, nil
}

// Notifications returns the delivery attempts of the job's completion
// callback (spec.notify), oldest first.
func (c *Client) Notifications(ctx context.Context, id string) ([]api.Notification, error) {
	d, err := c.Detail(ctx, id)
	if err != nil {
		return nil, err
	}
	return d.Notifications, nil
}

// Workers lists the registered workers (GET /v1/workers). To a workspace's
// token a worker shows only that workspace's jobs.
func (c *Client) Workers(ctx context.Context) ([]api.Worker, error) {
	var l api.WorkerList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/workers", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Workers, nil
}
