package api

import "encoding/json"

// JobKind says what a job is. The zero value is a command job: the
// spec's command in its image.
type JobKind string

const (
	// KindCommand runs the spec's command (the default, "").
	KindCommand JobKind = "command"
	// KindBatchScore scores the files of a datastore folder with a
	// registered model (JobSpec.BatchScore) and writes predictions.jsonl
	// to the job's outputs.
	KindBatchScore JobKind = "batch-score"
)

// BatchScore is the part of a batch-score job's spec (kind batch-score)
// that says what to score and how, after Azure ML's batch endpoints.
//
// The job's image and command are the model server (as a deployment's
// are), unless Deployment names a deployment to send through instead. Its
// one input (or the one Input names) is a datastore folder of CSV files
// with a header row (*.csv) and JSON-lines files (*.jsonl, *.ndjson), read
// in lexical order of their paths; every other file is skipped. A CSV row
// is its cells as numbers; a JSON line is an array of numbers or an
// object (its values, in the first line's key order). Each mini-batch of
// rows is one V2 request with one FP32 tensor of shape [rows, columns].
//
// instance_count jobs score the files: this one and instance_count-1
// children (parent_id this job, BatchScore.Partition 1..n-1), each with a
// model server of its own. Each file is one unit of work, claimed by one of
// them at a time; the results of a finished file stay in the job's
// checkpoint (the artifact store), so a retried or resumed job, or one
// whose child died, skips them and never scores a row into the results
// twice. The job itself then merges them, in input order, into Output.
type BatchScore struct {
	// Model is "name:version" or "name@alias"; the gateway resolves it to
	// a version when the job is submitted (ModelName, Version, SHA256).
	Model string `json:"model"`
	// Input names the job's input holding the files; default its only one.
	Input string `json:"input,omitempty"`
	// MiniBatchSize is rows per V2 request; default 10, at most 10,000.
	MiniBatchSize int `json:"mini_batch_size,omitempty"`
	// InstanceCount is how many jobs score at once; default 1, at most 64.
	InstanceCount int `json:"instance_count,omitempty"`
	// ErrorThreshold is how many rows may fail (the model refuses them, a
	// cell is not a number) before the job fails; default 0, -1 for any.
	ErrorThreshold int `json:"error_threshold,omitempty"`
	// Output is the file of the job's outputs the predictions go to;
	// default predictions.jsonl.
	Output string `json:"output,omitempty"`
	// Deployment, when set, sends the rows through this deployment's
	// scoring path (the router) instead of a model server of the job's own;
	// the job then needs no image or command.
	Deployment string `json:"deployment,omitempty"`
	// InputName is the V2 input tensor's name; default "input".
	InputName string `json:"input_name,omitempty"`
	// MaxConcurrency caps the mini-batches each job has in flight;
	// default 2.
	MaxConcurrency int `json:"max_concurrency,omitempty"`

	// Set by the gateway, refused from a client:

	// ModelName, Version and SHA256 are the version Model resolved to.
	ModelName string `json:"model_name,omitempty"`
	Version   int    `json:"version,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	// Partition is 0 for the job the client submitted (it also plans and
	// merges), 1..InstanceCount-1 for its children.
	Partition int `json:"partition,omitempty"`
	// TraceParent is the W3C traceparent of the request that submitted the
	// job: every partition's and attempt's spans join its trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// BatchScorePrediction is one line of a batch-score job's predictions
// file: the input row (Row counts a file's data rows from 0, the CSV
// header not counted) and the model's outputs for it (each tensor's slice
// for this row, its shape without the batch dimension), or the row's
// error.
type BatchScorePrediction struct {
	File    string            `json:"file"`
	Row     int               `json:"row"`
	Outputs []json.RawMessage `json:"outputs,omitempty"`
	Error   string            `json:"error,omitempty"`
}
