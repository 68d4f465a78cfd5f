package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/jobgate/jobgate/api"
)

// CreateDeployment deploys a model (POST /v1/deployments; submit scope):
// spec names the model version ("iris:1", "iris@production") or a traffic
// split, the model server's image and command, and replicas or autoscale.
// The deployment controller then starts its replicas; Deployment shows
// how far it got.
func (c *Client) CreateDeployment(ctx context.Context, spec api.DeploymentSpec) (*api.Deployment, error) {
	var d api.Deployment
	if err := c.doJSON(ctx, http.MethodPost, "/v1/deployments", nil, nil, spec, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Deployments returns the workspace's deployments (GET /v1/deployments).
func (c *Client) Deployments(ctx context.Context) ([]api.Deployment, error) {
	var l api.DeploymentList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/deployments", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Deployments, nil
}

// Deployment returns deployment name with its status and replicas
// (GET /v1/deployments/{name}).
func (c *Client) Deployment(ctx context.Context, name string) (*api.Deployment, error) {
	p, err := deploymentPath(name)
	if err != nil {
		return nil, err
	}
	var d api.Deployment
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PatchDeployment changes deployment name (PATCH /v1/deployments/{name};
// submit scope): a new model, traffic, image, command, env or resources is
// rolled out replica by replica; replicas or autoscale only scale.
func (c *Client) PatchDeployment(ctx context.Context, name string, patch api.DeploymentPatch) (*api.Deployment, error) {
	p, err := deploymentPath(name)
	if err != nil {
		return nil, err
	}
	var d api.Deployment
	if err := c.doJSON(ctx, http.MethodPatch, p, nil, nil, patch, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ScaleDeployment sets deployment name to a fixed count of replicas per
// model version (0 stops them all; autoscale is turned off).
func (c *Client) ScaleDeployment(ctx context.Context, name string, replicas int) (*api.Deployment, error) {
	return c.PatchDeployment(ctx, name, api.DeploymentPatch{Replicas: &replicas})
}

// DeleteDeployment deletes deployment name (DELETE /v1/deployments/{name};
// submit scope): its replicas drain and stop, then it is gone. It returns
// the deployment as it stands, status deleting.
func (c *Client) DeleteDeployment(ctx context.Context, name string) (*api.Deployment, error) {
	p, err := deploymentPath(name)
	if err != nil {
		return nil, err
	}
	var d api.Deployment
	if err := c.doJSON(ctx, http.MethodDelete, p, nil, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func deploymentPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("deployment name is empty")
	}
	return "/v1/deployments/" + url.PathEscape(name), nil
}
