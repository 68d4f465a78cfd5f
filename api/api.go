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
)

// Reasons a job ended or why it is waiting. Reason strings in records may add
// detail after these words ("image_not_found: localhost/x:latest").
const (
	ReasonExitCode      = "exit_code"
	ReasonTimeout       = "timeout"
	ReasonCanceled      = "canceled"
	ReasonImageNotFound = "image_not_found"
	ReasonStartFailed   = "start_failed"
	ReasonModeRefused   = "mode_not_allowed"
	ReasonWorkerLost    = "worker_lost"
	ReasonWorkerStopped = "worker_stopped"
	// ReasonSecretUnavailable: a secret the job names could not be opened.
	ReasonSecretUnavailable = "secret_unavailable"
	// ReasonPreempted: a high-priority job needed the GPUs of this low one.
	ReasonPreempted = "preempted"
	// ReasonOutputsTooLarge: the job wrote more to JOBGATE_OUTPUTS than the
	// worker's cap (--max-output-mb); nothing of that attempt was collected.
	ReasonOutputsTooLarge = "outputs_too_large"
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
	Name       string `json:"name,omitempty"`
	Experiment string `json:"experiment,omitempty"`
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

// Job is a job record as the API returns it.
type Job struct {
	ID         string     `json:"id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	Experiment string     `json:"experiment"`
	Status     Status     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
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
	Code    string `json:"code"`
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
	ImageAllowlist []string  `json:"image_allowlist,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
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
