package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jobgate/jobgate/api"
)

// RegisterModel makes the file or folder at path in job jobID's outputs
// the next version of model name (POST /v1/models; submit scope). The job
// must have succeeded (409 otherwise); the bytes are copied, so what the
// job's outputs become later changes nothing.
func (c *Client) RegisterModel(ctx context.Context, name, jobID, path string) (*api.ModelVersion, error) {
	var mv api.ModelVersion
	in := api.ModelRegister{Name: name, JobID: jobID, Path: path}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/models", nil, nil, in, &mv); err != nil {
		return nil, err
	}
	return &mv, nil
}

// Models returns the workspace's models, sorted by name (GET /v1/models).
func (c *Client) Models(ctx context.Context) ([]api.Model, error) {
	var l api.ModelList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/models", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Models, nil
}

// Model returns model name with its versions and aliases
// (GET /v1/models/{name}).
func (c *Client) Model(ctx context.Context, name string) (*api.Model, error) {
	p, err := modelPath(name)
	if err != nil {
		return nil, err
	}
	var m api.Model
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ModelVersion returns the version ref names: "iris:2" or
// "iris@production" (GET /v1/models/{name}/versions/{version or alias}).
func (c *Client) ModelVersion(ctx context.Context, ref string) (*api.ModelVersion, error) {
	p, err := modelVersionPath(ref)
	if err != nil {
		return nil, err
	}
	var mv api.ModelVersion
	if err := c.doJSON(ctx, http.MethodGet, p, nil, nil, nil, &mv); err != nil {
		return nil, err
	}
	return &mv, nil
}

// DownloadModel streams the bytes of the version ref names
// (GET .../versions/{v}/download): a file version as it is, a folder
// version as a tar of its files. The caller closes it.
func (c *Client) DownloadModel(ctx context.Context, ref string) (io.ReadCloser, error) {
	p, err := modelVersionPath(ref)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, http.MethodGet, p+"/download", nil, http.Header{"Accept": {"*/*"}}, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// SetModelAlias points alias of model name at version (PUT
// /v1/models/{name}/aliases/{alias}; submit scope), moving it if it named
// another version.
func (c *Client) SetModelAlias(ctx context.Context, name, alias string, version int) (*api.ModelAlias, error) {
	p, err := modelPath(name)
	if err != nil {
		return nil, err
	}
	if alias == "" {
		return nil, errors.New("alias is empty")
	}
	var a api.ModelAlias
	if err := c.doJSON(ctx, http.MethodPut, p+"/aliases/"+url.PathEscape(alias), nil, nil, api.ModelAliasSet{Version: version}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteModelAlias removes alias of model name (DELETE
// /v1/models/{name}/aliases/{alias}; submit scope).
func (c *Client) DeleteModelAlias(ctx context.Context, name, alias string) error {
	p, err := modelPath(name)
	if err != nil {
		return err
	}
	return c.delete(ctx, p+"/aliases/"+url.PathEscape(alias))
}

// DeleteModelVersion deletes version of model name and the aliases naming
// it (DELETE /v1/models/{name}/versions/{version}; submit scope); its
// number is never given out again. A version in use is a 409.
func (c *Client) DeleteModelVersion(ctx context.Context, name string, version int) error {
	p, err := modelPath(name)
	if err != nil {
		return err
	}
	return c.delete(ctx, p+"/versions/"+strconv.Itoa(version))
}

// DeleteModel deletes model name with all its versions, their files and
// its aliases (DELETE /v1/models/{name}; submit scope). A version in use
// is a 409, and then nothing is deleted.
func (c *Client) DeleteModel(ctx context.Context, name string) error {
	p, err := modelPath(name)
	if err != nil {
		return err
	}
	return c.delete(ctx, p)
}

func (c *Client) delete(ctx context.Context, p string) error {
	resp, err := c.send(ctx, http.MethodDelete, p, nil, http.Header{"Accept": {"application/json"}}, nil)
	if err != nil {
		return err
	}
	closeBody(resp.Body)
	return nil
}

func modelPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("model name is empty")
	}
	return "/v1/models/" + url.PathEscape(name), nil
}

// modelVersionPath is the versions route of ref ("name:version" or
// "name@alias").
func modelVersionPath(ref string) (string, error) {
	r, err := api.ParseModelRef(ref)
	if err != nil {
		return "", err
	}
	v := r.Alias
	if v == "" {
		v = strconv.Itoa(r.Version)
	}
	p, err := modelPath(r.Name)
	if err != nil {
		return "", err
	}
	return p + "/versions/" + url.PathEscape(v), nil
}
