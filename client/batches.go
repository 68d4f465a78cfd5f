package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jobgate/jobgate/api"
)

// BatchOptions are a batch's settings beside its rows.
type BatchOptions struct {
	// ErrorThreshold is how many failed rows are tolerated; default 0.
	ErrorThreshold int
	// MaxConcurrency caps the requests in flight; 0 is the gateway's
	// default (4).
	MaxConcurrency int
	// Priority is the batch job's; "" is low.
	Priority api.Priority
	// TimeoutSeconds bounds one attempt; 0 is the gateway's default.
	TimeoutSeconds int
	// Callback, when set, is called when the batch ends.
	Callback *api.BatchCallback
	// IdempotencyKey, when set, makes the batch once per key.
	IdempotencyKey string
}

// SubmitBatch posts rows (JSON lines, one V2 inference request a line) as
// a batch of deployment name (POST /v1/deployments/{name}/batch). The rows
// are streamed, never read whole.
func (c *Client) SubmitBatch(ctx context.Context, name string, rows io.Reader, o BatchOptions) (*api.BatchAccepted, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	q := url.Values{}
	if o.ErrorThreshold != 0 {
		q.Set("error_threshold", strconv.Itoa(o.ErrorThreshold))
	}
	if o.MaxConcurrency != 0 {
		q.Set("max_concurrency", strconv.Itoa(o.MaxConcurrency))
	}
	if o.Priority != "" {
		q.Set("priority", string(o.Priority))
	}
	if o.TimeoutSeconds != 0 {
		q.Set("timeout_seconds", strconv.Itoa(o.TimeoutSeconds))
	}
	u := c.base + "/v1/deployments/" + url.PathEscape(name) + "/batch"
	if o.Callback != nil {
		q.Set("callback_url", o.Callback.URL)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, rows)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "jobgate-client")
	if o.Callback != nil && o.Callback.Secret != "" {
		req.Header.Set("Jobgate-Callback-Secret", o.Callback.Secret)
	}
	if o.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.IdempotencyKey)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(resp)
	}
	var out api.BatchAccepted
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode batch answer: %w", err)
	}
	return &out, nil
}

// Batch returns batch id (GET /v1/batches/{id}).
func (c *Client) Batch(ctx context.Context, id string) (*api.Batch, error) {
	var b api.Batch
	if err := c.doJSON(ctx, http.MethodGet, "/v1/batches/"+url.PathEscape(id), nil, nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// CancelBatch cancels batch id (POST /v1/batches/{id}/cancel).
func (c *Client) CancelBatch(ctx context.Context, id string) (*api.Batch, error) {
	var b api.Batch
	if err := c.doJSON(ctx, http.MethodPost, "/v1/batches/"+url.PathEscape(id)+"/cancel", nil, nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// BatchResults streams batch id's answers so far: JSON lines in request
// order (GET /v1/batches/{id}/results). The caller closes it.
func (c *Client) BatchResults(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/batches/"+url.PathEscape(id)+"/results", nil, nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
