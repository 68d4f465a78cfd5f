package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/jobgate/jobgate/api"
)

// TriggerRequest is the body of POST /v1/triggers.
type TriggerRequest struct {
	Name string `json:"name"`
	// Provider is "github" or "standard" (Standard Webhooks).
	Provider string `json:"provider"`
	// Secret signs deliveries: 16+ bytes for GitHub, a whsec_ secret for
	// Standard Webhooks. The API never shows it again.
	Secret string `json:"secret"`
	// PreviousSecret is accepted too while the sender moves to Secret.
	PreviousSecret string            `json:"previous_secret,omitempty"`
	Filter         api.TriggerFilter `json:"filter"`
	// Job is the template each accepted delivery submits.
	Job api.JobSpec `json:"job"`
}

// CreateTrigger creates a webhook trigger (POST /v1/triggers; admin scope).
// Deliveries go to the answer's HookURL on the gateway.
func (c *Client) CreateTrigger(ctx context.Context, req TriggerRequest) (*api.Trigger, error) {
	var t api.Trigger
	if err := c.doJSON(ctx, http.MethodPost, "/v1/triggers", nil, nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Triggers lists the workspace's triggers, sorted by name (GET /v1/triggers).
func (c *Client) Triggers(ctx context.Context) ([]api.Trigger, error) {
	var l api.TriggerList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/triggers", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Triggers, nil
}

// Trigger returns trigger name (GET /v1/triggers/{name}).
func (c *Client) Trigger(ctx context.Context, name string) (*api.Trigger, error) {
	p, err := triggerPath(name, "")
	if err != nil {
		return nil, err
	}
	var t api.Trigger
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// UpdateTrigger changes trigger name (PATCH /v1/triggers/{name}; admin
// scope): each field set in p replaces the trigger's. Its hook URL stays.
func (c *Client) UpdateTrigger(ctx context.Context, name string, p api.TriggerPatch) (*api.Trigger, error) {
	path, err := triggerPath(name, "")
	if err != nil {
		return nil, err
	}
	var t api.Trigger
	if err := c.doJSON(ctx, http.MethodPatch, path, nil, nil, p, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTrigger removes trigger name (DELETE /v1/triggers/{name}; admin
// scope); deliveries to its hook URL are 404 from then on.
func (c *Client) DeleteTrigger(ctx context.Context, name string) error {
	p, err := triggerPath(name, "")
	if err != nil {
		return err
	}
	return c.delete(ctx, p)
}

// TriggerDeliveries lists the deliveries trigger name received, newest
// first (GET /v1/triggers/{name}/deliveries).
func (c *Client) TriggerDeliveries(ctx context.Context, name string) ([]api.Delivery, error) {
	p, err := triggerPath(name, "/deliveries")
	if err != nil {
		return nil, err
	}
	var l api.DeliveryList
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Deliveries, nil
}

func triggerPath(name, suffix string) (string, error) {
	if name == "" {
		return "", errors.New("trigger name is empty")
	}
	return "/v1/triggers/" + url.PathEscape(name) + suffix, nil
}
