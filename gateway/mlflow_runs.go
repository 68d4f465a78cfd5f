package gateway

import (
	"cmp"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
)

// MLflow's run searches and lifecycle, metric histories and artifact
// listings, over jobgate's jobs.

// Bounds of runs/search: how many experiments one search names, how many
// of their runs it reads (the newest, as the experiment view does) and
// MLflow's bounds on max_results.
const (
	mlflowMaxSearchExperiments = 100
	mlflowSearchScanCap        = experimentsScanCap
	mlflowMaxSearchRuns        = 50_000
	mlflowDefaultSearchRuns    = 1000
)

// mlflowSearchRuns serves runs/search.
func (g *Gateway) mlflowSearchRuns(c echo.Context) error {
	var in struct {
		ExperimentIDs []string  `json:"experiment_ids"`
		Filter        string    `json:"filter"`
		FilterString  string    `json:"filter_string"`
		RunViewType   string    `json:"run_view_type"`
		MaxResults    flexInt64 `json:"max_results"`
		OrderBy       []string  `json:"order_by"`
		PageToken     string    `json:"page_token"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	view, err := parseViewType(in.RunViewType)
	if err != nil {
		return mlflowInvalid("%s", strings.Replace(err.(*mlflowErr).Message, "'view_type'", "'run_view_type'", 1))
	}
	limit, err := mlflowMaxResults(in.MaxResults, mlflowDefaultSearchRuns, mlflowMaxSearchRuns)
	if err != nil {
		return err
	}
	offset, err := parsePageToken(in.PageToken)
	if err != nil {
		return err
	}
	// filter is the name older clients (and MLflow's proto before 1.0) use.
	conds, err := runSearch.parseFilter(cmp.Or(in.FilterString, in.Filter))
	if err != nil {
		return mlflowInvalid("%v", err)
	}
	orders, err := runSearch.parseOrderBy(in.OrderBy)
	if err != nil {
		return mlflowInvalid("%v", err)
	}
	// MLflow's default: newest first, then by run ID.
	orders = append(orders, searchOrder{Key: searchKey{Entity: entityAttribute, Name: "start_time", Numeric: true}, Desc: true},
		searchOrder{Key: searchKey{Entity: entityAttribute, Name: "run_id"}})
	if len(in.ExperimentIDs) == 0 {
		return mlflowInvalid("Missing value for required parameter 'experiment_ids'")
	}
	if len(in.ExperimentIDs) > mlflowMaxSearchExperiments {
		return mlflowInvalid("runs/search takes at most %d experiment_ids, not %d", mlflowMaxSearchExperiments, len(in.ExperimentIDs))
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	var jobs []api.Job
	for _, id := range in.ExperimentIDs {
		name := experimentName(id)
		if _, err := g.experimentActivity(ctx, p.Workspace, name); isCode(err, api.CodeNotFound) {
			continue // MLflow answers no runs for an unknown experiment
		} else if err != nil {
			return err
		}
		var err error
		if jobs, err = g.experimentJobsUpTo(ctx, p.Workspace, name, jobs, mlflowSearchScanCap); err != nil {
			return err
		}
	}
	if p.JobID != "" {
		// A job token sees its own job tree only.
		jobs = slices.DeleteFunc(jobs, func(j api.Job) bool { return g.checkJobTree(ctx, p, j.ID) != nil })
	}
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	params, tags, err := g.paramsAndTagsOf(ctx, ids)
	if err != nil {
		return err
	}
	deleted, err := g.deletedRuns(ctx, ids)
	if err != nil {
		return err
	}
	type row struct {
		j *api.Job
		v *searchRun
	}
	rows := make([]row, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if !view.shows(deleted[j.ID]) {
			continue
		}
		if v := runSearchView(j, params[j.ID], tags[j.ID], deleted[j.ID]); v.matches(conds) {
			rows = append(rows, row{j, v})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return compareRuns(a.v, b.v, orders) })
	out := struct {
		Runs          []mlflowRun `json:"runs"`
		NextPageToken string      `json:"next_page_token,omitempty"`
	}{Runs: []mlflowRun{}}
	for i := offset; i < len(rows) && i < offset+limit; i++ {
		run, err := g.mlflowRunOf(ctx, rows[i].j)
		if err != nil {
			return err
		}
		out.Runs = append(out.Runs, run)
	}
	if offset+limit < len(rows) {
		out.NextPageToken = mlflowPageToken(offset + limit)
	}
	return c.JSON(http.StatusOK, out)
}

// runSearchView is job j as runs/search's filter and order_by see it:
// what its record and the reads of the whole search hold (no read of its
// own, so a search reads a bounded number of keys a run).
func runSearchView(j *api.Job, params, tags map[string]string, deleted bool) *searchRun {
	start := j.CreatedAt
	if j.StartedAt != nil {
		start = *j.StartedAt
	}
	if tags == nil {
		tags = map[string]string{}
	}
	if _, ok := tags["mlflow.runName"]; !ok && j.Name != "" {
		tags["mlflow.runName"] = j.Name
	}
	v := &searchRun{MetricValues: j.Metrics, Params: params, Tags: tags,
		Attrs: map[string]string{"status": mlflowStatus(j.Status), "run_name": j.Name, "run_id": j.ID, "user_id": j.Workspace,
			"lifecycle_stage": lifecycle(deleted), "experiment_id": experimentID(j.Experiment)},
		Times: map[string]float64{"start_time": float64(start.UnixMilli())}}
	if j.FinishedAt != nil {
		v.Times["end_time"] = float64(j.FinishedAt.UnixMilli())
	}
	return v
}

// mlflowDeleteRun and mlflowRestoreRun serve runs/delete and runs/restore:
// a deleted run keeps its job, hidden from runs/search unless
// run_view_type asks for deleted runs.
func (g *Gateway) mlflowDeleteRun(c echo.Context) error  { return g.mlflowRunLifecycle(c, true) }
func (g *Gateway) mlflowRestoreRun(c echo.Context) error { return g.mlflowRunLifecycle(c, false) }

func (g *Gateway) mlflowRunLifecycle(c echo.Context, deleted bool) error {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	j, err := g.mlflowJob(c, in.RunID, in.RunUUID)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := g.setRunDeleted(ctx, j.ID, deleted); err != nil {
		return mlflowRunErr(err, j.ID)
	}
	p := principalOf(c)
	g.auditAs(ctx, p.Workspace, p.Actor, "run."+map[bool]string{true: "delete", false: "restore"}[deleted], j.ID)
	return c.JSON(http.StatusOK, struct{}{})
}

// mlflowDeleteTag serves runs/delete-tag; MLflow answers a tag the run
// does not have with RESOURCE_DOES_NOT_EXIST.
func (g *Gateway) mlflowDeleteTag(c echo.Context) error {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
		Key     string `json:"key"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	if in.Key == "" {
		return mlflowInvalid("Missing value for required parameter 'key'")
	}
	j, err := g.mlflowJob(c, in.RunID, in.RunUUID)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	_, tags, err := g.paramsAndTags(ctx, j.ID)
	if err != nil {
		return err
	}
	if _, ok := tags[in.Key]; !ok {
		return mlflowErrorf(mlflowNotFound, "No tag with name: %s in run with id %s", in.Key, j.ID)
	}
	if err := g.deleteTag(ctx, j.ID, in.Key); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// mlflowMetricHistory serves metrics/get-history: every point of one
// metric, in step order, paged with max_results and page_token.
func (g *Gateway) mlflowMetricHistory(c echo.Context) error {
	key := c.QueryParam("metric_key")
	if key == "" {
		return mlflowInvalid("Missing value for required parameter 'metric_key'")
	}
	var max flexInt64
	if s := c.QueryParam("max_results"); s != "" {
		if err := max.UnmarshalJSON([]byte(s)); err != nil {
			return mlflowInvalid("Invalid value %q for parameter 'max_results': want an integer", s)
		}
	}
	limit, err := mlflowMaxResults(max, 25_000, 25_000)
	if err != nil {
		return err
	}
	offset, err := parsePageToken(c.QueryParam("page_token"))
	if err != nil {
		return err
	}
	j, err := g.mlflowJob(c, c.QueryParam("run_id"), c.QueryParam("run_uuid"))
	if err != nil {
		return err
	}
	pts, err := g.metricSeries(c.Request().Context(), j.ID, key)
	if err != nil {
		return err
	}
	out := struct {
		Metrics       []mlflowMetricOut `json:"metrics"`
		NextPageToken string            `json:"next_page_token,omitempty"`
	}{Metrics: []mlflowMetricOut{}}
	for i := offset; i < len(pts) && i < offset+limit; i++ {
		out.Metrics = append(out.Metrics, mlflowMetricOut{Key: key, Value: pts[i].Value, Timestamp: pts[i].Time.UnixMilli(), Step: pts[i].Step})
	}
	if offset+limit < len(pts) {
		out.NextPageToken = mlflowPageToken(offset + limit)
	}
	return c.JSON(http.StatusOK, out)
}

// mlflowFileInfo is MLflow's FileInfo.
type mlflowFileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size,omitempty"`
}

// mlflowListArtifacts serves artifacts/list: the files and folders right
// under path in the run's outputs (GET /v1/jobs/{id}/artifacts lists them
// all).
func (g *Gateway) mlflowListArtifacts(c echo.Context) error {
	dir := strings.Trim(c.QueryParam("path"), "/")
	if dir != "" && (path.Clean(dir) != dir || dir == ".." || strings.HasPrefix(dir, "../")) {
		return mlflowInvalid("Invalid value %q for parameter 'path': want a relative path without '..'", c.QueryParam("path"))
	}
	j, err := g.mlflowJob(c, c.QueryParam("run_id"), c.QueryParam("run_uuid"))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	files, err := g.outputFiles(ctx, j.ID, dir)
	if err != nil {
		return err
	}
	out := struct {
		RootURI string           `json:"root_uri"`
		Files   []mlflowFileInfo `json:"files"`
	}{RootURI: g.artifactURI(ctx, j), Files: []mlflowFileInfo{}}
	seen := map[string]bool{}
	for _, f := range files {
		rest := strings.TrimPrefix(strings.TrimPrefix(f.Path, dir), "/")
		if first, _, nested := strings.Cut(rest, "/"); nested {
			if p := path.Join(dir, first); !seen[p] {
				seen[p] = true
				out.Files = append(out.Files, mlflowFileInfo{Path: p, IsDir: true})
			}
			continue
		}
		out.Files = append(out.Files, mlflowFileInfo{Path: f.Path, FileSize: f.Size})
	}
	slices.SortFunc(out.Files, func(a, b mlflowFileInfo) int { return strings.Compare(a.Path, b.Path) })
	return c.JSON(http.StatusOK, out)
}

// mlflowMetricOfRun is MLflow's MetricWithRunId.
type mlflowMetricOfRun struct {
	mlflowMetricOut
	RunID string `json:"run_id"`
}

// mlflowBulkHistory serves metrics/get-history-bulk-interval: one metric
// of up to 100 runs, each run's points between start_step and end_step
// sampled evenly down to max_results (default 320, at most 1000), its
// first and last point kept, as MLflow's server does.
func (g *Gateway) mlflowBulkHistory(c echo.Context) error {
	key := c.QueryParam("metric_key")
	if key == "" {
		return mlflowInvalid("Missing value for required parameter 'metric_key'")
	}
	ids := c.QueryParams()["run_ids"]
	if len(ids) == 0 {
		return mlflowInvalid("Missing value for required parameter 'run_ids'")
	}
	if len(ids) > 100 {
		return mlflowInvalid("Invalid value for parameter 'run_ids': at most 100 runs, got %d", len(ids))
	}
	step := func(name string) (int64, bool, error) {
		s := c.QueryParam(name)
		if s == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, false, mlflowInvalid("Invalid value %q for parameter '%s': want an integer", s, name)
		}
		return n, true, nil
	}
	start, hasStart, err := step("start_step")
	if err != nil {
		return err
	}
	end, hasEnd, err := step("end_step")
	if err != nil {
		return err
	}
	if hasStart != hasEnd || (hasStart && start > end) {
		return mlflowInvalid("Invalid value for parameters 'start_step' and 'end_step': give both, start_step <= end_step")
	}
	limit := int64(320)
	if s := c.QueryParam("max_results"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > 1000 {
			return mlflowInvalid("Invalid value %q for parameter 'max_results': from 1 to 1000", s)
		}
		limit = n
	}
	out := struct {
		Metrics []mlflowMetricOfRun `json:"metrics"`
	}{Metrics: []mlflowMetricOfRun{}}
	ctx := c.Request().Context()
	for _, id := range ids {
		j, err := g.mlflowJob(c, id, "")
		if err != nil {
			return err
		}
		pts, err := g.metricSeries(ctx, j.ID, key)
		if err != nil {
			return err
		}
		in := pts[:0:0]
		for _, p := range pts {
			if !hasStart || (p.Step >= start && p.Step <= end) {
				in = append(in, p)
			}
		}
		for _, i := range sampleIndexes(len(in), int(limit)) {
			p := in[i]
			out.Metrics = append(out.Metrics, mlflowMetricOfRun{mlflowMetricOut{Key: key, Value: p.Value, Timestamp: p.Time.UnixMilli(), Step: p.Step}, j.ID})
		}
	}
	return c.JSON(http.StatusOK, out)
}

// sampleIndexes is at most k indexes of n, evenly spread, the first and
// last among them.
func sampleIndexes(n, k int) []int {
	if n <= k {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	if k == 1 {
		return []int{n - 1}
	}
	idx := make([]int, 0, k)
	for i := range k {
		idx = append(idx, i*(n-1)/(k-1))
	}
	return idx
}
