package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/jobgate/jobgate/api"
)

// CreateDatastore registers host folder path as datastore name of the
// token's workspace (POST /v1/datastores; admin scope). A workspace admin may
// only register a folder below one of the gateway's datastore roots (403
// otherwise); the system admin token may register any absolute path. A name
// in use is a 409.
func (c *Client) CreateDatastore(ctx context.Context, name, path string) (*api.Datastore, error) {
	var d api.Datastore
	in := map[string]string{"name": name, "path": path}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/datastores", nil, nil, in, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListDatastores returns the workspace's datastores, sorted by name
// (GET /v1/datastores).
func (c *Client) ListDatastores(ctx context.Context) ([]api.Datastore, error) {
	var l api.DatastoreList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/datastores", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Datastores, nil
}

// Datastore returns datastore name (GET /v1/datastores/{name}).
func (c *Client) Datastore(ctx context.Context, name string) (*api.Datastore, error) {
	p, err := datastorePath(name)
	if err != nil {
		return nil, err
	}
	var d api.Datastore
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteDatastore removes datastore name (DELETE /v1/datastores/{name}; admin
// scope); the folder itself is not touched. Jobs that name it and have not
// started yet fail with the reason input_unavailable.
func (c *Client) DeleteDatastore(ctx context.Context, name string) error {
	p, err := datastorePath(name)
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, http.MethodDelete, p, nil, http.Header{"Accept": {"application/json"}}, nil)
	if err != nil {
		return err
	}
	closeBody(resp.Body)
	return nil
}

func datastorePath(name string) (string, error) {
	if name == "" {
		return "", errors.New("datastore name is empty")
	}
	return "/v1/datastores/" + url.PathEscape(name), nil
}
