package gateway

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
)

// listArtifacts answers GET /v1/jobs/:id/artifacts: the files the job left
// in its outputs folder. The log is not one of them (GET .../logs serves it).
func (g *Gateway) listArtifacts(c echo.Context) error {
	ctx := c.Request().Context()
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	prefix := artifact.OutputPrefix(j.ID)
	keys, err := g.artifacts.List(ctx, prefix)
	if err != nil {
		return err
	}
	out := api.ArtifactList{Artifacts: make([]api.Artifact, 0, len(keys))}
	for _, k := range keys {
		info, err := g.artifacts.Stat(ctx, k)
		if errors.Is(err, artifact.ErrNotFound) {
			continue // replaced or removed since the listing
		}
		if err != nil {
			return err
		}
		out.Artifacts = append(out.Artifacts, api.Artifact{Path: strings.TrimPrefix(k, prefix), Size: info.Size})
	}
	return c.JSON(http.StatusOK, out)
}

// getArtifact answers GET /v1/jobs/:id/artifacts/*path with one output file,
// its content type from the extension (or sniffed), and range requests when
// the store can seek.
func (g *Gateway) getArtifact(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	// echo matches on URL.RawPath when the request has one, and then hands
	// the wildcard over still escaped; unescape it exactly once.
	rel, err := artifactPath(c.Param("*"), r.URL.RawPath != "")
	if err != nil {
		return err
	}
	j, err := g.store.GetJob(ctx, principalOf(c).Workspace, c.Param("id"))
	if err != nil {
		return err
	}
	return g.serveOutput(c, j, rel)
}

// serveOutput answers with output file rel of job j: what getArtifact and
// MLflow's artifact proxy serve.
func (g *Gateway) serveOutput(c echo.Context, j *api.Job, rel string) error {
	r := c.Request()
	ctx := r.Context()
	key := artifact.OutputPrefix(j.ID) + rel
	notFound := api.Errorf(api.CodeNotFound, "job %s has no artifact %q", j.ID, rel)
	w := c.Response()
	h := w.Header()
	start := func() {
		// A large model may take longer than the server's WriteTimeout.
		_ = http.NewResponseController(w.Writer).SetWriteDeadline(time.Time{})
		// Outputs are the job's own bytes: never let a browser run them as
		// this origin's page.
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "sandbox")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(rel)}))
	}
	if s, ok := g.artifacts.(artifact.Seeker); ok {
		f, info, err := s.OpenSeeker(ctx, key)
		if errors.Is(err, artifact.ErrNotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		defer f.Close()
		start()
		// Content type from the name's extension, else sniffed; Range,
		// If-Range and If-Modified-Since handled.
		http.ServeContent(w, r, rel, info.ModTime, f)
		return nil
	}
	info, err := g.artifacts.Stat(ctx, key)
	if errors.Is(err, artifact.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	body, err := g.artifacts.Open(ctx, key)
	if errors.Is(err, artifact.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	defer body.Close()
	start()
	ctype := mime.TypeByExtension(path.Ext(rel))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set(echo.HeaderContentType, ctype)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(info.Size, 10))
	h.Set("Accept-Ranges", "none")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, body) // the status is out; a failure shows as a short body
	return nil
}

// artifactPath checks the wildcard of an artifact URL and returns the path
// of a file below a job's outputs folder, or a 400 that says why it is not
// one. escaped says the wildcard is still percent-encoded. Refused, after
// unescaping: an empty path, a leading "/", a backslash, a NUL, invalid
// UTF-8, and any empty, "." or ".." segment — so "..", "a/../../b",
// "%2e%2e%2f" and "a//b" never reach the store.
func artifactPath(wildcard string, escaped bool) (string, error) {
	p := wildcard
	if escaped {
		var err error
		if p, err = url.PathUnescape(wildcard); err != nil {
			return "", api.Errorf(api.CodeBadRequest, "artifact path is not valid percent-encoding")
		}
	}
	bad := func(why string) error {
		return api.Errorf(api.CodeBadRequest, "artifact path %q: %s", p, why)
	}
	switch {
	case p == "":
		return "", api.Errorf(api.CodeBadRequest, "an artifact path is required: GET /v1/jobs/{id}/artifacts lists them")
	case !utf8.ValidString(p):
		return "", bad("not UTF-8")
	case strings.HasPrefix(p, "/"):
		return "", bad("must be relative to the job's outputs")
	case strings.ContainsAny(p, "\\\x00"):
		return "", bad("backslashes and NUL are not allowed")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", bad("empty, \".\" and \"..\" segments are not allowed")
		}
	}
	return p, nil
}
