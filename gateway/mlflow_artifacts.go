package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// MLflow's artifact proxy (mlflow_artifacts.proto) over jobgate's outputs:
// a path is <run_id>/<path in the run's outputs>, so a tracked run's
// artifact_uri mlflow-artifacts:/<run_id> makes MLflow's client upload,
// list and download through here. Uploads go to a running tracked run
// only: a job's own outputs are what its worker collects when it ends.
// An upload is streamed to the artifact store, not bounded by the request
// body cap: a run's files together are at most MaxRunArtifactBytes. The
// caller reaches the runs of its workspace (and a job token its job
// tree's) only.
const mlflowArtifactsPrefix = "/api/2.0/mlflow-artifacts/"

func (g *Gateway) mlflowArtifactRoutes(mg *routeGroup, read, submit access) {
	mg.notFound(mlflowArtifactsPrefix)
	p := mlflowArtifactsPrefix + "artifacts"
	mg.route(http.MethodGet, p, read, g.mlflowProxyList)
	mg.route(http.MethodGet, p+"/*", read, g.mlflowProxyDownload)
	upload := submit
	upload.Stream = true // mlflowProxyUpload caps the body itself
	mg.route(http.MethodPut, p+"/*", upload, g.mlflowProxyUpload)
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
	ctx, r := c.Request().Context(), c.Request()
	left, err := g.runArtifactRoom(ctx, j.ID, rel)
	if err != nil {
		return err
	}
	tooLarge := func() error {
		return api.Errorf(api.CodeTooLarge, "artifact %q does not fit: run %s may store %d bytes of artifacts in all (--max-run-artifacts-mb), and %d are left",
			rel, j.ID, g.cfg.MaxRunArtifactBytes, left)
	}
	if r.ContentLength > left {
		return tooLarge()
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, left)
	// A large file takes longer than the server's ReadTimeout: the
	// deadline moves on with each read instead, so a client that stops
	// sending is still cut off, and the answer gets its own WriteTimeout.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	body := &progressReader{r: r.Body, rc: rc, idle: uploadIdleTimeout}
	err = g.putOutput(ctx, j.ID, rel, body)
	_ = rc.SetWriteDeadline(time.Now().Add(uploadIdleTimeout))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return tooLarge()
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

// uploadIdleTimeout is how long an upload may go without a byte from its
// client.
const uploadIdleTimeout = 60 * time.Second

// progressReader moves the connection's read deadline idle past each read.
type progressReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	_ = p.rc.SetReadDeadline(time.Now().Add(p.idle))
	return p.r.Read(b)
}

// runArtifactRoom is how many bytes run id may still store through the
// proxy when rel is written: the cap less its files, rel's present size
// not counted since the upload replaces it. Two uploads at once may each
// take what is left; the overshoot is one file's worth.
func (g *Gateway) runArtifactRoom(ctx context.Context, id, rel string) (int64, error) {
	files, err := g.outputFiles(ctx, id, "")
	if err != nil {
		return 0, err
	}
	left := g.cfg.MaxRunArtifactBytes
	for _, f := range files {
		if f.Path != rel {
			left -= f.Size
		}
	}
	return max(left, 0), nil
}
