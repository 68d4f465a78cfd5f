package gateway

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// The model registry (/v1/models). A version is a file or folder of a
// succeeded job's outputs, copied into the registry's own area of the
// artifact store (artifact.ModelPrefix) and checksummed while it is copied,
// so what the job's outputs become later changes nothing. Versions are
// numbered from 1 by one counter per model (store.NextModelVersion) and a
// number is never given out twice. A version is named by number or by
// alias wherever the API takes one: /v1/models/{name}/versions/2 and
// /v1/models/{name}/versions/production, and "iris:2" / "iris@production"
// for what names a model in a body (store.ResolveModel).
//
// Only a succeeded job's outputs are registered: outputs are collected when
// an attempt ends, so a running job has none yet, and a failed or canceled
// one has what it left half-way (MLflow and Azure ML register any run's
// files; here a version is something that finished).

// modelUsers says whether a version of a model is in use, and by what, so
// that it is not deleted from under its user (a deployment:
// deployedModels).
type modelUsers interface {
	ModelVersionInUse(ctx context.Context, ws, name string, version int) (by string, err error)
}

// registerModel serves POST /v1/models.
func (g *Gateway) registerModel(c echo.Context) error {
	var req api.ModelRegister
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if req.JobID == "" {
		return invalid("job_id is required: the job whose outputs hold the model")
	}
	rel, err := modelPath(req.Path)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	// The copy of a large model may take longer than the server's
	// WriteTimeout: it is lifted while the files are copied, and the
	// answer, once they are, gets modelAnswerTimeout of its own.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	defer func() { _ = rc.SetWriteDeadline(time.Now().Add(modelAnswerTimeout)) }()
	mv, err := g.newModelVersion(ctx, p, req.Name, req.JobID, rel)
	if err != nil {
		return err
	}
	g.audit(c, p.Workspace, "model.register", fmt.Sprintf("%s:%d (job %s, %s)", mv.Name, mv.Version, mv.SourceJob, rel))
	c.Response().Header().Set("Location", fmt.Sprintf("/v1/models/%s/versions/%d", mv.Name, mv.Version))
	return c.JSON(http.StatusCreated, mv)
}

// modelAnswerTimeout bounds writing the answer of a registration, whose
// copy ran without the server's WriteTimeout.
const modelAnswerTimeout = 30 * time.Second

// newModelVersion registers the next version of model name of p's
// workspace from path rel of job jobID's outputs: what POST /v1/models and
// MLflow's model-versions/create do. name and rel are checked.
func (g *Gateway) newModelVersion(ctx context.Context, p principal, name, jobID, rel string) (*api.ModelVersion, error) {
	j, err := g.store.GetJob(ctx, p.Workspace, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "job_id: no job %q", jobID)
	}
	if err != nil {
		return nil, err
	}
	if j.Status != api.StatusSucceeded {
		return nil, api.Errorf(api.CodeConflict, "job_id: job %s is %s; a model is registered from a succeeded job's outputs", j.ID, j.Status)
	}
	src := artifact.OutputPrefix(j.ID) + rel
	kind, files, err := g.modelSources(ctx, src)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, invalid("path: job %s has no output file or folder %q (GET /v1/jobs/%s/artifacts lists them)", j.ID, rel, j.ID)
	}
	v, err := g.store.NextModelVersion(ctx, p.Workspace, name)
	if err != nil {
		return nil, err
	}
	mv := api.ModelVersion{Name: name, Version: v, Kind: kind, SourceJob: j.ID, SourcePath: rel,
		Experiment: j.Experiment, CreatedAt: g.now().UTC(), CreatedBy: p.Actor}
	dst := artifact.ModelPrefix(p.Workspace, name, v)
	if err := g.copyModel(ctx, &mv, src, dst, files); err != nil {
		g.deleteModelFiles(ctx, dst)
		return nil, err
	}
	if err := g.lineage(ctx, &mv, j.ID); err != nil {
		g.deleteModelFiles(ctx, dst)
		return nil, err
	}
	if err := g.store.AddModelVersion(ctx, p.Workspace, mv); err != nil {
		g.deleteModelFiles(ctx, dst)
		return nil, err
	}
	return &mv, nil
}

// modelSources is what the key src of a job's outputs holds: one file
// (the key itself) or the files of a folder (relative paths, sorted).
func (g *Gateway) modelSources(ctx context.Context, src string) (api.ModelKind, []string, error) {
	_, err := g.artifacts.Stat(ctx, src)
	if err == nil {
		return api.ModelFileKind, []string{path.Base(src)}, nil
	}
	if !errors.Is(err, artifact.ErrNotFound) {
		return "", nil, err
	}
	keys, err := g.artifacts.List(ctx, src+"/")
	if err != nil {
		return "", nil, err
	}
	rels := make([]string, 0, len(keys))
	for _, k := range keys {
		rels = append(rels, strings.TrimPrefix(k, src+"/"))
	}
	return api.ModelFolderKind, rels, nil
}

// copyModel copies the files of mv (from below src to below dst) and sets
// its size, checksum and file list from the bytes it copied. See
// api.ModelVersion.SHA256 for the digest of a folder.
func (g *Gateway) copyModel(ctx context.Context, mv *api.ModelVersion, src, dst string, rels []string) error {
	if mv.Kind == api.ModelFileKind {
		sum, n, err := g.copyBlob(ctx, src, dst+rels[0])
		if err != nil {
			return err
		}
		mv.SHA256, mv.Size = sum, n
		return nil
	}
	folder := sha256.New()
	for _, rel := range rels {
		sum, n, err := g.copyBlob(ctx, src+"/"+rel, dst+rel)
		if errors.Is(err, artifact.ErrNotFound) {
			continue // replaced or removed since the listing
		}
		if err != nil {
			return err
		}
		mv.Files = append(mv.Files, api.ModelFile{Path: rel, Size: n, SHA256: sum})
		mv.Size += n
		fmt.Fprintf(folder, "%s  %s\n", sum, rel)
	}
	if len(mv.Files) == 0 {
		return invalid("path: the folder %q holds no files", mv.SourcePath)
	}
	mv.SHA256 = hex.EncodeToString(folder.Sum(nil))
	return nil
}

// copyBlob copies key from to key to and returns the SHA-256 (hex) and the
// size of what it copied.
func (g *Gateway) copyBlob(ctx context.Context, from, to string) (string, int64, error) {
	r, err := g.artifacts.Open(ctx, from)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	cr := &countingHash{Hash: sha256.New()}
	if err := g.artifacts.Put(ctx, to, io.TeeReader(r, cr)); err != nil {
		return "", 0, fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return hex.EncodeToString(cr.Sum(nil)), cr.n, nil
}

// countingHash hashes what is written to it and counts the bytes.
type countingHash struct {
	hash.Hash
	n int64
}

func (h *countingHash) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.Hash.Write(p)
}

// lineage records on mv what job id logged: its params and each metric's
// value at its highest step.
func (g *Gateway) lineage(ctx context.Context, mv *api.ModelVersion, id string) error {
	latest, params, _, err := g.runData(ctx, id)
	if err != nil {
		return err
	}
	if len(params) > 0 {
		mv.Params = params
	}
	if len(latest) > 0 {
		mv.Metrics = make(map[string]float64, len(latest))
		for name, p := range latest {
			mv.Metrics[name] = p.Value
		}
	}
	return nil
}

// deleteModelFiles removes the files below prefix, when the artifact store
// can; a failure is logged (the record, not the bytes, is the version).
func (g *Gateway) deleteModelFiles(ctx context.Context, prefix string) {
	d, ok := g.artifacts.(artifact.Deleter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.DeletePrefix(ctx, prefix); err != nil {
		g.logger.ErrorContext(ctx, "delete model files", "prefix", prefix, "error", err)
	}
}

// modelPath checks the path of a register request: a clean path relative
// to the job's outputs folder, or a 422 naming path.
func modelPath(p string) (string, error) {
	bad := func(why string) error { return invalid("path %q: %s", p, why) }
	switch {
	case p == "":
		return "", invalid("path is required: the file or folder in the job's outputs, e.g. model.json")
	case len(p) > maxPathLength || !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00"):
		return "", bad(fmt.Sprintf("must be UTF-8 of at most %d bytes without backslashes or NUL", maxPathLength))
	case strings.HasPrefix(p, "/"):
		return "", bad("must be relative to the job's outputs folder, not absolute")
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", bad("empty, \".\" and \"..\" segments are not allowed")
		}
	}
	return strings.TrimSuffix(p, "/"), nil
}

// listModels serves GET /v1/models.
func (g *Gateway) listModels(c echo.Context) error {
	ms, err := g.store.Models(c.Request().Context(), principalOf(c).Workspace)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.ModelList{Models: ms})
}

// getModel serves GET /v1/models/:name.
func (g *Gateway) getModel(c echo.Context) error {
	m, err := g.model(c.Request().Context(), principalOf(c).Workspace, c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// model is model name of ws, or a 404 that says so. A name with ':' or '@'
// is a version's reference, which the versions route takes.
func (g *Gateway) model(ctx context.Context, ws, name string) (*api.Model, error) {
	if !nameRE.MatchString(name) {
		if n, v, ok := strings.Cut(name, "@"); ok || strings.Contains(name, ":") {
			if !ok {
				n, v, _ = strings.Cut(name, ":")
			}
			return nil, api.Errorf(api.CodeNotFound, "no model %q: a version is /v1/models/%s/versions/%s", name, n, v)
		}
		return nil, api.Errorf(api.CodeNotFound, "no model %q", name)
	}
	m, err := g.store.Model(ctx, ws, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no model %q", name)
	}
	return m, err
}

// modelVersion is the version the route's :name and :v name: :v a number
// or an alias.
func (g *Gateway) modelVersion(c echo.Context) (*api.ModelVersion, error) {
	ws, name, v := principalOf(c).Workspace, c.Param("name"), c.Param("v")
	if _, err := g.model(c.Request().Context(), ws, name); err != nil {
		return nil, err
	}
	ref := name + "@" + v
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		ref = name + ":" + v
	}
	if _, err := api.ParseModelRef(ref); err != nil {
		return nil, api.Errorf(api.CodeNotFound, "model %s has no version or alias %q", name, v)
	}
	mv, err := g.store.ResolveModel(c.Request().Context(), ws, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "model %s has no version or alias %q", name, v)
	}
	return mv, err
}

// getModelVersion serves GET /v1/models/:name/versions/:v.
func (g *Gateway) getModelVersion(c echo.Context) error {
	mv, err := g.modelVersion(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mv)
}

// downloadModelVersion serves GET /v1/models/:name/versions/:v/download: a
// file version as it is, a folder version as one tar stream of its files
// (sorted, as checksummed), so one request fetches a model whole and
// `tar -x` lays it out as the job wrote it.
func (g *Gateway) downloadModelVersion(c echo.Context) error {
	mv, err := g.modelVersion(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	prefix := artifact.ModelPrefix(ws, mv.Name, mv.Version)
	w := c.Response()
	h := w.Header()
	// A large model may take longer than the server's WriteTimeout.
	_ = http.NewResponseController(w.Writer).SetWriteDeadline(time.Time{})
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("ETag", `"sha256:`+mv.SHA256+`"`)
	h.Set("X-Jobgate-Model-Sha256", mv.SHA256)
	if mv.Kind == api.ModelFileKind {
		name := path.Base(mv.SourcePath)
		body, err := g.artifacts.Open(ctx, prefix+name)
		if errors.Is(err, artifact.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "the files of model %s:%d are gone from the artifact store", mv.Name, mv.Version)
		}
		if err != nil {
			return err
		}
		defer body.Close()
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set(echo.HeaderContentType, "application/octet-stream")
		h.Set(echo.HeaderContentLength, strconv.FormatInt(mv.Size, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = io.Copy(w, body) // the status is out; a failure shows as a short body
		return nil
	}
	h.Set("Content-Disposition", mime.FormatMediaType("attachment",
		map[string]string{"filename": fmt.Sprintf("%s-%d.tar", mv.Name, mv.Version)}))
	h.Set(echo.HeaderContentType, "application/x-tar")
	w.WriteHeader(http.StatusOK)
	// The status is out: a failure past it breaks the connection
	// (http.ErrAbortHandler), so that the client sees it. Returning would
	// end the chunked body cleanly, and a tar cut at a file's boundary
	// reads as a whole model without the rest of its files.
	cut := func(file string, err error) {
		g.logger.ErrorContext(ctx, "model download", "model", mv.Name, "version", mv.Version, "file", file, "error", err)
		panic(http.ErrAbortHandler)
	}
	tw := tar.NewWriter(w)
	for _, f := range mv.Files {
		body, err := g.artifacts.Open(ctx, prefix+f.Path)
		if err != nil {
			cut(f.Path, err)
		}
		err = tw.WriteHeader(&tar.Header{Name: f.Path, Mode: 0o644, Size: f.Size, ModTime: mv.CreatedAt, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
		if err == nil {
			_, err = io.Copy(tw, body)
		}
		body.Close()
		if err != nil {
			cut(f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		cut("", err)
	}
	return nil
}

// setModelAlias serves PUT /v1/models/:name/aliases/:alias.
func (g *Gateway) setModelAlias(c echo.Context) error {
	ws, name, alias := principalOf(c).Workspace, c.Param("name"), c.Param("alias")
	var req struct {
		Version *int `json:"version"`
	}
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if !api.ModelAliasRE.MatchString(alias) {
		return invalid("alias %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter", alias)
	}
	if req.Version == nil || *req.Version < 1 {
		return invalid("version is required: the number of the version the alias names, from 1")
	}
	ctx := c.Request().Context()
	if _, err := g.model(ctx, ws, name); err != nil {
		return err
	}
	if err := g.store.SetModelAlias(ctx, ws, name, alias, *req.Version); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return invalid("version: model %s has no version %d", name, *req.Version)
		}
		return err
	}
	g.audit(c, ws, "model.alias", fmt.Sprintf("%s@%s -> %d", name, alias, *req.Version))
	return c.JSON(http.StatusOK, api.ModelAlias{Name: name, Alias: alias, Version: *req.Version})
}

// deleteModelAlias serves DELETE /v1/models/:name/aliases/:alias.
func (g *Gateway) deleteModelAlias(c echo.Context) error {
	ws, name, alias := principalOf(c).Workspace, c.Param("name"), c.Param("alias")
	ctx := c.Request().Context()
	if _, err := g.model(ctx, ws, name); err != nil {
		return err
	}
	if err := g.store.DeleteModelAlias(ctx, ws, name, alias); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "model %s has no alias %q", name, alias)
		}
		return err
	}
	g.audit(c, ws, "model.alias.delete", name+"@"+alias)
	return c.NoContent(http.StatusNoContent)
}

// deleteModel serves DELETE /v1/models/:name: the model with all its
// versions, their files and its aliases.
func (g *Gateway) deleteModel(c echo.Context) error {
	if err := g.removeModel(c, principalOf(c).Workspace, c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// removeModel deletes model name with every version, unless one of them
// is in use (a conflict naming it, and nothing is deleted); both the REST
// and the MLflow routes delete through it. The version numbers are not
// given out again (store.DeleteModel).
func (g *Gateway) removeModel(c echo.Context, ws, name string) error {
	ctx := c.Request().Context()
	m, err := g.model(ctx, ws, name)
	if err != nil {
		return err
	}
	// Every version is checked before any is deleted, so that a refusal
	// leaves the model whole; removeModelVersion checks each again.
	for _, v := range m.Versions {
		by, err := g.modelUsers.ModelVersionInUse(ctx, ws, name, v.Version)
		if err != nil {
			return err
		}
		if by != "" {
			return api.Errorf(api.CodeConflict, "model %s:%d is in use by %s; the model cannot be deleted", name, v.Version, by)
		}
	}
	for _, v := range m.Versions {
		if err := g.removeModelVersion(c, ws, name, v.Version); err != nil && !isCode(err, api.CodeNotFound) {
			return err
		}
	}
	switch err := g.store.DeleteModel(ctx, ws, name); {
	case errors.Is(err, store.ErrConflict):
		return api.Errorf(api.CodeConflict, "model %s: a version was registered while it was being deleted; delete it again", name)
	case errors.Is(err, store.ErrNotFound):
		return nil // another delete finished first: it is gone all the same
	case err != nil:
		return err
	}
	g.audit(c, ws, "model.delete", name)
	return nil
}

// deleteModelVersion serves DELETE /v1/models/:name/versions/:v (a number:
// an alias moves, so it does not name what to delete). A version in use
// (modelUsers) is a 409; the aliases naming it go with it.
func (g *Gateway) deleteModelVersion(c echo.Context) error {
	ws, name := principalOf(c).Workspace, c.Param("name")
	v, err := strconv.Atoi(c.Param("v"))
	if err != nil || v < 1 || strconv.Itoa(v) != c.Param("v") {
		return invalid("version %q: delete a version by its number, from 1", c.Param("v"))
	}
	if _, err := g.model(c.Request().Context(), ws, name); err != nil {
		return err
	}
	if err := g.removeModelVersion(c, ws, name, v); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// removeModelVersion deletes version v of model name, which exists, with
// its files and its aliases, unless a deployment or a batch uses it (a
// conflict); both the REST and the MLflow routes delete through it.
func (g *Gateway) removeModelVersion(c echo.Context, ws, name string, v int) error {
	ctx := c.Request().Context()
	by, err := g.modelUsers.ModelVersionInUse(ctx, ws, name, v)
	if err != nil {
		return err
	}
	if by != "" {
		return api.Errorf(api.CodeConflict, "model %s:%d is in use by %s; it cannot be deleted", name, v, by)
	}
	// Checked again in the delete itself: a deployment written meanwhile
	// (its PATCH resolved this version) keeps it.
	aliases, by, err := g.store.DeleteUnusedModelVersion(ctx, ws, name, v)
	if by != "" {
		return api.Errorf(api.CodeConflict, "model %s:%d is in use by deployment %s; it cannot be deleted", name, v, by)
	}
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "model %s has no version %d", name, v)
	}
	if err != nil {
		return err
	}
	g.deleteModelFiles(ctx, artifact.ModelPrefix(ws, name, v))
	target := fmt.Sprintf("%s:%d", name, v)
	if len(aliases) > 0 {
		target += " (aliases " + strings.Join(aliases, ", ") + ")"
	}
	g.audit(c, ws, "model.delete", target)
	return nil
}
