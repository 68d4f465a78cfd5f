package gateway

import (
	"errors"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// MLflow's artifact proxy (mlflow_artifacts.proto) over jobgate's outputs:
// a path is <run_id>/<path in the run's outputs>, so a tracked run's
// artifact_uri mlflow-artifacts:/<run_id> makes MLflow's client upload,
// list and download through here. Uploads go to a running tracked run
// only: a job's own outputs are what its worker collects when it ends.
// A file is at most the gateway's request body cap (MaxBodyBytes), read
// as it arrives; the caller reaches the runs of its workspace (and a job
// token its job tree's) only.
const mlflowArtifactsPrefix = "/api/2.0/mlflow-artifacts/"

func (g *Gateway) mlflowArtifactRoutes(mg *routeGroup, read, submit access) {
	mg.notFound(mlflowArtifactsPrefix)
	p := mlflowArtifactsPrefix + "artifacts"
	mg.route(http.MethodGet, p, read, g.mlflowProxyList)
	mg.route(http.MethodGet, p+"/*", read, g.mlflowProxyDownload)
	mg.route(http.MethodPut, p+"/*", submit, g.mlflowProxyUpload)
}

// mlflowProxyPath splits a proxy path into the run (job) it names, in the
// caller's reach, and the path below the run's outputs ("" for its root).
func (g *Gateway) mlflowProxyPath(c echo.Context, p string, escaped bool) (*api.Job, string, error) {
	rel, err := artifactPath(p, escaped)
	if err != nil {
		return nil, "", mlflowInvalid("Invalid value %q for parameter 'path': %s", p, apiMessage(err))
	}
	runID, rest, _ := strings.Cut(rel, "/")
	j, err := g.mlflowJob(c, runID, "")
	return j, rest, err
}

func (g *Gateway) mlflowProxyList(c echo.Context) error {
	p := strings.Trim(c.QueryParam("path"), "/")
	if p == "" {
		return mlflowInvalid("Missing value for required parameter 'path': <run_id>[/<folder>]")
	}
	j, dir, err := g.mlflowProxyPath(c, p, false)
	if err != nil {
		return err
	}
	files, err := g.outputFiles(c.Request().Context(), j.ID, dir)
	if err != nil {
		return err
	}
	// As MLflow's server: each entry's path is its name in the folder.
	out := struct {
		Files []mlflowFileInfo `json:"files"`
	}{Files: []mlflowFileInfo{}}
	seen := map[string]bool{}
	for _, f := range files {
		rest := strings.TrimPrefix(strings.TrimPrefix(f.Path, dir), "/")
		if first, _, nested := strings.Cut(rest, "/"); nested {
			if !seen[first] {
				seen[first] = true
				out.Files = append(out.Files, mlflowFileInfo{Path: first, IsDir: true})
			}
			continue
		}
		out.Files = append(out.Files, mlflowFileInfo{Path: path.Base(f.Path), FileSize: f.Size})
	}
	slices.SortFunc(out.Files, func(a, b mlflowFileInfo) int { return strings.Compare(a.Path, b.Path) })
	return c.JSON(http.StatusOK, out)
}

func (g *Gateway) mlflowProxyDownload(c echo.Context) error {
	j, rel, err := g.mlflowProxyPath(c, c.Param("*"), c.Request().URL.RawPath != "")
	if err != nil {
		return err
	}
	if rel == "" {
		return mlflowInvalid("Invalid value for parameter 'path': name a file below the run, <run_id>/<path>")
	}
	err = g.serveOutput(c, j, rel)
	if isCode(err, api.CodeNotFound) {
		return mlflowErrorf(mlflowNotFound, "Run %s has no artifact %q", j.ID, rel)
	}
	return err
}

func (g *Gateway) mlflowProxyUpload(c echo.Context) error {
	j, rel, err := g.mlflowProxyPath(c, c.Param("*"), c.Request().URL.RawPath != "")
	if err != nil {
		return err
	}
	if rel == "" {
		return mlflowInvalid("Invalid value for parameter 'path': name a file below the run, <run_id>/<path>")
	}
	if j.Spec.Mode != api.ModeTracked || j.Status != api.StatusRunning {
		return mlflowErrorf(mlflowInvalidState, "Run %s is not a running tracked run: a job writes its artifacts into its own outputs folder (artifact_uri)", j.ID)
	}
	if err := g.putOutput(c.Request().Context(), j.ID, rel, c.Request().Body); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return api.Errorf(api.CodeTooLarge, "artifact %q is larger than %d bytes, the gateway's request body cap", rel, mbe.Limit)
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}
