package gateway

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Datastores: named host folders of a workspace, which jobs read as inputs
// (api.Input). The gateway checks who may register which path; the worker
// checks again, on its own filesystem, when it gives the data to a job.

const maxPathLength = 4096

type datastoreRequest struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

func (g *Gateway) createDatastore(c echo.Context) error {
	var req datastoreRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if err := checkHostPath(req.Path); err != nil {
		return err
	}
	p := principalOf(c)
	d := store.Datastore{Datastore: api.Datastore{Name: req.Name, Path: req.Path, CreatedAt: g.now().UTC(), CreatedBy: p.Actor}}
	if !p.System {
		root, err := g.datastoreRoot(p.Workspace, req.Path)
		if err != nil {
			return err
		}
		d.Root = root
	}
	// The gateway may not see the workers' folders; what it does see must
	// be a folder.
	if fi, err := os.Stat(req.Path); err == nil && !fi.IsDir() {
		return invalid("path %q is not a folder", req.Path)
	}
	ctx := c.Request().Context()
	if err := g.store.CreateDatastore(ctx, p.Workspace, d); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Errorf(api.CodeConflict, "datastore %q exists; delete it first to replace it", req.Name)
		}
		return err
	}
	g.audit(c, p.Workspace, "datastore.create", d.Name+" ("+d.Path+")")
	c.Response().Header().Set("Location", "/v1/datastores/"+d.Name)
	return c.JSON(http.StatusCreated, d.Datastore)
}

func (g *Gateway) listDatastores(c echo.Context) error {
	ds, err := g.store.Datastores(c.Request().Context(), principalOf(c).Workspace)
	if err != nil {
		return err
	}
	out := api.DatastoreList{Datastores: make([]api.Datastore, 0, len(ds))}
	for _, d := range ds {
		out.Datastores = append(out.Datastores, d.Datastore)
	}
	slices.SortFunc(out.Datastores, func(a, b api.Datastore) int { return strings.Compare(a.Name, b.Name) })
	return c.JSON(http.StatusOK, out)
}

func (g *Gateway) getDatastore(c echo.Context) error {
	name := c.Param("name")
	d, err := g.store.Datastore(c.Request().Context(), principalOf(c).Workspace, name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no datastore %q", name)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d.Datastore)
}

func (g *Gateway) deleteDatastore(c echo.Context) error {
	ws, name := principalOf(c).Workspace, c.Param("name")
	if err := g.store.DeleteDatastore(c.Request().Context(), ws, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no datastore %q", name)
		}
		return err
	}
	g.audit(c, ws, "datastore.delete", name)
	return c.NoContent(http.StatusNoContent)
}

// checkHostPath refuses a datastore path that is not absolute and clean:
// the path is compared with the roots as written, so "/data/../etc" must
// never get that far.
func checkHostPath(p string) error {
	switch {
	case p == "":
		return invalid("path is required: the absolute path of the folder on the workers, e.g. /srv/data/train")
	case len(p) > maxPathLength || strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p):
		return invalid("path must be valid UTF-8 of at most %d bytes without NUL", maxPathLength)
	case !filepath.IsAbs(p):
		return invalid("path %q must be absolute, e.g. /srv/data/train", p)
	case filepath.Clean(p) != p:
		return invalid("path %q must be clean: no \"..\" or \".\" segments, no double or trailing '/' (%q?)", p, filepath.Clean(p))
	}
	return nil
}

// datastoreRoot returns the operator's root that clean absolute path p is
// below, or why a workspace admin may not register p. Containment is checked
// on the path as written and, for the part of it that exists on this
// machine, with symbolic links resolved, so a link below a root cannot lead
// out of it.
func (g *Gateway) datastoreRoot(ws, p string) (string, error) {
	var roots []string
	for _, entry := range g.cfg.DatastoreRoots {
		if only, root := splitRoot(entry); only == "" || only == ws {
			roots = append(roots, root)
		}
	}
	if len(roots) == 0 {
		return "", api.Errorf(api.CodeForbidden,
			"path: this gateway has no datastore roots (--datastore-root) for workspace %s, so only the system admin token may register its datastores", ws)
	}
	for _, root := range roots {
		if !within(root, p) {
			continue
		}
		realRoot, err := resolveExisting(root)
		if err != nil {
			return "", invalid("path %q: cannot check datastore root %s here: %v", p, root, err)
		}
		real, err := resolveExisting(p)
		if err != nil {
			return "", invalid("path %q: cannot check it here: %v", p, err)
		}
		if !within(realRoot, real) {
			return "", api.Errorf(api.CodeForbidden,
				"path %q leads out of the datastore root %s through a symbolic link", p, root)
		}
		return root, nil
	}
	return "", api.Errorf(api.CodeForbidden,
		"path %q is not below a datastore root of this gateway (%s); ask the system admin for a datastore elsewhere", p, strings.Join(roots, ", "))
}

// resolveExisting is p with the symbolic links of its longest existing
// prefix resolved; the rest does not exist, so it holds no links yet.
func resolveExisting(p string) (string, error) {
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is base or below it; both clean and absolute.
func within(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// splitRoot reads a --datastore-root entry: "WORKSPACE=/path" is a root of
// that workspace only, "/path" one of every workspace.
func splitRoot(entry string) (workspace, root string) {
	if ws, root, ok := strings.Cut(entry, "="); ok && !strings.HasPrefix(entry, "/") {
		return ws, root
	}
	return "", entry
}

// cleanRoots makes the configured datastore roots clean, so containment
// checks compare like with like.
func cleanRoots(roots []string) []string {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		ws, root := splitRoot(r)
		if ws != "" {
			out = append(out, ws+"="+filepath.Clean(root))
			continue
		}
		out = append(out, filepath.Clean(root))
	}
	return out
}
