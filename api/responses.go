package api

import "time"

// The REST API's answers that are not a record of their own above. Each
// route answers one of these types (or a Job, Workspace, Datastore, ...);
// the gateway serves no shape of its own, so the Go client reads every
// answer with the types the gateway writes.

// Health is GET /healthz ("ok") and GET /readyz ("ready").
type Health struct {
	Status string `json:"status"`
}

// JobDetail is a job as GET /v1/jobs/{id} answers it (and submitting,
// canceling, logging params and tags, running a schedule by hand): the
// record, where a queued job stands, how its earlier attempts ended and its
// completion callbacks. A callback's secret shows as "***".
type JobDetail struct {
	Job
	// QueuePosition is the job's place among the pending jobs (0 is next),
	// while it is queued.
	QueuePosition *int64 `json:"queue_position,omitempty"`
	// Attempts are the job's attempts that ended, oldest first.
	Attempts []Attempt `json:"attempts,omitempty"`
	// Notifications are the delivery attempts of its completion callback,
	// oldest first.
	Notifications []Notification `json:"notifications,omitempty"`
}

// Attempt is how one attempt of a job ended.
type Attempt struct {
	Attempt    int        `json:"attempt"`
	Worker     string     `json:"worker,omitempty"`
	Status     Status     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	ReasonCode string     `json:"reason_code,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt time.Time  `json:"finished_at"`
	// Note says what the reason does not, such as that the attempt may
	// still be running somewhere.
	Note string `json:"note,omitempty"`
}

// Notification is one delivery attempt of a job's completion callback.
type Notification struct {
	Attempt int       `json:"attempt"`
	Type    string    `json:"type"` // job.succeeded, job.failed, job.canceled
	At      time.Time `json:"at"`
	// StatusCode is the receiver's answer; 0 when none came.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why the delivery failed, when it did.
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// WorkerList is GET /v1/workers.
type WorkerList struct {
	Workers []Worker `json:"workers"`
}

// Worker is a registered worker. To a workspace's token, Jobs and the GPUs'
// JobID show only that workspace's jobs.
type Worker struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Executor string `json:"executor"`
	Slots    int    `json:"slots"`
	// Status is what the worker says of itself: up, preparing,
	// out_of_service, stopping or stopped.
	Status string `json:"status"`
	// Problem says why a worker is out of service.
	Problem          string    `json:"problem,omitempty"`
	AllowHostProcess bool      `json:"allow_host_process"`
	StartedAt        time.Time `json:"started_at"`
	LastHeartbeat    time.Time `json:"last_heartbeat"`
	// Jobs are the IDs placed on it and not yet ended.
	Jobs []string    `json:"jobs"`
	GPUs []WorkerGPU `json:"gpus"`
	// Mounts names the cluster-level mounts every job on it gets at
	// /mounts/NAME.
	Mounts []string `json:"mounts,omitempty"`
	// State is the scheduler's view: its Status, or lost when its
	// heartbeats stopped.
	State string `json:"state"`
}

// WorkerGPU is one GPU of a worker.
type WorkerGPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Model     string `json:"model"`
	MemoryMB  int64  `json:"memory_mb"`
	Simulated bool   `json:"simulated"`
	// JobID holds the GPU; empty when it is free, or (to a workspace token)
	// when another workspace's job holds it.
	JobID string `json:"job_id,omitempty"`
	// InUse is set while a job holds the GPU.
	InUse bool `json:"in_use,omitempty"`
	// UtilizationPct and MemoryUsedMB are the worker's last sample.
	UtilizationPct *int   `json:"utilization_pct,omitempty"`
	MemoryUsedMB   *int64 `json:"memory_used_mb,omitempty"`
}

// MetricsRecorded answers POST /v1/jobs/{id}/metrics.
type MetricsRecorded struct {
	Recorded int `json:"recorded"`
}

// WorkspaceList is GET /v1/workspaces.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// TokenList is GET /v1/workspaces/{ws}/tokens, oldest first; no secrets.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// SecretName names a workspace secret: what POST /v1/secrets answers and
// GET /v1/secrets lists (values are never shown).
type SecretName struct {
	Name string `json:"name"`
}

// SecretList is GET /v1/secrets, sorted by name.
type SecretList struct {
	Secrets []SecretName `json:"secrets"`
}

// AuditPage is one page of GET /v1/audit, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"next_cursor"`
}

// Schedule is a schedule as the API shows it.
type Schedule struct {
	Name                    string    `json:"name"`
	Cron                    string    `json:"cron"`
	Timezone                string    `json:"timezone"`
	ConcurrencyPolicy       string    `json:"concurrency_policy"`
	StartingDeadlineSeconds int       `json:"starting_deadline_seconds"`
	Job                     JobSpec   `json:"job"`
	Paused                  bool      `json:"paused"`
	CreatedAt               time.Time `json:"created_at"`
	CreatedBy               string    `json:"created_by"`
	// Next are the next 5 fire times in the schedule's time zone; none
	// while paused.
	Next []time.Time `json:"next"`
	// LastScheduledAt is the latest tick handled, fired or skipped.
	LastScheduledAt *time.Time `json:"last_scheduled_at"`
	// LastFiredAt and LastJobID: the latest job the schedule started.
	LastFiredAt *time.Time `json:"last_fired_at"`
	LastJobID   string     `json:"last_job_id"`
}

// ScheduleList is GET /v1/schedules, sorted by name.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

// ScheduleRun is one firing of a schedule: the job it started, or why it
// started none.
type ScheduleRun struct {
	// ScheduledAt is the tick; for a run by hand, when it was asked for.
	ScheduledAt time.Time `json:"scheduled_at"`
	// FiredAt is when the job was created; nil when skipped.
	FiredAt       *time.Time `json:"fired_at"`
	JobID         string     `json:"job_id"`
	SkippedReason string     `json:"skipped_reason"`
	// Manual marks a run by hand (POST .../run).
	Manual bool `json:"manual,omitempty"`
}

// ScheduleHistory is GET /v1/schedules/{name}/history, newest first.
type ScheduleHistory struct {
	History []ScheduleRun `json:"history"`
}

// TriggerFilter says which deliveries a trigger acts on; an empty field
// matches anything.
type TriggerFilter struct {
	Event string `json:"event,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// Trigger is a webhook trigger as the API shows it: no secrets.
type Trigger struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// HookURL is the path deliveries are posted to, /hooks/{id}.
	HookURL   string        `json:"hook_url"`
	Filter    TriggerFilter `json:"filter"`
	Job       JobSpec       `json:"job"`
	CreatedAt time.Time     `json:"created_at"`
	// UpdatedAt is the last PATCH; nil when never changed.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	// PreviousSecretUntil is when the secret a rotation replaced stops being
	// accepted; nil when only the current secret is.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
}

// TriggerList is GET /v1/triggers, sorted by name.
type TriggerList struct {
	Triggers []Trigger `json:"triggers"`
}

// Delivery is one authenticated delivery to a trigger and what came of it:
// accepted, ignored, duplicate or rejected.
type Delivery struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Event      string    `json:"event,omitempty"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	JobID      string    `json:"job_id,omitempty"`
}

// DeliveryList is GET /v1/triggers/{name}/deliveries, newest first.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
}

// HookResult answers a delivery to POST /hooks/{id}: the job it started
// (202), the job an earlier delivery of it started (duplicate), why it was
// ignored, or GitHub's ping answered.
type HookResult struct {
	Duplicate bool   `json:"duplicate,omitempty"`
	Ignored   string `json:"ignored,omitempty"`
	JobID     string `json:"job_id,omitempty"`
	Pong      bool   `json:"pong,omitempty"`
}
