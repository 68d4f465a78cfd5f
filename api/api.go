// Package api holds the public JSON shapes of jobgate's REST API: the job spec a
// client submits, the job record it reads back, and the error body every 4xx/5xx
// carries. The gateway serves them, the client package and the CLI consume them,
// and the worker reads the spec it runs.
package api

import "time"

// Status is a job's lifecycle state: queued → running → succeeded | failed | canceled.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Terminal reports whether s is an end state; a job in one never changes again.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Valid reports whether s is one of the five states.
func (s Status) Valid() bool {
	return s == StatusQueued || s == StatusRunning || s.Terminal()
}

// Priority orders queued jobs: high before normal before low.
type Priority string

const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Mode says how a job runs: in a podman container, or as a host process
// (Batch AI's "VM mode"), which a worker must allow explicitly.
type Mode string

const (
	ModeContainer Mode = "container"
	ModeProcess   Mode = "process"
	// ModeTracked is a run created through the tracking API (MLflow's
	// runs/create) that jobgate records but does not execute: it is running
	// from creation until its client ends it. It cannot be submitted.
	ModeTracked Mode = "tracked"
)

// Resources is what a job asks of the worker it runs on.
type Resources struct {
	// CPUs is a CPU limit in cores (0.5 = half a core); 0 means no limit.
	CPUs float64 `json:"cpus,omitempty"`
	// MemoryMB is a hard memory limit in MiB; 0 means the worker's default.
	MemoryMB int64 `json:"memory_mb,omitempty"`
	// GPUs is the number of GPUs the job needs.
	GPUs int `json:"gpus,omitempty"`
	// GPUModel, when set, must appear in the GPU's model name
	// (case-insensitive), e.g. "H100".
	GPUModel string `json:"gpu_model,omitempty"`
	// GPUMemoryMB is the least memory each GPU must have.
	GPUMemoryMB int64 `json:"gpu_memory_mb,omitempty"`
}

// JobSpec is what a client submits. Zero values get the defaults documented per
// field when the gateway accepts the job; the stored spec has them filled in.
type JobSpec struct {
	// Kind is "" or command (run Command), or batch-score (see BatchScore).
	Kind       JobKind `json:"kind,omitempty"`
	Name       string  `json:"name,omitempty"`
	Experiment string  `json:"experiment,omitempty"`
	// Image is the container image; required in container mode.
	Image string `json:"image,omitempty"`
	// Command is the argv to run, never passed through a shell.
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	Resources Resources         `json:"resources,omitempty"`
	// TimeoutSeconds bounds one attempt; default 3600.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// MaxRetries is how many times a failed attempt is retried; default 0.
	MaxRetries int `json:"max_retries,omitempty"`
	// Priority defaults to normal.
	Priority Priority `json:"priority,omitempty"`
	// Mode defaults to container.
	Mode Mode `json:"mode,omitempty"`
	// Secrets maps environment variable names to secret names of the job's
	// workspace; the values are put in the environment when the job starts
	// and are never returned by the API.
	Secrets map[string]string `json:"secrets,omitempty"`
	// User runs the container as this user (name, uid or uid:gid).
	User string `json:"user,omitempty"`
	// ReadOnlyRootfs mounts the image read-only; /tmp stays writable.
	ReadOnlyRootfs bool `json:"read_only_rootfs,omitempty"`
	// Notify is called back when the job ends.
	Notify *Notify `json:"notify,omitempty"`
	// ParentID makes this job a child of another job of the same workspace
	// (sweeps, pipelines); canceling the parent cancels its children.
	ParentID string `json:"parent_id,omitempty"`
	// CheckpointFrom names an ended job of the same workspace whose
	// checkpoint folder (JOBGATE_CHECKPOINT_DIR) this job starts from
	// instead of an empty one: a promoted sweep trial, a run resumed by
	// hand. A chain resolves to its first job's folder. A job's own token
	// may not set it. The folder is on the worker's disk: workers that share
	// --checkpoint-dir resume each other's.
	CheckpointFrom string `json:"checkpoint_from,omitempty"`
	// Tags label the job (key → value); the job and the API may add more
	// while it runs (POST /v1/jobs/{id}/tags, MLflow set-tag).
	Tags map[string]string `json:"tags,omitempty"`
	// Inputs maps input names (lower-case letters, digits, '_') to data of
	// the workspace's datastores; input NAME appears at /inputs/NAME in a
	// container, and its path is in JOBGATE_INPUT_<NAME>.
	Inputs map[string]Input `json:"inputs,omitempty"`
	// Preparation is an argv run before Command, in the same image with the
	// same environment, mounts, user and working folder (JOBGATE_WORKDIR),
	// never through a shell. Its output goes to the job's log. When it exits
	// non-zero the attempt fails with the reason preparation_failed (retried
	// like a failed command, up to MaxRetries) and Command does not run.
	Preparation []string `json:"preparation,omitempty"`
	// Service makes the job a replica of a deployment: a long-running
	// server with no timeout, a port of its own and a model mounted
	// read-only (see Service). Only the deployment controller sets it; the
	// API refuses it from a client.
	Service *Service `json:"service,omitempty"`
	// Batch makes the job a batch's scorer (see BatchJob). Only the batch
	// API sets it; the API refuses it from a client.
	Batch *BatchJob `json:"batch,omitempty"`
	// BatchScore is what a job of kind batch-score scores (see BatchScore).
	BatchScore *BatchScore `json:"batch_score,omitempty"`
}

// InputMode says how an input reaches the job.
type InputMode string

const (
	// InputReadOnlyMount binds the datastore's folder into the container
	// read-only (a host-process job gets the host path, which cannot be made
	// read-only for it).
	InputReadOnlyMount InputMode = "ro_mount"
	// InputDownload copies the data into a folder of the attempt's own,
	// writable and removed when the attempt ends.
	InputDownload InputMode = "download"
)

// Input is one piece of data a job reads: Path below datastore Datastore.
type Input struct {
	// Datastore names a datastore of the job's workspace.
	Datastore string `json:"datastore"`
	// Path is relative to the datastore's folder, slash-separated, without
	// "." or ".." segments; empty means the whole datastore.
	Path string `json:"path,omitempty"`
	// Mode defaults to ro_mount.
	Mode InputMode `json:"mode,omitempty"`
	// Within is set by the gateway and refused from a client: for a child
	// submitted with a job's token, the paths below the same datastore of
	// the input of that job (and of its own such parents) that allowed this
	// one, outermost first. The worker refuses the input when its data,
	// links resolved, leads out of any of them: a link under the parent's
	// path must not give the child what the parent's own view lacks.
	Within []string `json:"within,omitempty"`
}

// Notify is a completion callback: a POST of {"type": "job.succeeded",
// "job": {...}} to URL, signed the Standard Webhooks way with Secret.
type Notify struct {
	URL string `json:"url"`
	// Secret is a whsec_ secret; the API shows it as *** after submit.
	Secret string `json:"secret"`
	// Events limits the callbacks to these types: job.succeeded,
	// job.failed, job.canceled; empty means all three.
	Events []string `json:"events,omitempty"`
}

// Job is a job record as the API returns it. Reason says why it waits or
// how it ended, for people ("exit_code: exited with 3"), and ReasonCode is
// that reason's code, one of the Reason* constants, for programs (see Reason).
type Job struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Experiment string     `json:"experiment"`
	Status     Status     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	ReasonCode string     `json:"reason_code,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Attempt    int        `json:"attempt"`
	Worker     string     `json:"worker,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// CancelRequested is set once a cancel was asked for a running job and the
	// worker has not yet stopped it.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// GPUs are the indexes of the GPUs on Worker given to the current attempt.
	GPUs []int   `json:"gpus,omitempty"`
	Spec JobSpec `json:"spec"`
	// Metrics holds the last reported value of each of the job's metrics
	// (GET /v1/jobs/{id}/metrics has every point).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Params are what the job logged as its parameters (learning rate, ...);
	// a param never changes once logged.
	Params map[string]string `json:"params,omitempty"`
	// Tags are the spec's tags and those added since.
	Tags map[string]string `json:"tags,omitempty"`
	// TraceID is the W3C trace ID of the job's trace (its submit, placement
	// and attempts, and the spans of a workload that reads TRACEPARENT), to
	// look up in a tracing backend; empty when the gateway that made the job
	// traced nothing.
	TraceID string `json:"trace_id,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the job's
	// submit, which placement and the attempts continue; stored with the
	// job, not part of the API.
	TraceParent string `json:"-"`
	TraceState  string `json:"-"`
}

// JobList is one page of GET /v1/jobs, newest first.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"next_cursor,omitempty"`
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable machine code and a message meant for a person.
type ErrorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Scope is a permission of a token within its workspace.
type Scope string

const (
	ScopeRead   Scope = "read"
	ScopeSubmit Scope = "submit"
	ScopeScore  Scope = "score"
	// ScopeAdmin manages the workspace's tokens, secrets and datastores.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope, in order.
var Scopes = []Scope{ScopeRead, ScopeSubmit, ScopeScore, ScopeAdmin}

// Quotas bound what a workspace may use; zero means unlimited.
type Quotas struct {
	MaxRunningJobs    int `json:"max_running_jobs,omitempty"`
	MaxGPUs           int `json:"max_gpus,omitempty"`
	RequestsPerSecond int `json:"requests_per_second,omitempty"`
}

// Workspace is a tenant: its tokens, secrets, jobs and quotas.
type Workspace struct {
	Name   string `json:"name"`
	Quotas Quotas `json:"quotas"`
	// ImageAllowlist holds registry/repository prefixes jobs may use, e.g.
	// "localhost/" or "registry.example.com/team-a/"; empty allows any.
	ImageAllowlist []string `json:"image_allowlist,omitempty"`
	// AllowHostProcess lets the workspace's jobs run in mode process, on a
	// worker's host as the worker's own user. Only the system admin sets it
	// (POST /v1/workspaces, PATCH /v1/workspaces/{ws}); `jobgate dev` grants
	// it to default. The gateway checks it at submit, the worker again
	// before it starts such a job.
	AllowHostProcess bool      `json:"allow_host_process"`
	CreatedAt        time.Time `json:"created_at"`
}

// Token describes an API token; the secret itself is shown once, at creation.
type Token struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Scopes     []Scope    `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// NewToken is the answer to creating a token: the only time Token is shown.
type NewToken struct {
	Token
	Secret string `json:"token"`
}

// AuditEntry records who did what, when, in which workspace.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
}

// Datastore is a named host folder of a workspace that jobs read as inputs.
// The system admin may register any absolute path; a workspace admin only a
// folder below one of the roots the gateway's operator configured.
type Datastore struct {
	Name string `json:"name"`
	// Path is the absolute, clean path of the folder on the workers.
	Path      string    `json:"path"`
	CreatedAt time.Time `json:"created_at"`
	// CreatedBy names the token that registered it.
	CreatedBy string `json:"created_by,omitempty"`
}

// DatastoreList is GET /v1/datastores, sorted by name.
type DatastoreList struct {
	Datastores []Datastore `json:"datastores"`
}

// ArtifactList is GET /v1/jobs/{id}/artifacts: the files the job wrote to
// its outputs folder (JOBGATE_OUTPUTS), sorted by path.
type ArtifactList struct {
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is one output file; Path is relative to the outputs folder and
// slash-separated ("model/weights.bin").
type Artifact struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// JobMetrics is GET /v1/jobs/{id}/metrics: each metric's points in step order.
// A job reports a point by printing a line such as
// "::metric name=loss value=0.31 step=12" on its stdout.
type JobMetrics struct {
	Metrics map[string][]MetricPoint `json:"metrics"`
}

// MetricPoint is one value of a metric: at most one per step, the latest
// reported one.
type MetricPoint struct {
	Step      int64     `json:"step"`
	Value     float64   `json:"value"`
	Timestamp time.Time `json:"timestamp"`
}

// MetricsInput is the body of POST /v1/jobs/{id}/metrics.
type MetricsInput struct {
	Metrics []MetricInput `json:"metrics"`
}

// MetricInput is one reported value. Without Step, the point gets the next
// step of its metric (0, 1, 2, ...), as a "::metric" line without step does.
type MetricInput struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Step  *int64  `json:"step,omitempty"`
	// Timestamp defaults to when the gateway received the point.
	Timestamp *time.Time `json:"timestamp,omitempty"`
}

// ParamsInput is the body of POST /v1/jobs/{id}/params.
type ParamsInput struct {
	Params map[string]string `json:"params"`
}

// TagsInput is the body of POST /v1/jobs/{id}/tags.
type TagsInput struct {
	Tags map[string]string `json:"tags"`
}

// ExperimentList is GET /v1/experiments, most recently active first.
type ExperimentList struct {
	Experiments []Experiment `json:"experiments"`
}

// Experiment is a name jobs are grouped under, with how many it holds.
type Experiment struct {
	Name         string    `json:"name"`
	JobCount     int64     `json:"job_count"`
	LastActivity time.Time `json:"last_activity"`
}

// ExperimentJobs is GET /v1/experiments/{name}/jobs: the experiment's jobs
// with their last metric values, newest first or sorted by a metric.
type ExperimentJobs struct {
	Experiment string `json:"experiment"`
	Jobs       []Job  `json:"jobs"`
}

// ExecRequest is the body of POST /v1/jobs/{id}/exec: run Command (an argv,
// never passed through a shell) beside the running job, in its container or,
// for a host-process job, with its environment and working folder.
type ExecRequest struct {
	Command []string `json:"command"`
	// TimeoutSeconds stops the command after this long; default 300, at
	// most 3600.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// ExecLine is one line of the answer to POST /v1/jobs/{id}/exec, which is
// newline-delimited JSON (application/x-ndjson): output chunks as the
// command writes them, then one last line with ExitCode or Error.
type ExecLine struct {
	// Stream is "stdout" or "stderr" on an output chunk.
	Stream string `json:"stream,omitempty"`
	// Data is the chunk: text, or base64 when Encoding says so.
	Data string `json:"data,omitempty"`
	// Encoding is "base64" for a chunk that is not valid UTF-8.
	Encoding string `json:"encoding,omitempty"`
	// ExitCode ends a command that ran: its exit status (128+signal when a
	// signal ended it).
	ExitCode *int `json:"exit_code,omitempty"`
	// Error ends a session that failed: the job ended, the command could
	// not start or ran past its timeout, the worker went away.
	Error *ErrorDetail `json:"error,omitempty"`
}
