package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jobgate/jobgate/api"
)

// CreateWorkspace creates a workspace (POST /v1/workspaces; the system admin
// token only) and returns it as stored. A name in use is a 409.
func (c *Client) CreateWorkspace(ctx context.Context, w api.Workspace) (*api.Workspace, error) {
	var out api.Workspace
	if err := c.doJSON(ctx, http.MethodPost, "/v1/workspaces", nil, nil, w, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Workspaces lists the workspaces the token may see, sorted by name
// (GET /v1/workspaces): every one for the system admin token, else its own.
func (c *Client) Workspaces(ctx context.Context) ([]api.Workspace, error) {
	var l api.WorkspaceList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/workspaces", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Workspaces, nil
}

// WorkspacePatch is the body of PATCH /v1/workspaces/{ws}; nil fields are
// left as they are.
type WorkspacePatch struct {
	AllowHostProcess *bool `json:"allow_host_process,omitempty"`
}

// UpdateWorkspace changes workspace ws's system-admin settings
// (PATCH /v1/workspaces/{ws}) and returns it as it is now.
func (c *Client) UpdateWorkspace(ctx context.Context, ws string, p WorkspacePatch) (*api.Workspace, error) {
	path, err := workspacePath(ws, "")
	if err != nil {
		return nil, err
	}
	var out api.Workspace
	if err := c.doJSON(ctx, http.MethodPatch, path, nil, nil, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TokenRequest is the body of POST /v1/workspaces/{ws}/tokens.
type TokenRequest struct {
	Name   string      `json:"name"`
	Scopes []api.Scope `json:"scopes"`
	// ExpiresAt, when set, must be in the future.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateToken makes an API token in workspace ws (POST
// /v1/workspaces/{ws}/tokens; admin scope). The answer's Secret is the
// token itself, shown this once.
func (c *Client) CreateToken(ctx context.Context, ws string, req TokenRequest) (*api.NewToken, error) {
	path, err := workspacePath(ws, "/tokens")
	if err != nil {
		return nil, err
	}
	var out api.NewToken
	if err := c.doJSON(ctx, http.MethodPost, path, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tokens lists workspace ws's tokens, oldest first, without their secrets
// (GET /v1/workspaces/{ws}/tokens; admin scope).
func (c *Client) Tokens(ctx context.Context, ws string) ([]api.Token, error) {
	path, err := workspacePath(ws, "/tokens")
	if err != nil {
		return nil, err
	}
	var l api.TokenList
	if err := c.doJSON(ctx, http.MethodGet, path, nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Tokens, nil
}

// DeleteToken revokes token id of workspace ws
// (DELETE /v1/workspaces/{ws}/tokens/{id}; admin scope).
func (c *Client) DeleteToken(ctx context.Context, ws, id string) error {
	if id == "" {
		return errors.New("token id is empty")
	}
	path, err := workspacePath(ws, "/tokens/"+url.PathEscape(id))
	if err != nil {
		return err
	}
	return c.delete(ctx, path)
}

// PutSecret stores (or replaces) secret name of the token's workspace
// (POST /v1/secrets; admin scope). The value is never shown again.
func (c *Client) PutSecret(ctx context.Context, name, value string) error {
	in := map[string]string{"name": name, "value": value}
	var out api.SecretName
	return c.doJSON(ctx, http.MethodPost, "/v1/secrets", nil, nil, in, &out)
}

// Secrets lists the names of the workspace's secrets, sorted
// (GET /v1/secrets; admin scope).
func (c *Client) Secrets(ctx context.Context) ([]api.SecretName, error) {
	var l api.SecretList
	if err := c.doJSON(ctx, http.MethodGet, "/v1/secrets", nil, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Secrets, nil
}

// DeleteSecret removes secret name (DELETE /v1/secrets/{name}; admin scope).
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("secret name is empty")
	}
	return c.delete(ctx, "/v1/secrets/"+url.PathEscape(name))
}

// Audit returns one page of the workspace's audit log, newest first
// (GET /v1/audit; admin scope); limit 0 is the gateway's default, cursor
// a previous page's NextCursor.
func (c *Client) Audit(ctx context.Context, limit int, cursor string) (*api.AuditPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p api.AuditPage
	if err := c.doJSON(ctx, http.MethodGet, "/v1/audit", q, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func workspacePath(ws, suffix string) (string, error) {
	if ws == "" {
		return "", errors.New("workspace name is empty")
	}
	return "/v1/workspaces/" + url.PathEscape(ws) + suffix, nil
}
