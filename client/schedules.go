package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jobgate/jobgate/api"
)

// ScheduleRequest is the body of POST /v1/schedules. Empty fields take the
// gateway's defaults: time zone UTC, concurrency policy Allow, no starting
// deadline.
type ScheduleRequest struct {
	Name                    string      `json:"name"`
	Cron                    string      `json:"cron"`
	Timezone                string      `json:"timezone,omitempty"`
	ConcurrencyPolicy       string      `json:"concurrency_policy,omitempty"`
	StartingDeadlineSeconds int         `json:"starting_deadline_seconds,omitempty"`
	Job                     api.JobSpec `json:"job"`
}

// CreateSchedule creates a cron schedule (POST /v1/schedules).
func (c *Client) CreateSchedule(ctx context.Context, req ScheduleRequest) (*api.Schedule, error) {
	var s api.Schedule
	if err := c.doJSON(ctx, http.MethodPost, "/v1/schedules", nil, nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Schedules lists the workspace's schedules, sorted by name
// (GET /v1/schedules).
func (c *Client) Schedules(ctx context.Context) ([]api.Schedule, error) {
	var l api.ScheduleList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/schedules", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Schedules, nil
}

// Schedule returns schedule name (GET /v1/schedules/{name}).
func (c *Client) Schedule(ctx context.Context, name string) (*api.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodGet, name, "", nil)
}

// UpdateSchedule changes schedule name (PATCH /v1/schedules/{name}): each
// field set in p replaces the schedule's.
func (c *Client) UpdateSchedule(ctx context.Context, name string, p api.SchedulePatch) (*api.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPatch, name, "", p)
}

// PauseSchedule stops schedule name from firing
// (POST /v1/schedules/{name}/pause); ticks due while paused never fire.
func (c *Client) PauseSchedule(ctx context.Context, name string) (*api.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPost, name, "/pause", nil)
}

// ResumeSchedule lets a paused schedule fire again from its next tick
// (POST /v1/schedules/{name}/resume).
func (c *Client) ResumeSchedule(ctx context.Context, name string) (*api.Schedule, error) {
	return c.scheduleCall(ctx, http.MethodPost, name, "/resume", nil)
}

// RunSchedule fires schedule name now, paused or not, and returns the job it
// started (POST /v1/schedules/{name}/run). Under concurrency policy Forbid
// while its previous job runs it is a 409.
func (c *Client) RunSchedule(ctx context.Context, name string) (*api.Job, error) {
	p, err := schedulePath(name, "/run")
	if err != nil {
		return nil, err
	}
	var j api.Job
	if err := c.doJSON(ctx, http.MethodPost, p, nil, nil, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// ScheduleHistory lists schedule name's recent firings, newest first
// (GET /v1/schedules/{name}/history).
func (c *Client) ScheduleHistory(ctx context.Context, name string) ([]api.ScheduleRun, error) {
	p, err := schedulePath(name, "/history")
	if err != nil {
		return nil, err
	}
	var h api.ScheduleHistory
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &h); err != nil {
		return nil, err
	}
	return h.History, nil
}

// DeleteSchedule removes schedule name (DELETE /v1/schedules/{name}); jobs
// it started are left as they are.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	p, err := schedulePath(name, "")
	if err != nil {
		return err
	}
	return c.delete(ctx, p)
}

func (c *Client) scheduleCall(ctx context.Context, method, name, suffix string, in any) (*api.Schedule, error) {
	p, err := schedulePath(name, suffix)
	if err != nil {
		return nil, err
	}
	var s api.Schedule
	if err := c.doJSON(ctx, method, p, nil, nil, in, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func schedulePath(name, suffix string) (string, error) {
	if name == "" {
		return "", errors.New("schedule name is empty")
	}
	return "/v1/schedules/" + url.PathEscape(name) + suffix, nil
}

// Queue returns the jobs that wait, in the order the scheduler considers
// them, each with why it waits (GET /v1/queue); limit 0 is the gateway's
// default.
func (c *Client) Queue(ctx context.Context, limit int) (*api.Queue, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.Queue
	if err := c.doJSON(ctx, http.MethodGet, "/v1/queue", q, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
