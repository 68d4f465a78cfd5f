package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jobgate/jobgate/api"
)

// CreateSweep starts a hyperparameter sweep (POST /v1/sweeps; submit
// scope): spec's trial job runs once per sampled set of parameters, which
// reach it as {{ .params.NAME }}.
func (c *Client) CreateSweep(ctx context.Context, spec api.SweepSpec) (*api.Sweep, error) {
	var s api.Sweep
	if err := c.doJSON(ctx, http.MethodPost, "/v1/sweeps", nil, nil, spec, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListSweeps returns one page of the workspace's sweeps, newest first,
// without their trials (GET /v1/sweeps): at most limit (0: the gateway's
// default, 50), from cursor, a previous page's NextCursor ("" for the first).
func (c *Client) ListSweeps(ctx context.Context, limit int, cursor string) (*api.SweepList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var l api.SweepList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/sweeps", q, nil, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Sweep returns sweep id: its status, best trial so far and every trial
// (GET /v1/sweeps/{id}).
func (c *Client) Sweep(ctx context.Context, id string) (*api.Sweep, error) {
	p, err := sweepPath(id)
	if err != nil {
		return nil, err
	}
	var s api.Sweep
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SweepTrials returns sweep id's trials, best objective first
// (GET /v1/sweeps/{id}/trials).
func (c *Client) SweepTrials(ctx context.Context, id string) ([]api.SweepTrial, error) {
	p, err := sweepPath(id)
	if err != nil {
		return nil, err
	}
	var t api.SweepTrials
	if err := c.doJSON(ctx, http.MethodGet, p+"/trials", nil, nil, nil, &t); err != nil {
		return nil, err
	}
	return t.Trials, nil
}

// CancelSweep cancels sweep id and every trial still running
// (POST /v1/sweeps/{id}/cancel; submit scope).
func (c *Client) CancelSweep(ctx context.Context, id string) (*api.Sweep, error) {
	p, err := sweepPath(id)
	if err != nil {
		return nil, err
	}
	var s api.Sweep
	if err := c.doJSON(ctx, http.MethodPost, p+"/cancel", nil, nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func sweepPath(id string) (string, error) {
	if id == "" {
		return "", errors.New("sweep id is empty")
	}
	return "/v1/sweeps/" + url.PathEscape(id), nil
}
