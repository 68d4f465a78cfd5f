package api

import (
	"encoding/json"
	"time"
)

// BatchRequest is the JSON body of POST /v1/deployments/{name}/batch: the
// V2 inference requests to score, in order. A JSON-lines upload
// (Content-Type: application/x-ndjson, one V2 request a line) carries the
// rows in the body and the other fields as query parameters
// (error_threshold, max_concurrency, priority, timeout_seconds,
// callback_url) and the callback's
// secret in the Jobgate-Callback-Secret header.
type BatchRequest struct {
	// Requests are V2 inference requests (POST /v2/models/{name}/infer
	// bodies), scored in this order.
	Requests []json.RawMessage `json:"requests"`
	// Callback, when set, is called when the batch ends, signed as a job's
	// completion callback is (the job's notify).
	Callback *BatchCallback `json:"callback,omitempty"`
	// ErrorThreshold is how many failed rows the batch tolerates before it
	// fails; default 0.
	ErrorThreshold int `json:"error_threshold,omitempty"`
	// MaxConcurrency caps the requests in flight to the router; default 4.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// Priority is the batch job's; default low, so that online traffic
	// and other work go first.
	Priority Priority `json:"priority,omitempty"`
	// TimeoutSeconds bounds one attempt of the batch job; default the
	// gateway's job default.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// BatchCallback is where a batch's completion is sent.
type BatchCallback struct {
	URL string `json:"url"`
	// Secret is a whsec_ secret the callback is signed with.
	Secret string `json:"secret"`
}

// BatchStatus is where a batch stands.
type BatchStatus string

// The states of a batch.
const (
	BatchQueued    BatchStatus = "queued"
	BatchRunning   BatchStatus = "running"
	BatchSucceeded BatchStatus = "succeeded"
	BatchFailed    BatchStatus = "failed"
	BatchCanceled  BatchStatus = "canceled"
)

// BatchJob makes a job a batch's scorer (JobSpec.Batch): the worker reads
// the rows from the artifact store, sends each to the scoring router and
// writes the answers in order. Only the batch API sets it; a client's job
// spec that sets it is refused.
type BatchJob struct {
	// Deployment the rows are scored by (/v2/models/{deployment}/infer).
	Deployment string `json:"deployment"`
	// Input is the artifact key of the rows, one V2 request a line.
	Input string `json:"input"`
	// Total is the number of rows in Input.
	Total int `json:"total"`
	// ErrorThreshold is how many failed rows are tolerated.
	ErrorThreshold int `json:"error_threshold,omitempty"`
	// MaxConcurrency caps the requests in flight.
	MaxConcurrency int `json:"max_concurrency"`
	// TraceParent is the W3C traceparent of the request that submitted the
	// batch: every attempt's spans join its trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// Batch is a batch as GET /v1/batches/{id} shows it.
type Batch struct {
	ID         string      `json:"id"`
	Deployment string      `json:"deployment"`
	Status     BatchStatus `json:"status"`
	// Total rows; Done of them have an answer (Failed of those an error).
	Total  int `json:"total"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// RowsPerSecond is Done over the time the batch has run.
	RowsPerSecond float64    `json:"rows_per_second"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// Reason says why it waits or how it ended.
	Reason string `json:"reason,omitempty"`
}

// BatchAccepted is the answer to POST /v1/deployments/{name}/batch.
type BatchAccepted struct {
	ID     string      `json:"id"`
	Status BatchStatus `json:"status"`
}

// BatchRowError is the line of the results for a row that failed.
type BatchRowError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}
