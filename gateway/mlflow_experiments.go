package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// MLflow's experiment lifecycle and listing: experiments/search and list,
// update, delete, restore and set-experiment-tag. jobgate's experiments are
// its own (GET /v1/experiments); MLflow's deletion is soft, so a deleted
// experiment keeps its jobs, is hidden from searches unless view_type asks
// for it, and takes no new runs until it is restored.

// mlflowViewType is MLflow's ViewType: which lifecycle stages a search
// returns.
type mlflowViewType string

func parseViewType(s string) (mlflowViewType, error) {
	switch v := mlflowViewType(strings.ToUpper(s)); v {
	case "", "1":
		return "ACTIVE_ONLY", nil
	case "ACTIVE_ONLY", "DELETED_ONLY", "ALL":
		return v, nil
	case "2":
		return "DELETED_ONLY", nil
	case "3":
		return "ALL", nil
	}
	return "", mlflowInvalid("Invalid value %q for parameter 'view_type': want ACTIVE_ONLY, DELETED_ONLY or ALL", s)
}

func (v mlflowViewType) shows(deleted bool) bool {
	switch v {
	case "ALL":
		return true
	case "DELETED_ONLY":
		return deleted
	}
	return !deleted
}

// lifecycle is MLflow's lifecycle_stage.
func lifecycle(deleted bool) string {
	if deleted {
		return "deleted"
	}
	return "active"
}

// mlflowPageToken is the opaque page_token of a search: how many results
// earlier pages held.
func mlflowPageToken(offset int) string {
	b, _ := json.Marshal(map[string]int{"offset": offset})
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	var v struct {
		Offset *int `json:"offset"`
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil || v.Offset == nil || *v.Offset < 0 {
		return 0, mlflowInvalid("Invalid page token %q: pass the next_page_token of the previous answer", tok)
	}
	return *v.Offset, nil
}

// mlflowExperimentOf is experiment name of ws in MLflow's shape, with its
// lifecycle stage and tags.
func (g *Gateway) mlflowExperimentOf(ctx context.Context, ws, name string, deleted map[string]bool) (mlflowExperiment, error) {
	e, err := g.mlflowExperiment(ctx, ws, name)
	if err != nil {
		return e, err
	}
	if deleted == nil {
		if deleted, err = g.deletedExperiments(ctx, ws); err != nil {
			return e, err
		}
	}
	e.LifecycleStage = lifecycle(deleted[name])
	tags, err := g.experimentTags(ctx, ws, name)
	if err != nil {
		return e, err
	}
	for k, v := range tags {
		e.Tags = append(e.Tags, mlflowKV{k, v})
	}
	slices.SortFunc(e.Tags, func(a, b mlflowKV) int { return strings.Compare(a.Key, b.Key) })
	return e, nil
}

// mlflowAllExperiments is every experiment of ws that view shows,
// in MLflow's shape, the default experiment among them.
func (g *Gateway) mlflowAllExperiments(ctx context.Context, ws string, view mlflowViewType) ([]mlflowExperiment, error) {
	exps, err := g.workspaceExperiments(ctx, ws)
	if err != nil {
		return nil, err
	}
	deleted, err := g.deletedExperiments(ctx, ws)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(exps)+1)
	for name := range exps {
		// Jobs submitted without an experiment are in none MLflow could name.
		if name != "" {
			names = append(names, name)
		}
	}
	if _, ok := exps[defaultExperiment]; !ok {
		names = append(names, defaultExperiment)
	}
	out := make([]mlflowExperiment, 0, len(names))
	for _, name := range names {
		if !view.shows(deleted[name]) {
			continue
		}
		e, err := g.mlflowExperimentOf(ctx, ws, name, deleted)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// searchView is experiment e as filters and order_by see it.
func (e mlflowExperiment) searchView() *searchRun {
	r := &searchRun{Tags: map[string]string{}, Attrs: map[string]string{"name": e.Name, "experiment_id": e.ExperimentID,
		"lifecycle_stage": e.LifecycleStage}, Times: map[string]float64{}}
	for _, t := range e.Tags {
		r.Tags[t.Key] = t.Value
	}
	if e.CreationTime != 0 {
		r.Times["creation_time"], r.Times["last_update_time"] = float64(e.CreationTime), float64(e.LastUpdateTime)
	}
	return r
}

// mlflowSearchExperiments serves experiments/search (GET or POST).
func (g *Gateway) mlflowSearchExperiments(c echo.Context) error {
	var in struct {
		MaxResults flexInt64 `json:"max_results"`
		PageToken  string    `json:"page_token"`
		Filter     string    `json:"filter"`
		OrderBy    []string  `json:"order_by"`
		ViewType   string    `json:"view_type"`
	}
	if c.Request().Method == http.MethodGet {
		q := c.QueryParams()
		in.PageToken, in.Filter, in.OrderBy, in.ViewType = q.Get("page_token"), q.Get("filter"), q["order_by"], q.Get("view_type")
		if s := q.Get("max_results"); s != "" {
			if err := in.MaxResults.UnmarshalJSON([]byte(s)); err != nil {
				return mlflowInvalid("Invalid value %q for parameter 'max_results': want an integer", s)
			}
		}
	} else if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	view, err := parseViewType(in.ViewType)
	if err != nil {
		return err
	}
	limit, err := mlflowMaxResults(in.MaxResults, 1000, 50_000)
	if err != nil {
		return err
	}
	offset, err := parsePageToken(in.PageToken)
	if err != nil {
		return err
	}
	conds, err := experimentSearch.parseFilter(in.Filter)
	if err != nil {
		return mlflowInvalid("%v", err)
	}
	orders, err := experimentSearch.parseOrderBy(in.OrderBy)
	if err != nil {
		return mlflowInvalid("%v", err)
	}
	// MLflow's default: newest first, then by ID.
	orders = append(orders, searchOrder{Key: searchKey{Entity: entityAttribute, Name: "creation_time", Numeric: true}, Desc: true},
		searchOrder{Key: searchKey{Entity: entityAttribute, Name: "experiment_id"}})
	all, err := g.mlflowAllExperiments(c.Request().Context(), principalOf(c).Workspace, view)
	if err != nil {
		return err
	}
	type row struct {
		e mlflowExperiment
		v *searchRun
	}
	rows := make([]row, 0, len(all))
	for _, e := range all {
		if v := e.searchView(); v.matches(conds) {
			rows = append(rows, row{e, v})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return compareRuns(a.v, b.v, orders) })
	out := struct {
		Experiments   []mlflowExperiment `json:"experiments"`
		NextPageToken string             `json:"next_page_token,omitempty"`
	}{Experiments: []mlflowExperiment{}}
	for i := offset; i < len(rows) && i < offset+limit; i++ {
		out.Experiments = append(out.Experiments, rows[i].e)
	}
	if offset+limit < len(rows) {
		out.NextPageToken = mlflowPageToken(offset + limit)
	}
	return c.JSON(http.StatusOK, out)
}

// mlflowMaxResults is a search's max_results: def when unset, at most most.
func mlflowMaxResults(v flexInt64, def, most int) (int, error) {
	if !v.Set {
		return def, nil
	}
	if v.V < 1 || v.V > int64(most) {
		return 0, mlflowInvalid("Invalid value %d for parameter 'max_results': want 1 to %d", v.V, most)
	}
	return int(v.V), nil
}

// mlflowListExperiments serves experiments/list, which MLflow 1.x clients
// call (MLflow 2 replaced it with search): every experiment view_type shows.
func (g *Gateway) mlflowListExperiments(c echo.Context) error {
	view, err := parseViewType(c.QueryParam("view_type"))
	if err != nil {
		return err
	}
	all, err := g.mlflowAllExperiments(c.Request().Context(), principalOf(c).Workspace, view)
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b mlflowExperiment) int { return strings.Compare(a.ExperimentID, b.ExperimentID) })
	return c.JSON(http.StatusOK, struct {
		Experiments []mlflowExperiment `json:"experiments"`
	}{all})
}

// mlflowNamedExperiment is the experiment a request's experiment_id names
// in the caller's workspace: its jobgate name, or RESOURCE_DOES_NOT_EXIST.
func (g *Gateway) mlflowNamedExperiment(ctx context.Context, ws, id string) (string, error) {
	if id == "" {
		return "", mlflowInvalid("Missing value for required parameter 'experiment_id'")
	}
	name := experimentName(id)
	if _, err := g.experimentActivity(ctx, ws, name); isCode(err, api.CodeNotFound) {
		return "", mlflowErrorf(mlflowNotFound, "No Experiment with id=%s exists", id)
	} else if err != nil {
		return "", err
	}
	return name, nil
}

// mlflowDeleteExperiment and mlflowRestoreExperiment serve
// experiments/delete and experiments/restore.
func (g *Gateway) mlflowDeleteExperiment(c echo.Context) error {
	return g.mlflowExperimentLifecycle(c, true)
}
func (g *Gateway) mlflowRestoreExperiment(c echo.Context) error {
	return g.mlflowExperimentLifecycle(c, false)
}

func (g *Gateway) mlflowExperimentLifecycle(c echo.Context, deleted bool) error {
	var in struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	name, err := g.mlflowNamedExperiment(ctx, p.Workspace, in.ExperimentID)
	if err != nil {
		return err
	}
	if deleted && name == defaultExperiment {
		return mlflowInvalid("Cannot delete the default experiment '0'. This is an internally reserved experiment.")
	}
	if err := g.setExperimentDeleted(ctx, p.Workspace, name, deleted); err != nil {
		return err
	}
	g.auditAs(ctx, p.Workspace, p.Actor, "experiment."+map[bool]string{true: "delete", false: "restore"}[deleted], name)
	return c.JSON(http.StatusOK, struct{}{})
}

// mlflowUpdateExperiment serves experiments/update. An experiment's ID is
// its name in jobgate, so a rename would change its ID: only the current
// name is taken.
func (g *Gateway) mlflowUpdateExperiment(c echo.Context) error {
	var in struct {
		ExperimentID string `json:"experiment_id"`
		NewName      string `json:"new_name"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	name, err := g.mlflowNamedExperiment(c.Request().Context(), principalOf(c).Workspace, in.ExperimentID)
	if err != nil {
		return err
	}
	if in.NewName != "" && experimentName(in.NewName) != name {
		return mlflowInvalid("Invalid value %q for parameter 'new_name': jobgate cannot rename an experiment, whose name is its ID", in.NewName)
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// mlflowSetExperimentTag serves experiments/set-experiment-tag.
func (g *Gateway) mlflowSetExperimentTag(c echo.Context) error {
	var in struct {
		ExperimentID string `json:"experiment_id"`
		Key          string `json:"key"`
		Value        string `json:"value"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	name, err := g.mlflowNamedExperiment(ctx, ws, in.ExperimentID)
	if err != nil {
		return err
	}
	if err := g.setExperimentTag(ctx, ws, name, in.Key, in.Value); err != nil {
		return mlflowInvalidFrom(err)
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// experimentDeleted says whether experiment name of ws is deleted.
func (g *Gateway) experimentDeleted(ctx context.Context, ws, name string) (bool, error) {
	deleted, err := g.deletedExperiments(ctx, ws)
	return deleted[name], err
}
