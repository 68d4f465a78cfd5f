package gateway

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
)

var (
	wsNameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	secretNameRE = job.SecretNameRE
)

const maxSecretBytes = 64 << 10

func invalid(format string, args ...any) *api.Error {
	return api.Errorf(api.CodeInvalid, format, args...)
}

// wsParam is the :ws of the path, as the principal may see it: another
// workspace than its own is 404, as if it did not exist.
func (g *Gateway) wsParam(c echo.Context) (string, error) {
	ws, p := c.Param("ws"), principalOf(c)
	if !p.System && ws != p.Workspace {
		return "", api.Errorf(api.CodeNotFound, "no workspace %q", ws)
	}
	if _, err := g.store.Workspace(c.Request().Context(), ws); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", api.Errorf(api.CodeNotFound, "no workspace %q", ws)
		}
		return "", err
	}
	return ws, nil
}

func (g *Gateway) createWorkspace(c echo.Context) error {
	var w api.Workspace
	if err := decodeBody(c, &w); err != nil {
		return err
	}
	if !wsNameRE.MatchString(w.Name) {
		return invalid("name %q must be 1-63 lower-case letters, digits or '-', starting with a letter or digit", w.Name)
	}
	q := w.Quotas
	if q.MaxRunningJobs < 0 || q.MaxGPUs < 0 || q.RequestsPerSecond < 0 {
		return invalid("quotas must not be negative (0 means unlimited)")
	}
	for i, p := range w.ImageAllowlist {
		if p == "" || strings.ContainsFunc(p, func(r rune) bool { return r == ' ' || unicode.IsControl(r) }) {
			return invalid("image_allowlist[%d] must be a registry/repository prefix like \"localhost/\"", i)
		}
	}
	if !w.CreatedAt.IsZero() {
		return invalid("created_at is set by the server")
	}
	w.CreatedAt = g.now().UTC()
	if err := g.store.CreateWorkspace(c.Request().Context(), w); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Errorf(api.CodeConflict, "workspace %q exists", w.Name)
		}
		return err
	}
	g.audit(c, DefaultWorkspace, "workspace.create", w.Name)
	g.audit(c, w.Name, "workspace.create", w.Name)
	if w.AllowHostProcess {
		g.audit(c, DefaultWorkspace, "workspace.update", w.Name+": allow_host_process=true")
		g.audit(c, w.Name, "workspace.update", w.Name+": allow_host_process=true")
	}
	return c.JSON(http.StatusCreated, w)
}

// workspacePatch is the body of PATCH /v1/workspaces/{ws}: the settings only
// the system admin changes on an existing workspace.
type workspacePatch struct {
	// AllowHostProcess grants (true) or takes back (false) mode process.
	AllowHostProcess *bool `json:"allow_host_process"`
}

// updateWorkspace changes a workspace's system-admin settings. Taking
// allow_host_process back applies to queued jobs too: a worker fails them
// with mode_not_allowed instead of starting them.
func (g *Gateway) updateWorkspace(c echo.Context) error {
	ws, err := g.wsParam(c)
	if err != nil {
		return err
	}
	var req workspacePatch
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.AllowHostProcess == nil {
		return invalid("allow_host_process is required (true or false); it is the only setting this route changes")
	}
	w, err := g.store.SetWorkspaceHostProcess(c.Request().Context(), ws, *req.AllowHostProcess)
	if err != nil {
		return err
	}
	target := ws + ": allow_host_process=" + strconv.FormatBool(w.AllowHostProcess)
	g.audit(c, DefaultWorkspace, "workspace.update", target)
	if ws != DefaultWorkspace {
		g.audit(c, ws, "workspace.update", target)
	}
	return c.JSON(http.StatusOK, w)
}

func (g *Gateway) listWorkspaces(c echo.Context) error {
	ctx := c.Request().Context()
	p := principalOf(c)
	var out []api.Workspace
	if p.System {
		all, err := g.store.Workspaces(ctx)
		if err != nil {
			return err
		}
		out = all
	} else {
		w, err := g.store.Workspace(ctx, p.Workspace)
		if err != nil {
			return err
		}
		out = []api.Workspace{*w}
	}
	slices.SortFunc(out, func(a, b api.Workspace) int { return strings.Compare(a.Name, b.Name) })
	return c.JSON(http.StatusOK, api.WorkspaceList{Workspaces: out})
}

type tokenRequest struct {
	Name      string      `json:"name"`
	Scopes    []api.Scope `json:"scopes"`
	ExpiresAt *time.Time  `json:"expires_at,omitempty"`
}

func (g *Gateway) createToken(c echo.Context) error {
	ws, err := g.wsParam(c)
	if err != nil {
		return err
	}
	var req tokenRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '.', '_' or '-'", req.Name)
	}
	if len(req.Scopes) == 0 {
		return invalid("scopes must list at least one of read, submit, score, admin")
	}
	for _, s := range req.Scopes {
		if !slices.Contains(api.Scopes, s) {
			return invalid("scopes: %q is not one of read, submit, score, admin", s)
		}
	}
	now := g.now().UTC()
	if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
		return invalid("expires_at must be in the future")
	}
	secret, err := newTokenSecret()
	if err != nil {
		return err
	}
	t := api.Token{ID: newID("tok_"), Workspace: ws, Name: req.Name, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))),
		CreatedAt: now, ExpiresAt: req.ExpiresAt}
	if err := g.store.CreateToken(c.Request().Context(), t, secret); err != nil {
		return err
	}
	g.audit(c, ws, "token.create", t.ID+" ("+t.Name+")")
	return c.JSON(http.StatusCreated, api.NewToken{Token: t, Secret: secret})
}

func (g *Gateway) listTokens(c echo.Context) error {
	ws, err := g.wsParam(c)
	if err != nil {
		return err
	}
	ts, err := g.store.Tokens(c.Request().Context(), ws)
	if err != nil {
		return err
	}
	slices.SortFunc(ts, func(a, b api.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return c.JSON(http.StatusOK, api.TokenList{Tokens: ts})
}

func (g *Gateway) deleteToken(c echo.Context) error {
	ws, err := g.wsParam(c)
	if err != nil {
		return err
	}
	id := c.Param("id")
	if err := g.store.DeleteToken(c.Request().Context(), ws, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no token %q in workspace %s", id, ws)
		}
		return err
	}
	g.audit(c, ws, "token.revoke", id)
	return c.NoContent(http.StatusNoContent)
}

type secretRequest struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (g *Gateway) putSecret(c echo.Context) error {
	if g.secrets == nil {
		return api.Errorf(api.CodeUnavailable, "secrets are not enabled on this gateway (start it with --secrets-key-file)")
	}
	var req secretRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !secretNameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or '_'", req.Name)
	}
	if req.Value == "" || len(req.Value) > maxSecretBytes {
		return invalid("value must be 1 to %d bytes", maxSecretBytes)
	}
	if i := strings.IndexFunc(req.Value, badSecretRune); i >= 0 {
		return invalid("value holds the control character %U at byte %d: a secret may hold any text with tabs and line breaks, but no NUL (an environment variable cannot) nor other control characters", req.Value[i], i)
	}
	ws := principalOf(c).Workspace
	sealed, err := g.secrets.Seal(ws, req.Name, []byte(req.Value))
	if err != nil {
		return err
	}
	if err := g.store.PutSecret(c.Request().Context(), ws, req.Name, sealed); err != nil {
		return err
	}
	g.audit(c, ws, "secret.put", req.Name)
	return c.JSON(http.StatusCreated, api.SecretName{Name: req.Name})
}

// badSecretRune reports the characters a secret value may not hold: NUL,
// which no environment variable can carry, and the other C0 controls and
// DEL, which no key, password or credential file holds and which would be
// terminal escapes in a log. Tab, LF and CR are fine (PEM keys, JSON).
func badSecretRune(r rune) bool {
	return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f
}

func (g *Gateway) listSecrets(c echo.Context) error {
	names, err := g.store.SecretNames(c.Request().Context(), principalOf(c).Workspace)
	if err != nil {
		return err
	}
	slices.Sort(names)
	out := api.SecretList{Secrets: make([]api.SecretName, 0, len(names))}
	for _, n := range names {
		out.Secrets = append(out.Secrets, api.SecretName{Name: n})
	}
	return c.JSON(http.StatusOK, out)
}

func (g *Gateway) deleteSecret(c echo.Context) error {
	ws, name := principalOf(c).Workspace, c.Param("name")
	if err := g.store.DeleteSecret(c.Request().Context(), ws, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no secret %q", name)
		}
		return err
	}
	g.audit(c, ws, "secret.delete", name)
	return c.NoContent(http.StatusNoContent)
}

func (g *Gateway) auditLog(c echo.Context) error {
	limit := int64(100)
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return api.Errorf(api.CodeBadRequest, "limit must be an integer between 1 and 1000")
		}
		limit = int64(n)
	}
	cursor := c.QueryParam("cursor")
	if cursor != "" && !regexp.MustCompile(`^\d+-\d+$`).MatchString(cursor) {
		return api.Errorf(api.CodeBadRequest, "cursor is not one this API returned")
	}
	entries, next, err := g.store.AuditLog(c.Request().Context(), principalOf(c).Workspace, limit, cursor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.AuditPage{Entries: entries, NextCursor: next})
}
