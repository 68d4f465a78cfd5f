package api

import "time"

// Deployments (/v1/deployments) serve registered models: each is a set of
// replicas, long-running jobs of kind service that run a model server over
// one model version; the scoring router (/v2) sends each inference request
// to one of them.

// DeploymentSpec is the body of POST /v1/deployments, and what PATCH
// changes (model, traffic, image, command, env, replicas, autoscale).
type DeploymentSpec struct {
	// Name is also the model name clients score: /v2/models/{name}/infer.
	Name string `json:"name"`
	// Model is one model version, "iris:1" or "iris@production" (an alias
	// is resolved when the deployment is created or changed). Either Model
	// or Traffic.
	Model string `json:"model,omitempty"`
	// Traffic splits requests between model versions by percent, summing
	// to 100: {"iris:1": 90, "iris:2": 10}. Each version runs its own
	// replicas (Replicas or Autoscale applies to each).
	Traffic map[string]int `json:"traffic,omitempty"`
	// Image runs the model server; Command is its argv (never through a
	// shell). The server reads JOBGATE_MODEL_PATH, JOBGATE_MODEL_NAME,
	// JOBGATE_MODEL_VERSION, JOBGATE_HOST and JOBGATE_PORT, and answers
	// GET /v2/health/ready with 200 once it serves.
	Image     string            `json:"image"`
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	Resources Resources         `json:"resources,omitempty"`
	// Replicas is a fixed replica count (default 1); Autoscale instead
	// scales on in-flight requests. Not both.
	Replicas  *int       `json:"replicas,omitempty"`
	Autoscale *Autoscale `json:"autoscale,omitempty"`
	// Priority of the replicas' jobs; default high, so a deployment takes
	// GPUs before batch work.
	Priority Priority `json:"priority,omitempty"`
	// ReadinessPath is probed on each replica; default /v2/health/ready.
	ReadinessPath string `json:"readiness_path,omitempty"`
}

// Autoscale scales a deployment between Min and Max replicas on the
// concurrency the scoring routers observe: ceil(in-flight /
// TargetConcurrency), down only after ScaleDownDelaySeconds below. Min 0
// scales to zero when idle; the router then holds the first request while
// a replica starts.
type Autoscale struct {
	Min int `json:"min"`
	Max int `json:"max"`
	// TargetConcurrency is the in-flight requests one replica should carry;
	// default 8.
	TargetConcurrency int `json:"target_concurrency,omitempty"`
	// ScaleDownDelaySeconds is how long the load must stay low before a
	// replica is removed; default 120.
	ScaleDownDelaySeconds int `json:"scale_down_delay_seconds,omitempty"`
}

// DeploymentStatus is a deployment's state as a whole.
type DeploymentStatus string

const (
	// DeploymentDeploying: fewer replicas ready than desired, none failed
	// past its back-off, or a rolling update under way.
	DeploymentDeploying DeploymentStatus = "deploying"
	// DeploymentReady: every desired replica is ready.
	DeploymentReady DeploymentStatus = "ready"
	// DeploymentDegraded: some replicas ready, others crashed and restarting.
	DeploymentDegraded DeploymentStatus = "degraded"
	// DeploymentFailed: no replica ready and they keep crashing, or they
	// cannot be placed (the reason says why).
	DeploymentFailed DeploymentStatus = "failed"
	// DeploymentScaledToZero: autoscale with min 0 and no replica, idle.
	DeploymentScaledToZero DeploymentStatus = "scaled_to_zero"
	// DeploymentDeleting: DELETE was asked; its replicas drain and stop.
	DeploymentDeleting DeploymentStatus = "deleting"
)

// DeploymentTarget is one model version a deployment serves, resolved from
// Model or Traffic.
type DeploymentTarget struct {
	// Ref is as the spec wrote it ("iris@production").
	Ref     string `json:"ref"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
	// Weight is the percent of requests it gets (100 without a split).
	Weight int `json:"weight"`
}

// ReplicaState is one replica's state.
type ReplicaState string

const (
	// ReplicaPending: its job is queued (the job's reason says why it waits)
	// or waits out its restart back-off.
	ReplicaPending ReplicaState = "pending"
	// ReplicaStarting: its job runs, the server is not ready yet.
	ReplicaStarting ReplicaState = "starting"
	// ReplicaReady: it answers its readiness probe and takes requests.
	ReplicaReady ReplicaState = "ready"
	// ReplicaDraining: it takes no new requests and stops once the ones it
	// has are answered.
	ReplicaDraining ReplicaState = "draining"
)

// Replica is one replica as GET /v1/deployments/{name} shows it.
type Replica struct {
	// ID stays the same across restarts; JobID is its current job's.
	ID       string       `json:"id"`
	JobID    string       `json:"job_id,omitempty"`
	Revision int          `json:"revision"`
	Model    string       `json:"model"`
	Version  int          `json:"version"`
	State    ReplicaState `json:"state"`
	Worker   string       `json:"worker,omitempty"`
	// Address is host:port on the worker.
	Address  string `json:"address,omitempty"`
	Restarts int    `json:"restarts"`
	Reason   string `json:"reason,omitempty"`
}

// Deployment is what GET /v1/deployments/{name} returns.
type Deployment struct {
	Name      string             `json:"name"`
	Workspace string             `json:"workspace"`
	Spec      DeploymentSpec     `json:"spec"`
	Targets   []DeploymentTarget `json:"targets"`
	// Revision counts the spec's changes; replicas of older revisions are
	// replaced by a rolling update.
	Revision        int              `json:"revision"`
	Status          DeploymentStatus `json:"status"`
	Reason          string           `json:"reason,omitempty"`
	DesiredReplicas int              `json:"desired_replicas"`
	ReadyReplicas   int              `json:"ready_replicas"`
	Replicas        []Replica        `json:"replicas"`
	// ScoringPath is where to send inference requests, relative to the
	// scoring router: /v2/models/{name}/infer.
	ScoringPath string `json:"scoring_path"`
	// Traffic is what its scoring router measured in the last minute.
	Traffic   *DeploymentTraffic `json:"traffic,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// DeploymentList is GET /v1/deployments.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// DeploymentPatch is the body of PATCH /v1/deployments/{name}: the fields
// given replace the spec's; a change of model, traffic, image, command, env
// or resources starts a rolling update, a change of replicas or autoscale
// only scales. An env of {} clears the spec's (null or none keeps it).
type DeploymentPatch struct {
	Model     *string           `json:"model,omitempty"`
	Traffic   map[string]int    `json:"traffic,omitempty"`
	Image     *string           `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env"` // not omitempty: {} clears
	Resources *Resources        `json:"resources,omitempty"`
	Replicas  *int              `json:"replicas,omitempty"`
	Autoscale *Autoscale        `json:"autoscale,omitempty"`
}

// Service is what makes a job a deployment's replica (JobSpec.Service).
type Service struct {
	Deployment string `json:"deployment"`
	Replica    string `json:"replica"`
	Revision   int    `json:"revision"`
	// Model is the version the replica serves; the worker fetches its files
	// from the artifact store and mounts them read-only at /model
	// (JOBGATE_MODEL_PATH is /model/<file> for a file model, /model for a
	// folder).
	Model   string `json:"model"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
	// ReadinessPath is probed until it answers 200; default /v2/health/ready.
	ReadinessPath string `json:"readiness_path,omitempty"`
}
