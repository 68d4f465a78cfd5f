package gateway

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// MLflow's model registry (model_registry.proto) over jobgate's: a
// registered model is a jobgate model, a model version a jobgate version,
// a version's source a path of its run's (job's) outputs, copied into the
// registry as POST /v1/models copies it. Aliases are jobgate's aliases.
// Stages, tags, renames and deletes have no route here and answer MLflow's
// ENDPOINT_NOT_FOUND (README.md lists them).

func (g *Gateway) mlflowModelRoutes(mg *routeGroup, read, submit access) {
	p := mlflowPrefix
	mg.route(http.MethodPost, p+"registered-models/create", submit, g.mlflowCreateModel)
	mg.route(http.MethodGet, p+"registered-models/get", read, g.mlflowGetModel)
	mg.route(http.MethodGet, p+"registered-models/search", read, g.mlflowSearchModels)
	mg.route(http.MethodPatch, p+"registered-models/update", submit, g.mlflowUpdateModel)
	mg.route(http.MethodDelete, p+"registered-models/delete", submit, g.mlflowDeleteModel)
	mg.route(http.MethodPost, p+"registered-models/set-tag", submit, g.mlflowSetModelTag(false))
	mg.route(http.MethodDelete, p+"registered-models/delete-tag", submit, g.mlflowDeleteModelTag(false))
	mg.route(http.MethodPost, p+"model-versions/set-tag", submit, g.mlflowSetModelTag(true))
	mg.route(http.MethodDelete, p+"model-versions/delete-tag", submit, g.mlflowDeleteModelTag(true))
	mg.route(http.MethodPost, p+"registered-models/get-latest-versions", read, g.mlflowLatestVersions)
	mg.route(http.MethodGet, p+"registered-models/get-latest-versions", read, g.mlflowLatestVersions)
	mg.route(http.MethodPost, p+"registered-models/alias", submit, g.mlflowSetAlias)
	mg.route(http.MethodDelete, p+"registered-models/alias", submit, g.mlflowDeleteAlias)
	mg.route(http.MethodGet, p+"registered-models/alias", read, g.mlflowVersionByAlias)
	mg.route(http.MethodPost, p+"model-versions/create", submit, g.mlflowCreateVersion)
	mg.route(http.MethodGet, p+"model-versions/get", read, g.mlflowGetVersion)
	mg.route(http.MethodGet, p+"model-versions/search", read, g.mlflowSearchVersions)
	mg.route(http.MethodPatch, p+"model-versions/update", submit, g.mlflowUpdateVersion)
	mg.route(http.MethodDelete, p+"model-versions/delete", submit, g.mlflowDeleteVersion)
	mg.route(http.MethodGet, p+"model-versions/get-download-uri", read, g.mlflowVersionDownloadURI)
}

// mlflowMaxDescription bounds a registered model's description (MLflow
// sets no limit; the request body's cap would be the only one).
const mlflowMaxDescription = 64 << 10

func checkDescription(d string) error {
	if len(d) > mlflowMaxDescription {
		return mlflowInvalid("Invalid value for parameter 'description': at most %d bytes, got %d", mlflowMaxDescription, len(d))
	}
	return nil
}

type mlflowRegisteredModel struct {
	Name                 string                `json:"name"`
	CreationTimestamp    int64                 `json:"creation_timestamp"`
	LastUpdatedTimestamp int64                 `json:"last_updated_timestamp"`
	Description          string                `json:"description,omitempty"`
	LatestVersions       []mlflowModelVersion  `json:"latest_versions,omitempty"`
	Tags                 []mlflowKV            `json:"tags,omitempty"`
	Aliases              []mlflowModelAliasOut `json:"aliases,omitempty"`
}

type mlflowModelAliasOut struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

type mlflowModelVersion struct {
	Name                 string     `json:"name"`
	Version              string     `json:"version"`
	CreationTimestamp    int64      `json:"creation_timestamp"`
	LastUpdatedTimestamp int64      `json:"last_updated_timestamp"`
	UserID               string     `json:"user_id,omitempty"`
	CurrentStage         string     `json:"current_stage"`
	Source               string     `json:"source"`
	RunID                string     `json:"run_id"`
	Status               string     `json:"status"`
	Aliases              []string   `json:"aliases,omitempty"`
	Tags                 []mlflowKV `json:"tags,omitempty"`
}

func toMLflowVersion(mv *api.ModelVersion) mlflowModelVersion {
	at := mv.CreatedAt.UnixMilli()
	return mlflowModelVersion{Name: mv.Name, Version: strconv.Itoa(mv.Version), CreationTimestamp: at, LastUpdatedTimestamp: at,
		UserID: mv.CreatedBy, CurrentStage: "None", Source: "runs:/" + mv.SourceJob + "/" + mv.SourcePath,
		RunID: mv.SourceJob, Status: "READY", Aliases: mv.Aliases}
}

func toMLflowModel(m *api.Model, desc string) mlflowRegisteredModel {
	at := m.CreatedAt.UnixMilli()
	out := mlflowRegisteredModel{Name: m.Name, CreationTimestamp: at, LastUpdatedTimestamp: at, Description: desc}
	for _, v := range m.Versions {
		out.LastUpdatedTimestamp = max(out.LastUpdatedTimestamp, v.CreatedAt.UnixMilli())
	}
	if n := len(m.Versions); n > 0 {
		out.LatestVersions = []mlflowModelVersion{toMLflowVersion(&m.Versions[n-1])}
	}
	for alias, v := range m.Aliases {
		out.Aliases = append(out.Aliases, mlflowModelAliasOut{Alias: alias, Version: strconv.Itoa(v)})
	}
	slices.SortFunc(out.Aliases, func(a, b mlflowModelAliasOut) int { return strings.Compare(a.Alias, b.Alias) })
	return out
}

// mlflowModelAnswer answers model m, with its tags and its latest version's.
func (g *Gateway) mlflowModelAnswer(c echo.Context, m *api.Model, desc string) error {
	out := []mlflowRegisteredModel{toMLflowModel(m, desc)}
	if err := g.withTags(c, out, nil); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"registered_model": out[0]})
}

// mlflowVersionAnswer answers version mv, with its tags.
func (g *Gateway) mlflowVersionAnswer(c echo.Context, mv *api.ModelVersion) error {
	out := []mlflowModelVersion{toMLflowVersion(mv)}
	if err := g.withTags(c, nil, out); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"model_version": out[0]})
}

// withTags sets the MLflow tags of the models and versions of an answer
// (and of each model's latest version), read in one round trip.
func (g *Gateway) withTags(c echo.Context, models []mlflowRegisteredModel, versions []mlflowModelVersion) error {
	ref := func(name, v string) modelTagRef {
		n, _ := strconv.Atoi(v)
		return modelTagRef{Name: name, Version: n}
	}
	var refs []modelTagRef
	for _, m := range models {
		refs = append(refs, modelTagRef{Name: m.Name})
		for _, lv := range m.LatestVersions {
			refs = append(refs, ref(lv.Name, lv.Version))
		}
	}
	for _, v := range versions {
		refs = append(refs, ref(v.Name, v.Version))
	}
	if len(refs) == 0 {
		return nil
	}
	tags, err := g.modelTags(c.Request().Context(), principalOf(c).Workspace, refs)
	if err != nil {
		return err
	}
	for i := range models {
		models[i].Tags = mlflowKVs(tags[modelTagRef{Name: models[i].Name}])
		for j := range models[i].LatestVersions {
			lv := &models[i].LatestVersions[j]
			lv.Tags = mlflowKVs(tags[ref(lv.Name, lv.Version)])
		}
	}
	for i := range versions {
		versions[i].Tags = mlflowKVs(tags[ref(versions[i].Name, versions[i].Version)])
	}
	return nil
}

// mlflowKVs is m as MLflow's key-value list, in key order.
func mlflowKVs(m map[string]string) []mlflowKV {
	out := make([]mlflowKV, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, mlflowKV{Key: k, Value: m[k]})
	}
	return out
}

// mlflowTagArgs reads the body of a set-tag or delete-tag (or, for a
// DELETE, its query): the model, the version ("" for the model's own
// tags), the key and the value.
func mlflowTagArgs(c echo.Context, withVersion bool) (name, version, key, value string, err error) {
	var req struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Key     string `json:"key"`
		Value   string `json:"value"`
	}
	q := c.QueryParams()
	if c.Request().Method == http.MethodDelete && q.Get("name") != "" {
		req.Name, req.Version, req.Key = q.Get("name"), q.Get("version"), q.Get("key")
	} else if err := decodeMLflow(c, &req); err != nil {
		return "", "", "", "", err
	}
	if req.Key == "" {
		return "", "", "", "", mlflowInvalid("Missing value for required parameter 'key'")
	}
	if !withVersion {
		req.Version = ""
	}
	return req.Name, req.Version, req.Key, req.Value, nil
}

// mlflowTagRef is the model or version a tag call names, once it exists.
func (g *Gateway) mlflowTagRef(c echo.Context, name, version string, withVersion bool) (modelTagRef, error) {
	if !withVersion {
		_, _, err := g.mlflowModel(c, name)
		return modelTagRef{Name: name}, err
	}
	mv, err := g.mlflowVersion(c, name, version)
	if err != nil {
		return modelTagRef{}, err
	}
	return modelTagRef{Name: name, Version: mv.Version}, nil
}

// mlflowSetModelTag serves registered-models/set-tag and (withVersion)
// model-versions/set-tag.
func (g *Gateway) mlflowSetModelTag(withVersion bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		name, version, key, value, err := mlflowTagArgs(c, withVersion)
		if err != nil {
			return err
		}
		ref, err := g.mlflowTagRef(c, name, version, withVersion)
		if err != nil {
			return err
		}
		if err := g.setModelTag(c.Request().Context(), principalOf(c).Workspace, ref, key, value); err != nil {
			if isCode(err, api.CodeNotFound) {
				return mlflowModelNotFound(name) // deleted since mlflowTagRef found it
			}
			return mlflowInvalidFrom(err)
		}
		return c.JSON(http.StatusOK, map[string]any{})
	}
}

// mlflowDeleteModelTag serves registered-models/delete-tag and
// (withVersion) model-versions/delete-tag.
func (g *Gateway) mlflowDeleteModelTag(withVersion bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		name, version, key, _, err := mlflowTagArgs(c, withVersion)
		if err != nil {
			return err
		}
		ref, err := g.mlflowTagRef(c, name, version, withVersion)
		if err != nil {
			return err
		}
		if err := g.deleteModelTag(c.Request().Context(), principalOf(c).Workspace, ref, key); err != nil {
			if isCode(err, api.CodeNotFound) {
				return mlflowErrorf(mlflowNotFound, "No tag with name: %s", key)
			}
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{})
	}
}

func mlflowModelNotFound(name string) error {
	return mlflowErrorf(mlflowNotFound, "Registered Model with name=%s not found", name)
}

// mlflowModel is model name of the caller's workspace and its description.
func (g *Gateway) mlflowModel(c echo.Context, name string) (*api.Model, string, error) {
	if name == "" {
		return nil, "", mlflowInvalid("Missing value for required parameter 'name'")
	}
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	m, err := g.model(ctx, ws, name)
	if isCode(err, api.CodeNotFound) {
		return nil, "", mlflowModelNotFound(name)
	}
	if err != nil {
		return nil, "", err
	}
	descs, err := g.modelDescriptions(ctx, ws)
	return m, descs[name], err
}

func (g *Gateway) mlflowCreateModel(c echo.Context) error {
	var req struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return mlflowInvalid("Missing value for required parameter 'name'")
	}
	if err := checkDescription(req.Description); err != nil {
		return err
	}
	if !nameRE.MatchString(req.Name) {
		return mlflowInvalid("Invalid value %q for parameter 'name': 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	created, err := g.createModel(ctx, p.Workspace, req.Name)
	if err != nil {
		return err
	}
	if !created {
		return mlflowErrorf(mlflowAlreadyExists, "Registered Model (name=%s) already exists.", req.Name)
	}
	if err := g.setModelDescription(ctx, p.Workspace, req.Name, req.Description); err != nil {
		return err
	}
	g.audit(c, p.Workspace, "model.create", req.Name)
	m, desc, err := g.mlflowModel(c, req.Name)
	if err != nil {
		return err
	}
	return g.mlflowModelAnswer(c, m, desc)
}

func (g *Gateway) mlflowGetModel(c echo.Context) error {
	m, desc, err := g.mlflowModel(c, c.QueryParam("name"))
	if err != nil {
		return err
	}
	return g.mlflowModelAnswer(c, m, desc)
}

// mlflowDeleteModel is DeleteRegisteredModel: the model and all its
// versions, as MLflow's server does; a version in use refuses it.
func (g *Gateway) mlflowDeleteModel(c echo.Context) error {
	name := c.QueryParam("name")
	if name == "" && c.Request().ContentLength != 0 {
		var req struct {
			Name string `json:"name"`
		}
		if err := decodeMLflow(c, &req); err != nil {
			return err
		}
		name = req.Name
	}
	if name == "" {
		return mlflowInvalid("Missing value for required parameter 'name'")
	}
	// removeModel reads the model itself: an unknown one is its 404.
	if err := g.removeModel(c, principalOf(c).Workspace, name); err != nil {
		if isCode(err, api.CodeNotFound) {
			return mlflowModelNotFound(name)
		}
		if isCode(err, api.CodeConflict) {
			return mlflowErrorf(mlflowInvalidState, "%s", apiError(err).Message) // MLflow's 400
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (g *Gateway) mlflowUpdateModel(c echo.Context) error {
	var req struct {
		Name        string  `json:"name"`
		Description *string `json:"description"`
	}
	if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	if _, _, err := g.mlflowModel(c, req.Name); err != nil {
		return err
	}
	if req.Description != nil {
		if err := checkDescription(*req.Description); err != nil {
			return err
		}
		if err := g.setModelDescription(c.Request().Context(), principalOf(c).Workspace, req.Name, *req.Description); err != nil {
			return err
		}
	}
	m, desc, err := g.mlflowModel(c, req.Name)
	if err != nil {
		return err
	}
	return g.mlflowModelAnswer(c, m, desc)
}

// mlflowNameFilter reads the filter of a registry search: empty, or
// name = '...', name LIKE '...' or name ILIKE '...' (% and _ wildcards).
func mlflowNameFilter(filter string) (func(string) bool, error) {
	f := strings.TrimSpace(filter)
	if f == "" {
		return func(string) bool { return true }, nil
	}
	bad := mlflowInvalid("Invalid value %q for parameter 'filter': jobgate takes name = '...', name LIKE '...' or name ILIKE '...'", filter)
	field, rest, ok := strings.Cut(f, " ")
	if !ok || strings.TrimPrefix(field, "attributes.") != "name" {
		// name='x' without spaces
		if n, v, ok := strings.Cut(f, "="); ok && strings.TrimSpace(n) == "name" {
			field, rest = "name", "= "+strings.TrimSpace(v)
		} else {
			return nil, bad
		}
	}
	rest = strings.TrimSpace(rest)
	op, val, _ := strings.Cut(rest, " ")
	if strings.HasPrefix(rest, "=") {
		op, val = "=", strings.TrimSpace(rest[1:])
	}
	val = strings.TrimSpace(val)
	if len(val) < 2 || (val[0] != '\'' && val[0] != '"') || val[len(val)-1] != val[0] {
		return nil, bad
	}
	val = val[1 : len(val)-1]
	switch strings.ToUpper(op) {
	case "=":
		return func(s string) bool { return s == val }, nil
	case "!=":
		return func(s string) bool { return s != val }, nil
	case "LIKE":
		return func(s string) bool { return likeMatch(val, s) }, nil
	case "ILIKE":
		return func(s string) bool { return likeMatch(strings.ToLower(val), strings.ToLower(s)) }, nil
	}
	return nil, bad
}

// likeMatch is SQL's LIKE: % any run, _ any one character.
func likeMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if likeMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '_':
		return s != "" && likeMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && likeMatch(pattern[1:], s[1:])
}

// mlflowPage reads max_results (default def, at most limit) and page_token
// (an offset) of a registry search.
func mlflowPage(c echo.Context, def, limit int) (int, int, error) {
	n := def
	if s := c.QueryParam("max_results"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > limit {
			return 0, 0, mlflowInvalid("Invalid value %q for parameter 'max_results': from 1 to %d", s, limit)
		}
		n = v
	}
	off := 0
	if s := c.QueryParam("page_token"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, 0, mlflowInvalid("Invalid value %q for parameter 'page_token': not a page token of this search", s)
		}
		off = v
	}
	return n, off, nil
}

func pageOf[T any](all []T, n, off int) ([]T, string) {
	if off > len(all) {
		off = len(all)
	}
	end := min(off+n, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[off:end], next
}

func (g *Gateway) mlflowSearchModels(c echo.Context) error {
	match, err := mlflowNameFilter(c.QueryParam("filter"))
	if err != nil {
		return err
	}
	n, off, err := mlflowPage(c, 100, 1000)
	if err != nil {
		return err
	}
	desc := false
	for _, o := range c.QueryParams()["order_by"] {
		f := strings.Fields(o)
		if len(f) == 0 || len(f) > 2 || strings.TrimPrefix(f[0], "attributes.") != "name" || (len(f) == 2 && !strings.EqualFold(f[1], "ASC") && !strings.EqualFold(f[1], "DESC")) {
			return mlflowInvalid("Invalid value %q for parameter 'order_by': jobgate orders by name [ASC|DESC]", o)
		}
		desc = len(f) == 2 && strings.EqualFold(f[1], "DESC")
	}
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	ms, err := g.models(ctx, ws)
	if err != nil {
		return err
	}
	descs, err := g.modelDescriptions(ctx, ws)
	if err != nil {
		return err
	}
	all := []mlflowRegisteredModel{}
	for i := range ms {
		if match(ms[i].Name) {
			all = append(all, toMLflowModel(&ms[i], descs[ms[i].Name]))
		}
	}
	if desc {
		slices.Reverse(all)
	}
	page, next := pageOf(all, n, off)
	if err := g.withTags(c, page, nil); err != nil {
		return err
	}
	out := map[string]any{"registered_models": page}
	if next != "" {
		out["next_page_token"] = next
	}
	return c.JSON(http.StatusOK, out)
}

// mlflowLatestVersions serves get-latest-versions: jobgate has no stages,
// so the latest version is the one of stage "None", and asking for
// another stage finds none.
func (g *Gateway) mlflowLatestVersions(c echo.Context) error {
	var req struct {
		Name   string   `json:"name"`
		Stages []string `json:"stages"`
	}
	if c.Request().Method == http.MethodGet {
		req.Name, req.Stages = c.QueryParam("name"), c.QueryParams()["stages"]
	} else if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	m, _, err := g.mlflowModel(c, req.Name)
	if err != nil {
		return err
	}
	out := []mlflowModelVersion{}
	wantNone := len(req.Stages) == 0 || slices.ContainsFunc(req.Stages, func(s string) bool { return strings.EqualFold(s, "None") })
	if n := len(m.Versions); n > 0 && wantNone {
		out = append(out, toMLflowVersion(&m.Versions[n-1]))
	}
	if err := g.withTags(c, nil, out); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"model_versions": out})
}

// mlflowVersionArg reads a version number argument.
func mlflowVersionArg(s string) (int, error) {
	if s == "" {
		return 0, mlflowInvalid("Missing value for required parameter 'version'")
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, mlflowInvalid("Invalid value %q for parameter 'version': a version number, from 1", s)
	}
	return v, nil
}

// mlflowVersion is version v of model name, or MLflow's not-found.
func (g *Gateway) mlflowVersion(c echo.Context, name, version string) (*api.ModelVersion, error) {
	if _, _, err := g.mlflowModel(c, name); err != nil {
		return nil, err
	}
	v, err := mlflowVersionArg(version)
	if err != nil {
		return nil, err
	}
	mv, err := g.versionByRef(c.Request().Context(), principalOf(c).Workspace, name+":"+strconv.Itoa(v))
	if err != nil {
		return nil, err
	}
	if mv == nil {
		return nil, mlflowErrorf(mlflowNotFound, "Model Version (name=%s, version=%d) not found", name, v)
	}
	return mv, nil
}

func (g *Gateway) mlflowSetAlias(c echo.Context) error {
	var req struct {
		Name    string `json:"name"`
		Alias   string `json:"alias"`
		Version string `json:"version"`
	}
	if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	if !api.ModelAliasRE.MatchString(req.Alias) {
		return mlflowInvalid("Invalid value %q for parameter 'alias': 1-128 letters, digits, '.', '_' or '-', starting with a letter", req.Alias)
	}
	mv, err := g.mlflowVersion(c, req.Name, req.Version)
	if err != nil {
		return err
	}
	ws := principalOf(c).Workspace
	if err := g.setAlias(c.Request().Context(), ws, req.Name, req.Alias, mv.Version); err != nil {
		return err
	}
	g.audit(c, ws, "model.alias", req.Name+"@"+req.Alias+" -> "+strconv.Itoa(mv.Version))
	return c.JSON(http.StatusOK, map[string]any{})
}

// mlflowAliasArgs reads name and alias from the query or, as MLflow's
// clients send a DELETE, from the body.
func mlflowAliasArgs(c echo.Context) (string, string, error) {
	name, alias := c.QueryParam("name"), c.QueryParam("alias")
	if name == "" && alias == "" && c.Request().ContentLength != 0 && c.Request().Method != http.MethodGet {
		var req struct {
			Name  string `json:"name"`
			Alias string `json:"alias"`
		}
		if err := decodeMLflow(c, &req); err != nil {
			return "", "", err
		}
		name, alias = req.Name, req.Alias
	}
	if alias == "" {
		return "", "", mlflowInvalid("Missing value for required parameter 'alias'")
	}
	return name, alias, nil
}

func (g *Gateway) mlflowDeleteAlias(c echo.Context) error {
	name, alias, err := mlflowAliasArgs(c)
	if err != nil {
		return err
	}
	if _, _, err := g.mlflowModel(c, name); err != nil {
		return err
	}
	ws := principalOf(c).Workspace
	err = g.deleteAlias(c.Request().Context(), ws, name, alias)
	if errors.Is(err, store.ErrNotFound) {
		return mlflowErrorf(mlflowNotFound, "Registered model alias %s not found.", alias)
	}
	if err != nil {
		return err
	}
	g.audit(c, ws, "model.alias.delete", name+"@"+alias)
	return c.JSON(http.StatusOK, map[string]any{})
}

func (g *Gateway) mlflowVersionByAlias(c echo.Context) error {
	name, alias, err := mlflowAliasArgs(c)
	if err != nil {
		return err
	}
	if _, _, err := g.mlflowModel(c, name); err != nil {
		return err
	}
	mv, err := g.versionByRef(c.Request().Context(), principalOf(c).Workspace, name+"@"+alias)
	if err != nil {
		return err
	}
	if mv == nil {
		return mlflowErrorf(mlflowNotFound, "Registered model alias %s not found.", alias)
	}
	return g.mlflowVersionAnswer(c, mv)
}

// mlflowSourcePath is the path of run j's outputs that source names:
// runs:/<run_id>/<path>, or a path below the run's artifact_uri.
func (g *Gateway) mlflowSourcePath(ctx context.Context, j *api.Job, source string) (string, error) {
	rel, ok := strings.CutPrefix(source, "runs:/"+j.ID+"/")
	if !ok {
		rel, ok = strings.CutPrefix(source, g.artifactURI(ctx, j)+"/")
	}
	if !ok {
		return "", mlflowInvalid("Invalid value %q for parameter 'source': want runs:/%s/<path> or a path below the run's artifact_uri", source, j.ID)
	}
	rel, err := modelPath(rel)
	if err != nil {
		return "", mlflowInvalid("Invalid value %q for parameter 'source': %s", source, apiMessage(err))
	}
	return rel, nil
}

// apiMessage is err's message as the API answers it.
func apiMessage(err error) string {
	if e := (*api.Error)(nil); errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func (g *Gateway) mlflowCreateVersion(c echo.Context) error {
	var req struct {
		Name   string `json:"name"`
		Source string `json:"source"`
		RunID  string `json:"run_id"`
	}
	if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	if req.Source == "" {
		return mlflowInvalid("Missing value for required parameter 'source'")
	}
	if _, _, err := g.mlflowModel(c, req.Name); err != nil {
		return err
	}
	runID := req.RunID
	if runID == "" {
		if rest, ok := strings.CutPrefix(req.Source, "runs:/"); ok {
			runID, _, _ = strings.Cut(rest, "/")
		}
	}
	j, err := g.mlflowJob(c, runID, "")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rel, err := g.mlflowSourcePath(ctx, j, req.Source)
	if err != nil {
		return err
	}
	p := principalOf(c)
	// As POST /v1/models: the copy may outlast the server's WriteTimeout.
	rc := http.NewResponseController(c.Response().Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	defer func() { _ = rc.SetWriteDeadline(time.Now().Add(modelAnswerTimeout)) }()
	mv, err := g.newModelVersion(ctx, p, req.Name, j.ID, rel)
	if isCode(err, api.CodeConflict) || isCode(err, api.CodeInvalid) {
		return mlflowInvalid("%s", apiMessage(err))
	}
	if err != nil {
		return err
	}
	g.audit(c, p.Workspace, "model.register", mv.Name+":"+strconv.Itoa(mv.Version)+" (job "+j.ID+", "+rel+")")
	return g.mlflowVersionAnswer(c, mv)
}

func (g *Gateway) mlflowGetVersion(c echo.Context) error {
	mv, err := g.mlflowVersion(c, c.QueryParam("name"), c.QueryParam("version"))
	if err != nil {
		return err
	}
	return g.mlflowVersionAnswer(c, mv)
}

// mlflowUpdateVersion serves model-versions/update: jobgate's versions
// have no description, so it answers the version as it is.
func (g *Gateway) mlflowUpdateVersion(c echo.Context) error {
	var req struct {
		Name        string  `json:"name"`
		Version     string  `json:"version"`
		Description *string `json:"description"`
	}
	if err := decodeMLflow(c, &req); err != nil {
		return err
	}
	mv, err := g.mlflowVersion(c, req.Name, req.Version)
	if err != nil {
		return err
	}
	if req.Description != nil && *req.Description != "" {
		return mlflowInvalid("Invalid value for parameter 'description': jobgate's model versions have no description")
	}
	return g.mlflowVersionAnswer(c, mv)
}

// mlflowDeleteVersion is DeleteModelVersion: DELETE /v1/models/{name}/
// versions/{v}, with its refusal of a version a deployment or batch uses.
// The name and version come as the query (MLflow's GET-style clients) or
// as a JSON body (its Python client).
func (g *Gateway) mlflowDeleteVersion(c echo.Context) error {
	name, version := c.QueryParam("name"), c.QueryParam("version")
	if name == "" && version == "" && c.Request().ContentLength != 0 {
		var req struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		if err := decodeMLflow(c, &req); err != nil {
			return err
		}
		name, version = req.Name, req.Version
	}
	mv, err := g.mlflowVersion(c, name, version)
	if err != nil {
		return err
	}
	if err := g.removeModelVersion(c, principalOf(c).Workspace, name, mv.Version); err != nil {
		if isCode(err, api.CodeNotFound) {
			return mlflowErrorf(mlflowNotFound, "Model Version (name=%s, version=%d) not found", name, mv.Version)
		}
		if isCode(err, api.CodeConflict) {
			return mlflowErrorf(mlflowInvalidState, "%s", apiError(err).Message) // MLflow's 400
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{})
}

func (g *Gateway) mlflowSearchVersions(c echo.Context) error {
	filter := strings.TrimSpace(c.QueryParam("filter"))
	match, err := mlflowNameFilter(filter)
	if err != nil {
		return err
	}
	n, off, err := mlflowPage(c, 10000, 200000)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ms, err := g.models(ctx, principalOf(c).Workspace)
	if err != nil {
		return err
	}
	all := []mlflowModelVersion{}
	for _, m := range ms {
		if !match(m.Name) {
			continue
		}
		for i := len(m.Versions) - 1; i >= 0; i-- {
			all = append(all, toMLflowVersion(&m.Versions[i]))
		}
	}
	page, next := pageOf(all, n, off)
	if err := g.withTags(c, nil, page); err != nil {
		return err
	}
	out := map[string]any{"model_versions": page}
	if next != "" {
		out["next_page_token"] = next
	}
	return c.JSON(http.StatusOK, out)
}

// mlflowVersionDownloadURI answers where a version's files are: jobgate's
// download route (a file as it is, a folder as one tar).
func (g *Gateway) mlflowVersionDownloadURI(c echo.Context) error {
	mv, err := g.mlflowVersion(c, c.QueryParam("name"), c.QueryParam("version"))
	if err != nil {
		return err
	}
	uri := c.Scheme() + "://" + c.Request().Host + "/v1/models/" + mv.Name + "/versions/" + strconv.Itoa(mv.Version) + "/download"
	return c.JSON(http.StatusOK, map[string]any{"artifact_uri": uri})
}
