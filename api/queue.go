package api

import "time"

// Queue is GET /v1/queue: the jobs that wait, in the order the scheduler
// considers them, each with why it waits; a token sees its workspace's
// (a system token every workspace's).
type Queue struct {
	Pending []QueuedJob `json:"pending"`
	// Total counts every waiting job the caller may see; Pending holds at
	// most the request's limit (default 100, at most 1000) of them.
	Total int `json:"total"`
}

// QueuedJob is one waiting job in a Queue.
type QueuedJob struct {
	// Position is 1 for the job the scheduler considers first.
	Position   int       `json:"position"`
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Workspace  string    `json:"workspace"`
	Experiment string    `json:"experiment"`
	Priority   Priority  `json:"priority"`
	GPUs       int       `json:"gpus"`
	GPUModel   string    `json:"gpu_model,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// ReasonCode and Reason say why it waits (the job's own reason_code
	// and reason: quota, no_capacity, waiting_for_scheduler, ...).
	ReasonCode string `json:"reason_code"`
	Reason     string `json:"reason"`
}

// DeploymentTraffic is what a deployment's scoring router measured over
// the last minute (Deployment.Traffic; absent when it served nothing yet).
type DeploymentTraffic struct {
	// WindowSeconds is the span the numbers cover.
	WindowSeconds int     `json:"window_seconds"`
	Requests      int64   `json:"requests"`
	Errors        int64   `json:"errors"`
	RatePerSecond float64 `json:"rate_per_second"`
	// Latency percentiles in milliseconds, of the requests in the window.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	// ByTarget splits Requests by model version ("3": 120).
	ByTarget map[string]int64 `json:"by_target,omitempty"`
}
