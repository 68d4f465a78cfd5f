package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// The MLflow tracking REST API, the subset an unchanged training script uses
// (mlflow.start_run/end_run, log_metric(s), log_param(s), set_tag(s),
// set_experiment): same paths, JSON shapes and error format as an MLflow
// tracking server. A jobgate job is an MLflow run whose run_id is the job ID;
// inside a job MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN and MLFLOW_RUN_ID
// point the client at its own job. An experiment's ID is its name ("0" is
// the "default" experiment, MLflow's Default). runs/create makes a tracked
// run: a job record jobgate does not execute, running until runs/update ends
// it.
const mlflowPrefix = "/api/2.0/mlflow/"

// mlflowCode is one of MLflow's error codes (databricks.ErrorCode).
type mlflowCode string

// The MLflow codes this dialect answers.
const (
	mlflowInvalidParameter mlflowCode = "INVALID_PARAMETER_VALUE"
	mlflowNotFound         mlflowCode = "RESOURCE_DOES_NOT_EXIST"
	mlflowAlreadyExists    mlflowCode = "RESOURCE_ALREADY_EXISTS"
	mlflowInvalidState     mlflowCode = "INVALID_STATE"
	mlflowUnauthenticated  mlflowCode = "UNAUTHENTICATED"
	mlflowPermissionDenied mlflowCode = "PERMISSION_DENIED"
	mlflowLimitExceeded    mlflowCode = "REQUEST_LIMIT_EXCEEDED"
	mlflowUnavailable      mlflowCode = "TEMPORARILY_UNAVAILABLE"
	mlflowInternal         mlflowCode = "INTERNAL_ERROR"
	mlflowNoEndpoint       mlflowCode = "ENDPOINT_NOT_FOUND"
)

// mlflowCodes is the MLflow code of each api.Code: how the errors of the
// shared code (authentication, the body reader, the tracking functions,
// the store) read to an MLflow client. Every code is here
// (TestErrorRenderers).
var mlflowCodes = map[api.Code]mlflowCode{
	api.CodeBadRequest:        mlflowInvalidParameter,
	api.CodeInvalidSpec:       mlflowInvalidParameter,
	api.CodeInvalid:           mlflowInvalidParameter,
	api.CodeTooLarge:          mlflowInvalidParameter,
	api.CodeStartFailed:       mlflowInvalidParameter,
	api.CodeUnauthorized:      mlflowUnauthenticated,
	api.CodeForbidden:         mlflowPermissionDenied,
	api.CodeNotFound:          mlflowNotFound,
	api.CodeConflict:          mlflowInvalidState,
	api.CodeJobNotRunning:     mlflowInvalidState,
	api.CodeExecUnsupported:   mlflowInvalidState,
	api.CodeRateLimited:       mlflowLimitExceeded,
	api.CodeTooManySessions:   mlflowLimitExceeded,
	api.CodeUnavailable:       mlflowUnavailable,
	api.CodeWorkerUnavailable: mlflowUnavailable,
	api.CodeWorkerStopped:     mlflowUnavailable,
	api.CodeMethodNotAllowed:  mlflowNoEndpoint, // no endpoint has this method and path
	api.CodeInternal:          mlflowInternal,
	api.CodeWorkerTimeout:     mlflowInternal,
	api.CodeTimeout:           mlflowInternal,
	api.CodeExecFailed:        mlflowInternal,
	api.CodeOutputLost:        mlflowInternal,
}

// mlflowErr is an error in MLflow's own words, which the MLflow handlers
// answer where an MLflow server would: codes api.Code has no word for
// (RESOURCE_ALREADY_EXISTS) and statuses of MLflow's that differ from the
// REST API's (MLflow answers a bad parameter, an existing resource and a bad
// state with 400). Only the MLflow renderer writes it as it is; read as an
// *api.Error (errors.As) it is the nearest api.Code.
type mlflowErr struct {
	Code    mlflowCode
	Message string
}

func (e *mlflowErr) Error() string { return string(e.Code) + ": " + e.Message }

// status is what MLflow's server answers with the code.
func (e *mlflowErr) status() int {
	if e.Code == mlflowNotFound || e.Code == mlflowNoEndpoint {
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// As reads the error as an *api.Error.
func (e *mlflowErr) As(target any) bool {
	p, ok := target.(**api.Error)
	if !ok {
		return false
	}
	code := api.CodeBadRequest
	switch e.Code {
	case mlflowNotFound:
		code = api.CodeNotFound
	case mlflowAlreadyExists, mlflowInvalidState:
		code = api.CodeConflict
	}
	*p = api.Errorf(code, "%s", e.Message)
	return true
}

// mlflowErrors renders errors as MLflow's server does: {error_code, message}.
type mlflowErrors struct{}

func (mlflowErrors) render(err error, e *api.Error) (int, any) {
	if me := (*mlflowErr)(nil); errors.As(err, &me) {
		return me.status(), mlflowError{ErrorCode: string(me.Code), Message: me.Message}
	}
	// The group's own 404 (notFound): a route jobgate does not serve.
	if he := (*echo.HTTPError)(nil); errors.As(err, &he) && he.Code == http.StatusNotFound {
		return http.StatusNotFound, mlflowError{ErrorCode: string(mlflowNoEndpoint), Message: "jobgate does not serve this MLflow endpoint; README.md lists those it serves"}
	}
	return e.Code.Status(), mlflowError{ErrorCode: string(cmp.Or(mlflowCodes[e.Code], mlflowInternal)), Message: e.Message}
}

func mlflowErrorf(code mlflowCode, format string, args ...any) *mlflowErr {
	return &mlflowErr{Code: code, Message: fmt.Sprintf(format, args...)}
}

// MLflow's limits on one log-batch call.
const (
	mlflowMaxBatchMetrics = 1000
	mlflowMaxBatchParams  = 100
	mlflowMaxBatchTags    = 100
)

func (g *Gateway) mlflowRoutes(read, submit access) {
	p := mlflowPrefix
	mg := g.newGroup(mlflowErrors{})
	mg.notFound(p)
	// MLflow's server serves its preview paths too; jobgate serves none of
	// them, and answers them in MLflow's words.
	mg.notFound(mlflowPreviewPrefix)
	mg.route(http.MethodPost, p+"experiments/create", submit, g.mlflowCreateExperiment)
	mg.route(http.MethodGet, p+"experiments/get-by-name", read, g.mlflowExperimentByName)
	mg.route(http.MethodGet, p+"experiments/get", read, g.mlflowGetExperiment)
	mg.route(http.MethodGet, p+"experiments/list", read, g.mlflowListExperiments)
	mg.route(http.MethodGet, p+"experiments/search", read, g.mlflowSearchExperiments)
	mg.route(http.MethodPost, p+"experiments/search", read, g.mlflowSearchExperiments)
	mg.route(http.MethodPost, p+"experiments/update", submit, g.mlflowUpdateExperiment)
	mg.route(http.MethodPost, p+"experiments/delete", submit, g.mlflowDeleteExperiment)
	mg.route(http.MethodPost, p+"experiments/restore", submit, g.mlflowRestoreExperiment)
	mg.route(http.MethodPost, p+"experiments/set-experiment-tag", submit, g.mlflowSetExperimentTag)
	mg.route(http.MethodPost, p+"runs/create", submit, g.mlflowCreateRun)
	mg.route(http.MethodGet, p+"runs/get", read, g.mlflowGetRun)
	mg.route(http.MethodPost, p+"runs/search", read, g.mlflowSearchRuns)
	mg.route(http.MethodPost, p+"runs/update", submit, g.mlflowUpdateRun)
	mg.route(http.MethodPost, p+"runs/delete", submit, g.mlflowDeleteRun)
	mg.route(http.MethodPost, p+"runs/restore", submit, g.mlflowRestoreRun)
	mg.route(http.MethodPost, p+"runs/log-metric", submit, g.mlflowLogMetric)
	mg.route(http.MethodPost, p+"runs/log-batch", submit, g.mlflowLogBatch)
	mg.route(http.MethodPost, p+"runs/log-parameter", submit, g.mlflowLogParam)
	mg.route(http.MethodPost, p+"runs/set-tag", submit, g.mlflowSetTag)
	mg.route(http.MethodPost, p+"runs/delete-tag", submit, g.mlflowDeleteTag)
	mg.route(http.MethodGet, p+"metrics/get-history", read, g.mlflowMetricHistory)
	mg.route(http.MethodGet, p+"metrics/get-history-bulk-interval", read, g.mlflowBulkHistory)
	mg.route(http.MethodGet, p+"artifacts/list", read, g.mlflowListArtifacts)
	// The registry is the workspace's, in no job tree: as on /v1/models, a
	// job token may not read or change it.
	g.mlflowModelRoutes(mg, access{Scope: api.ScopeRead}, access{Scope: api.ScopeSubmit})
	g.mlflowArtifactRoutes(mg, read, submit)
}

// mlflowPreviewPrefix is where MLflow's server serves its preview routes.
const mlflowPreviewPrefix = "/api/2.0/preview/mlflow/"

// mlflowError is MLflow's error body.
type mlflowError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

func mlflowInvalid(format string, args ...any) *mlflowErr {
	return mlflowErrorf(mlflowInvalidParameter, format, args...)
}

// flexInt64 is a proto3 int64 in JSON: MLflow's clients send a number, and
// older ones (and proto3's canonical form) a string.
type flexInt64 struct {
	V   int64
	Set bool
}

func (f *flexInt64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an integer", b)
	}
	f.V, f.Set = n, true
	return nil
}

// flexFloat is a proto3 double in JSON: a number, or a string such as "NaN".
type flexFloat struct {
	V   float64
	Set bool
}

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	f.V, f.Set = v, true
	return nil
}

// decodeMLflow reads an MLflow request body (readJSONBody). Unknown fields
// are ignored, as an MLflow server does, so newer clients that send more
// still work; every other fault is MLflow's INVALID_PARAMETER_VALUE (400).
func decodeMLflow(c echo.Context, v any) error {
	return mlflowInvalidFrom(readJSONBody(c, v, false))
}

type mlflowKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type mlflowMetric struct {
	Key       string    `json:"key"`
	Value     flexFloat `json:"value"`
	Timestamp flexInt64 `json:"timestamp"`
	Step      flexInt64 `json:"step"`
}

type mlflowMetricOut struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

type mlflowRunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time,omitempty"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

type mlflowRunData struct {
	Metrics []mlflowMetricOut `json:"metrics"`
	Params  []mlflowKV        `json:"params"`
	Tags    []mlflowKV        `json:"tags"`
}

type mlflowRun struct {
	Info mlflowRunInfo `json:"info"`
	Data mlflowRunData `json:"data"`
}

// The answers of the MLflow routes.
type (
	mlflowRunAnswer struct {
		Run mlflowRun `json:"run"`
	}
	mlflowRunInfoAnswer struct {
		RunInfo mlflowRunInfo `json:"run_info"`
	}
	mlflowExperimentAnswer struct {
		Experiment mlflowExperiment `json:"experiment"`
	}
	mlflowExperimentID struct {
		ExperimentID string `json:"experiment_id"`
	}
)

type mlflowExperiment struct {
	ExperimentID     string     `json:"experiment_id"`
	Name             string     `json:"name"`
	ArtifactLocation string     `json:"artifact_location"`
	LifecycleStage   string     `json:"lifecycle_stage"`
	LastUpdateTime   int64      `json:"last_update_time,omitempty"`
	CreationTime     int64      `json:"creation_time,omitempty"`
	Tags             []mlflowKV `json:"tags"`
}

func experimentID(name string) string {
	if name == defaultExperiment {
		return "0"
	}
	return name
}

// experimentName maps an MLflow experiment ID (or name, for get-by-name)
// to jobgate's experiment name.
func experimentName(id string) string {
	if id == "0" || id == "Default" {
		return defaultExperiment
	}
	return id
}

// mlflowInvalidFrom is an error of the request reader or the tracking code
// as MLflow answers a bad parameter: a fault of the request's (an *api.Error
// below 500 other than a body over the cap: a value out of range, a param
// that changed, too many names) is INVALID_PARAMETER_VALUE (400), in an
// MLflow server's words where the tracking code has them (refusal); the
// rest (a lost Redis, ...) stays as it is.
func mlflowInvalidFrom(err error) error {
	if r := (*refusal)(nil); errors.As(err, &r) {
		return mlflowInvalid("%s", r.mlflow)
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code != api.CodeTooLarge && ae.Code.Status() < 500 {
		return mlflowInvalid("%s", ae.Message)
	}
	return err
}

// mlflowExperiment is experiment name of ws in MLflow's shape.
func (g *Gateway) mlflowExperiment(ctx context.Context, ws, name string) (mlflowExperiment, error) {
	last, err := g.experimentActivity(ctx, ws, name)
	if isCode(err, api.CodeNotFound) {
		return mlflowExperiment{}, mlflowErrorf(mlflowNotFound, "Could not find experiment with name '%s'", name)
	}
	if err != nil {
		return mlflowExperiment{}, err
	}
	display := name
	if name == defaultExperiment {
		display = "Default"
	}
	e := mlflowExperiment{ExperimentID: experimentID(name), Name: display, LifecycleStage: "active", Tags: []mlflowKV{}}
	if !last.IsZero() {
		e.LastUpdateTime, e.CreationTime = last.UnixMilli(), last.UnixMilli()
	}
	return e, nil
}

// isCode says whether err is an *api.Error of code.
func isCode(err error, code api.Code) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

func (g *Gateway) mlflowCreateExperiment(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	if in.Name == "" {
		return mlflowInvalid("Missing value for required parameter 'name'")
	}
	created, err := g.createExperiment(c.Request().Context(), principalOf(c), experimentName(in.Name))
	switch {
	case isCode(err, api.CodeInvalid):
		return mlflowInvalid("Invalid experiment name '%s': jobgate experiment names are 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", in.Name)
	case err != nil:
		return err
	case !created:
		return mlflowErrorf(mlflowAlreadyExists, "Experiment '%s' already exists.", in.Name)
	}
	return c.JSON(http.StatusOK, mlflowExperimentID{ExperimentID: experimentID(experimentName(in.Name))})
}

func (g *Gateway) mlflowExperimentByName(c echo.Context) error {
	name := c.QueryParam("experiment_name")
	if name == "" {
		return mlflowInvalid("Missing value for required parameter 'experiment_name'")
	}
	e, err := g.mlflowExperimentOf(c.Request().Context(), principalOf(c).Workspace, experimentName(name), nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mlflowExperimentAnswer{Experiment: e})
}

func (g *Gateway) mlflowGetExperiment(c echo.Context) error {
	id := c.QueryParam("experiment_id")
	if id == "" {
		return mlflowInvalid("Missing value for required parameter 'experiment_id'")
	}
	e, err := g.mlflowExperimentOf(c.Request().Context(), principalOf(c).Workspace, experimentName(id), nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mlflowExperimentAnswer{Experiment: e})
}

// mlflowJob is the run (job) a request names with run_id (or the older
// run_uuid), in the caller's reach (trackedJob).
func (g *Gateway) mlflowJob(c echo.Context, runID, runUUID string) (*api.Job, error) {
	id := cmp.Or(runID, runUUID)
	if id == "" {
		return nil, mlflowInvalid("Missing value for required parameter 'run_id'")
	}
	j, err := g.trackedJob(c.Request().Context(), principalOf(c), id)
	return j, mlflowRunErr(err, id)
}

// mlflowRunErr is an error about run id in MLflow's words: no such run is
// RESOURCE_DOES_NOT_EXIST.
func mlflowRunErr(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return mlflowErrorf(mlflowNotFound, "Run with id=%s not found", id)
	}
	return err
}

// mlflowStatus is a job's status in MLflow's words.
func mlflowStatus(s api.Status) string {
	switch s {
	case api.StatusQueued:
		return "SCHEDULED"
	case api.StatusRunning:
		return "RUNNING"
	case api.StatusSucceeded:
		return "FINISHED"
	case api.StatusCanceled:
		return "KILLED"
	}
	return "FAILED"
}

// artifactURI is where MLflow's client puts a run's artifacts: the job's
// own outputs folder, as the job sees it, so log_artifact and log_model
// write there and the files come back as the job's artifacts. A tracked
// run has no such folder: its URI is MLflow's artifact proxy
// (mlflow_artifacts.go), which stores the files as the run's outputs.
func (g *Gateway) artifactURI(ctx context.Context, j *api.Job) string {
	if j.Spec.Mode != api.ModeTracked {
		if p := g.outputsFolder(ctx, j); p != "" {
			return "file://" + p
		}
	}
	return "mlflow-artifacts:/" + j.ID
}

func (g *Gateway) runInfo(ctx context.Context, j *api.Job) mlflowRunInfo {
	info := mlflowRunInfo{RunID: j.ID, RunUUID: j.ID, RunName: j.Name, ExperimentID: experimentID(j.Experiment),
		UserID: j.Workspace, Status: mlflowStatus(j.Status), LifecycleStage: "active", ArtifactURI: g.artifactURI(ctx, j)}
	switch {
	case j.StartedAt != nil:
		info.StartTime = j.StartedAt.UnixMilli()
	default:
		info.StartTime = j.CreatedAt.UnixMilli()
	}
	if j.FinishedAt != nil {
		info.EndTime = j.FinishedAt.UnixMilli()
	}
	return info
}

// mlflowRunOf is job j as an MLflow run: its info and what it recorded.
func (g *Gateway) mlflowRunOf(ctx context.Context, j *api.Job) (mlflowRun, error) {
	run := mlflowRun{Info: g.runInfo(ctx, j), Data: mlflowRunData{Metrics: []mlflowMetricOut{}, Params: []mlflowKV{}, Tags: []mlflowKV{}}}
	latest, params, tags, err := g.runData(ctx, j.ID)
	if err != nil {
		return run, err
	}
	deleted, err := g.deletedRuns(ctx, []string{j.ID})
	if err != nil {
		return run, err
	}
	run.Info.LifecycleStage = lifecycle(deleted[j.ID])
	for name, p := range latest {
		run.Data.Metrics = append(run.Data.Metrics, mlflowMetricOut{Key: name, Value: p.Value, Timestamp: p.Time.UnixMilli(), Step: p.Step})
	}
	for k, v := range params {
		run.Data.Params = append(run.Data.Params, mlflowKV{k, v})
	}
	for k, v := range tags {
		run.Data.Tags = append(run.Data.Tags, mlflowKV{k, v})
	}
	if _, ok := tags["mlflow.runName"]; !ok && j.Name != "" {
		run.Data.Tags = append(run.Data.Tags, mlflowKV{"mlflow.runName", j.Name})
	}
	return run, nil
}

func (g *Gateway) mlflowGetRun(c echo.Context) error {
	j, err := g.mlflowJob(c, c.QueryParam("run_id"), c.QueryParam("run_uuid"))
	if err != nil {
		return err
	}
	run, err := g.mlflowRunOf(c.Request().Context(), j)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mlflowRunAnswer{Run: run})
}

// mlflowCreateRun makes a tracked run (startRun). With a job token it
// becomes a child of the token's job (or of the run named by the
// mlflow.parentRunId tag, if that is in the job's tree), so nested runs land
// under the job.
func (g *Gateway) mlflowCreateRun(c echo.Context) error {
	var in struct {
		ExperimentID string     `json:"experiment_id"`
		RunName      string     `json:"run_name"`
		StartTime    flexInt64  `json:"start_time"`
		Tags         []mlflowKV `json:"tags"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	exp := experimentName(cmp.Or(in.ExperimentID, "0"))
	if _, err := g.experimentActivity(ctx, p.Workspace, exp); isCode(err, api.CodeNotFound) {
		return mlflowErrorf(mlflowNotFound, "No Experiment with id=%s exists", in.ExperimentID)
	} else if err != nil {
		return err
	}
	if deleted, err := g.experimentDeleted(ctx, p.Workspace, exp); err != nil {
		return err
	} else if deleted {
		return mlflowErrorf(mlflowInvalidState, "The experiment %s must be in the 'active' state. Current state is deleted.", cmp.Or(in.ExperimentID, "0"))
	}
	tags := map[string]string{}
	for _, t := range in.Tags {
		tags[t.Key] = t.Value
	}
	if in.RunName == "" {
		in.RunName = tags["mlflow.runName"]
	}
	if err := checkRunName(in.RunName); err != nil {
		return err
	}
	if err := store.CheckKV("tag", tags, store.MaxTagValueLen); err != nil {
		return mlflowInvalid("%v", err)
	}
	spec := api.JobSpec{Name: in.RunName, Experiment: exp, Mode: api.ModeTracked, Command: []string{}, Tags: tags,
		ParentID: cmp.Or(tags["mlflow.parentRunId"], p.JobID)}
	started := g.now().UTC()
	if in.StartTime.Set && in.StartTime.V > 0 {
		started = time.UnixMilli(in.StartTime.V).UTC()
	}
	j, err := g.startRun(ctx, p, spec, started)
	if isCode(err, api.CodeConflict) {
		return mlflowErrorf(mlflowInvalidState, "%s", apiError(err).Message)
	}
	if err != nil {
		return mlflowRunErr(err, spec.ParentID)
	}
	run, err := g.mlflowRunOf(ctx, j)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mlflowRunAnswer{Run: run})
}

// mlflowUpdateRun ends a tracked run (FINISHED, FAILED or KILLED). A job
// that jobgate runs ends when its process does: for it the call only
// answers the run's info, as start_run and end_run expect.
func (g *Gateway) mlflowUpdateRun(c echo.Context) error {
	var in struct {
		RunID   string    `json:"run_id"`
		RunUUID string    `json:"run_uuid"`
		Status  string    `json:"status"`
		EndTime flexInt64 `json:"end_time"`
		RunName string    `json:"run_name"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	j, err := g.mlflowJob(c, in.RunID, in.RunUUID)
	if err != nil {
		return err
	}
	var end api.Status
	switch in.Status {
	case "", "RUNNING", "SCHEDULED":
	case "FINISHED":
		end = api.StatusSucceeded
	case "FAILED":
		end = api.StatusFailed
	case "KILLED":
		end = api.StatusCanceled
	default:
		return mlflowInvalid("Invalid value %q for parameter 'status': want RUNNING, SCHEDULED, FINISHED, FAILED or KILLED", in.Status)
	}
	ctx := c.Request().Context()
	if in.RunName != "" && in.RunName != j.Name {
		if err := checkRunName(in.RunName); err != nil {
			return err
		}
		if err := g.renameRun(ctx, j, in.RunName); err != nil {
			return mlflowRunErr(err, j.ID)
		}
		// MLflow keeps the name in the mlflow.runName tag too.
		if err := g.setTags(ctx, j.ID, map[string]string{"mlflow.runName": in.RunName}); err != nil {
			return mlflowInvalidFrom(err)
		}
		j.Name = in.RunName
	}
	if end != "" {
		reason := api.Reason{Code: api.ReasonEndedByClient, Detail: "ended through the tracking API"}
		if end == api.StatusCanceled {
			reason = api.Reason{Code: api.ReasonCanceled, Detail: "killed through the tracking API"}
		}
		if j, err = g.endRun(ctx, j, end, reason); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, mlflowRunInfoAnswer{RunInfo: g.runInfo(ctx, j)})
}

func (g *Gateway) mlflowLogMetric(c echo.Context) error {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
		mlflowMetric
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	j, err := g.mlflowJob(c, in.RunID, in.RunUUID)
	if err != nil {
		return err
	}
	p, err := g.mlflowPoint(in.mlflowMetric)
	if err != nil {
		return err
	}
	if err := g.logMetrics(c.Request().Context(), j.ID, []store.MetricPoint{p}); err != nil {
		return mlflowInvalidFrom(err)
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// mlflowPoint checks one MLflow metric; its timestamp is milliseconds since
// the epoch. MLflow's client sends step 0 when the script gives none, and
// MLflow keeps every value logged at a step; jobgate keeps one point per
// step, so a point at step 0 goes to the metric's next step instead (the
// first point still lands at 0): log_metric in a loop without a step keeps
// its history.
func (g *Gateway) mlflowPoint(m mlflowMetric) (store.MetricPoint, error) {
	switch {
	case m.Key == "":
		return store.MetricPoint{}, mlflowInvalid("Missing value for required parameter 'key'")
	case !m.Value.Set:
		return store.MetricPoint{}, mlflowInvalid("Missing value for required parameter 'value' of metric '%s'", m.Key)
	case math.IsNaN(m.Value.V) || math.IsInf(m.Value.V, 0):
		return store.MetricPoint{}, mlflowInvalid("metric '%s': jobgate records finite values only, not %v", m.Key, m.Value.V)
	}
	var step *int64
	if m.Step.V != 0 {
		step = &m.Step.V
	}
	ts := g.now().UTC()
	if m.Timestamp.Set && m.Timestamp.V > 0 {
		ts = time.UnixMilli(m.Timestamp.V).UTC()
	}
	p, err := metricPoint(m.Key, m.Value.V, step, &ts, ts)
	if err != nil {
		return p, mlflowInvalid("metric '%s': %v", m.Key, err)
	}
	return p, nil
}

func (g *Gateway) mlflowLogBatch(c echo.Context) error {
	var in struct {
		RunID   string         `json:"run_id"`
		Metrics []mlflowMetric `json:"metrics"`
		Params  []mlflowKV     `json:"params"`
		Tags    []mlflowKV     `json:"tags"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	switch {
	case len(in.Metrics) > mlflowMaxBatchMetrics:
		return mlflowInvalid("A batch logging request can contain at most %d metrics. Got %d metrics.", mlflowMaxBatchMetrics, len(in.Metrics))
	case len(in.Params) > mlflowMaxBatchParams:
		return mlflowInvalid("A batch logging request can contain at most %d params. Got %d params.", mlflowMaxBatchParams, len(in.Params))
	case len(in.Tags) > mlflowMaxBatchTags:
		return mlflowInvalid("A batch logging request can contain at most %d tags. Got %d tags.", mlflowMaxBatchTags, len(in.Tags))
	}
	j, err := g.mlflowJob(c, in.RunID, "")
	if err != nil {
		return err
	}
	// Check everything before writing anything.
	pts := make([]store.MetricPoint, 0, len(in.Metrics))
	for _, m := range in.Metrics {
		p, err := g.mlflowPoint(m)
		if err != nil {
			return err
		}
		pts = append(pts, p)
	}
	params, tags := map[string]string{}, map[string]string{}
	for _, kv := range in.Params {
		if old, dup := params[kv.Key]; dup && old != kv.Value {
			return mlflowInvalid("Duplicate parameter keys have been submitted: %s", kv.Key)
		}
		params[kv.Key] = kv.Value
	}
	for _, kv := range in.Tags {
		tags[kv.Key] = kv.Value
	}
	if err := store.CheckKV("param", params, store.MaxParamValueLen); err != nil {
		return mlflowInvalid("%v", err)
	}
	if err := store.CheckKV("tag", tags, store.MaxTagValueLen); err != nil {
		return mlflowInvalid("%v", err)
	}
	ctx := c.Request().Context()
	if err := g.logParams(ctx, j.ID, params); err != nil {
		return mlflowInvalidFrom(err)
	}
	if err := g.setTags(ctx, j.ID, tags); err != nil {
		return mlflowInvalidFrom(err)
	}
	if len(pts) > 0 {
		if err := g.logMetrics(ctx, j.ID, pts); err != nil {
			return mlflowInvalidFrom(err)
		}
	}
	return c.JSON(http.StatusOK, struct{}{})
}

func (g *Gateway) mlflowLogParam(c echo.Context) error { return g.mlflowKeyValue(c, g.logParams) }

func (g *Gateway) mlflowSetTag(c echo.Context) error { return g.mlflowKeyValue(c, g.setTags) }

// mlflowKeyValue serves log-parameter and set-tag: one key and value for a
// run, stored by set.
func (g *Gateway) mlflowKeyValue(c echo.Context, set func(context.Context, string, map[string]string) error) error {
	var in struct {
		RunID   string `json:"run_id"`
		RunUUID string `json:"run_uuid"`
		Key     string `json:"key"`
		Value   string `json:"value"`
	}
	if err := decodeMLflow(c, &in); err != nil {
		return err
	}
	j, err := g.mlflowJob(c, in.RunID, in.RunUUID)
	if err != nil {
		return err
	}
	if err := set(c.Request().Context(), j.ID, map[string]string{in.Key: in.Value}); err != nil {
		return mlflowInvalidFrom(err)
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// checkRunName checks an MLflow run_name.
func checkRunName(name string) error {
	if len(name) > 200 {
		return mlflowInvalid("run_name is longer than 200 characters")
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return mlflowInvalid("run_name must not hold control characters")
	}
	return nil
}
