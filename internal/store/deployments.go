package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Deployments and their replicas. Each key has one writer, so no write
// needs a read-modify-write across components:
//
//	{jobgate}:deployments                        set "<ws>/<name>" of every deployment
//	{jobgate}:ws:<ws>:deployment:<name>          hash: spec (DeploymentRecord, the API's),
//	                                             status (DeploymentState, the controller's)
//	{jobgate}:ws:<ws>:deployment:<name>:replicas hash replica ID → ReplicaSlot (the controller's)
//	{jobgate}:ws:<ws>:deployment:<name>:load     hash router ID → RouterLoad (each router its field)
//	{jobgate}:endpoint:<job>                     hash: Endpoint of a running replica job (its worker's)
//	{jobgate}:service-jobs                       zset of every job of kind service by creation (ms),
//	                                             added with the job, pruned once it ended (ServiceJobs)
func deploymentsKey() string { return prefix + "deployments" }

const serviceJobsKey = prefix + "service-jobs"

func deploymentKey(ws, name, part string) string {
	k := prefix + "ws:" + ws + ":deployment:" + name
	if part != "" {
		k += ":" + part
	}
	return k
}
func endpointKey(jobID string) string { return prefix + "endpoint:" + jobID }

// DeploymentRecord is what the API keeps of a deployment: its spec, the
// model versions it resolved to, and its revision (one more on each change
// that needs new replicas).
type DeploymentRecord struct {
	Workspace string                 `json:"workspace"`
	Spec      api.DeploymentSpec     `json:"spec"`
	Targets   []api.DeploymentTarget `json:"targets"`
	Revision  int                    `json:"revision"`
	// Deleting is set by DELETE: the controller drains and stops every
	// replica, then removes the deployment.
	Deleting  bool      `json:"deleting,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeploymentState is what the controller keeps of a deployment.
type DeploymentState struct {
	Status api.DeploymentStatus `json:"status"`
	Reason string               `json:"reason,omitempty"`
	// Desired replicas per target (the autoscaler's or the spec's count).
	Desired int `json:"desired"`
	// LowSince is when the load first fell to what fewer replicas carry,
	// for the scale-down delay; nil while it does not.
	LowSince *time.Time `json:"low_since,omitempty"`
	// LastRequest is when a router last reported a request.
	LastRequest *time.Time `json:"last_request,omitempty"`
}

// ReplicaSlot is one replica as the controller keeps it: the job that runs
// it now, and how often it was restarted.
type ReplicaSlot struct {
	ID       string `json:"id"`
	JobID    string `json:"job_id,omitempty"`
	Revision int    `json:"revision"`
	Model    string `json:"model"`
	Version  int    `json:"version"`
	Restarts int    `json:"restarts"`
	// NotBefore holds a restart back until its back-off is over.
	NotBefore *time.Time `json:"not_before,omitempty"`
	// Draining: the controller wants it gone (scale down, rolling update,
	// delete) and asked its job to stop.
	Draining  bool      `json:"draining,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// EndpointState is a running replica's state as its worker reports it.
type EndpointState string

const (
	EndpointStarting EndpointState = "starting"
	EndpointReady    EndpointState = "ready"
	EndpointDraining EndpointState = "draining"
)

// Endpoint is where a running replica job serves, written by the worker
// that runs it and removed when its attempt ends.
type Endpoint struct {
	JobID      string        `json:"job_id"`
	Attempt    int           `json:"attempt"`
	Workspace  string        `json:"workspace"`
	Deployment string        `json:"deployment"`
	Replica    string        `json:"replica"`
	Worker     string        `json:"worker"`
	Address    string        `json:"address"` // host:port
	State      EndpointState `json:"state"`
	Model      string        `json:"model"`
	Version    int           `json:"version"`
	Revision   int           `json:"revision"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// RouterLoad is what one scoring router saw of a deployment over its last
// report interval.
type RouterLoad struct {
	// InFlight is the average number of requests in flight (held ones
	// included); Waiting is how many it holds now for lack of a replica.
	InFlight float64   `json:"in_flight"`
	Waiting  int       `json:"waiting"`
	At       time.Time `json:"at"`
}

// PutDeployment writes d's record (create or change) and adds it to the
// index; create says whether it must be new (ErrConflict when it exists).
func (s *Store) PutDeployment(ctx context.Context, d DeploymentRecord, create bool) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode deployment: %w", err)
	}
	key := deploymentKey(d.Workspace, d.Spec.Name, "")
	if create {
		ok, err := s.rdb.HSetNX(ctx, key, "spec", b).Result()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("deployment %q: %w", d.Spec.Name, ErrConflict)
		}
	} else if err := s.rdb.HSet(ctx, key, "spec", b).Err(); err != nil {
		return err
	}
	return s.rdb.SAdd(ctx, deploymentsKey(), d.Workspace+"/"+d.Spec.Name).Err()
}

// Deployment returns the record and state of deployment name of ws, or
// ErrNotFound. The state is zero before the controller first wrote it.
func (s *Store) Deployment(ctx context.Context, ws, name string) (*DeploymentRecord, DeploymentState, error) {
	var st DeploymentState
	m, err := s.rdb.HGetAll(ctx, deploymentKey(ws, name, "")).Result()
	if err != nil {
		return nil, st, err
	}
	if m["spec"] == "" {
		return nil, st, fmt.Errorf("deployment %q: %w", name, ErrNotFound)
	}
	var d DeploymentRecord
	if err := json.Unmarshal([]byte(m["spec"]), &d); err != nil {
		return nil, st, fmt.Errorf("decode deployment %q: %w", name, err)
	}
	if m["status"] != "" {
		if err := json.Unmarshal([]byte(m["status"]), &st); err != nil {
			return nil, st, fmt.Errorf("decode deployment state %q: %w", name, err)
		}
	}
	return &d, st, nil
}

// DeploymentNames lists every deployment as (workspace, name), sorted; ws
// "" lists all workspaces'.
func (s *Store) DeploymentNames(ctx context.Context, ws string) ([][2]string, error) {
	all, err := s.rdb.SMembers(ctx, deploymentsKey()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(all)
	var out [][2]string
	for _, m := range all {
		w, n, ok := strings.Cut(m, "/")
		if ok && (ws == "" || w == ws) {
			out = append(out, [2]string{w, n})
		}
	}
	return out, nil
}

// SetDeploymentState writes the controller's state of a deployment.
func (s *Store) SetDeploymentState(ctx context.Context, ws, name string, st DeploymentState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode deployment state: %w", err)
	}
	return s.rdb.HSet(ctx, deploymentKey(ws, name, ""), "status", b).Err()
}

// RemoveDeployment forgets a deployment once its replicas are gone.
func (s *Store) RemoveDeployment(ctx context.Context, ws, name string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, deploymentKey(ws, name, ""), deploymentKey(ws, name, "replicas"), deploymentKey(ws, name, "load"))
		p.SRem(ctx, deploymentsKey(), ws+"/"+name)
		return nil
	})
	return err
}

// ReplicaSlots returns a deployment's replicas, sorted by ID.
func (s *Store) ReplicaSlots(ctx context.Context, ws, name string) ([]ReplicaSlot, error) {
	m, err := s.rdb.HGetAll(ctx, deploymentKey(ws, name, "replicas")).Result()
	if err != nil {
		return nil, err
	}
	out := make([]ReplicaSlot, 0, len(m))
	for id, v := range m {
		var r ReplicaSlot
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("decode replica %s of %q: %w", id, name, err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PutReplicaSlot writes one replica of a deployment.
func (s *Store) PutReplicaSlot(ctx context.Context, ws, name string, r ReplicaSlot) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode replica: %w", err)
	}
	return s.rdb.HSet(ctx, deploymentKey(ws, name, "replicas"), r.ID, b).Err()
}

// RemoveReplicaSlot forgets one replica of a deployment.
func (s *Store) RemoveReplicaSlot(ctx context.Context, ws, name, id string) error {
	return s.rdb.HDel(ctx, deploymentKey(ws, name, "replicas"), id).Err()
}

// ServiceJobs returns every job of kind service (a deployment's replica)
// that has not ended, in every workspace, oldest first: what the deployment
// controller's orphan sweep checks against the replica slots. Each job is in
// the index from the MULTI that made it; ended and removed ones are dropped
// from it here.
func (s *Store) ServiceJobs(ctx context.Context) ([]*api.Job, error) {
	const page = 500
	var out []*api.Job
	for start := int64(0); ; start += page {
		ids, err := s.rdb.ZRange(ctx, serviceJobsKey, start, start+page-1).Result()
		if err != nil {
			return nil, err
		}
		jobs, err := s.getMany(ctx, ids)
		if err != nil {
			return nil, err
		}
		var ended []any
		for i, j := range jobs {
			if j == nil || j.Status.Terminal() {
				ended = append(ended, ids[i])
				continue
			}
			out = append(out, j)
		}
		if len(ended) > 0 {
			if err := s.rdb.ZRem(ctx, serviceJobsKey, ended...).Err(); err != nil {
				return nil, err
			}
			start -= int64(len(ended)) // the ones after them moved up
		}
		if len(ids) < page {
			return out, nil
		}
	}
}

// endpointTTL bounds an endpoint whose worker died without removing it;
// the worker renews it while the replica runs.
const endpointTTL = 30 * time.Second

// PutEndpoint writes (or renews) a running replica's endpoint, unless a
// newer attempt of its job wrote one (endpoint_attempts.go).
func (s *Store) PutEndpoint(ctx context.Context, e Endpoint) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode endpoint: %w", err)
	}
	return putEndpointScript.Run(ctx, s.rdb, []string{endpointKey(e.JobID)}, b, e.Attempt, endpointTTL.Milliseconds()).Err()
}

// RemoveEndpoint removes a replica job's endpoint, if attempt still owns it
// (checked and removed at once).
func (s *Store) RemoveEndpoint(ctx context.Context, jobID string, attempt int) error {
	return removeEndpointScript.Run(ctx, s.rdb, []string{endpointKey(jobID)}, attempt).Err()
}

// Endpoints returns the endpoints of the given replica jobs, in one round
// trip; a job without one (not running yet, or ended) is left out.
func (s *Store) Endpoints(ctx context.Context, jobIDs ...string) ([]Endpoint, error) {
	if len(jobIDs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(jobIDs))
	for i, id := range jobIDs {
		keys[i] = endpointKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var e Endpoint
		if err := json.Unmarshal([]byte(str), &e); err != nil {
			return nil, fmt.Errorf("decode endpoint of %s: %w", jobIDs[i], err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ReportLoad writes what router saw of a deployment.
func (s *Store) ReportLoad(ctx context.Context, ws, name, router string, l RouterLoad) error {
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode load: %w", err)
	}
	return s.rdb.HSet(ctx, deploymentKey(ws, name, "load"), router, b).Err()
}

// Loads returns every router's last report of a deployment, reports older
// than maxAge left out (and removed).
func (s *Store) Loads(ctx context.Context, ws, name string, now time.Time, maxAge time.Duration) ([]RouterLoad, error) {
	key := deploymentKey(ws, name, "load")
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	var out []RouterLoad
	var stale []string
	for router, v := range m {
		var l RouterLoad
		if err := json.Unmarshal([]byte(v), &l); err != nil || now.Sub(l.At) > maxAge {
			stale = append(stale, router)
			continue
		}
		out = append(out, l)
	}
	if len(stale) > 0 {
		if err := s.rdb.HDel(ctx, key, stale...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
	}
	return out, nil
}

// ModelVersionDeployed reports whether a deployment of ws serves (or is
// rolling away from) version v of model name: such a version cannot be
// deleted.
func (s *Store) ModelVersionDeployed(ctx context.Context, ws, name string, v int) (string, error) {
	names, err := s.DeploymentNames(ctx, ws)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		d, _, err := s.Deployment(ctx, ws, n[1])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, t := range d.Targets {
			if t.Model == name && t.Version == v {
				return n[1], nil
			}
		}
		slots, err := s.ReplicaSlots(ctx, ws, n[1])
		if err != nil {
			return "", err
		}
		for _, r := range slots {
			if r.Model == name && r.Version == v {
				return n[1], nil
			}
		}
	}
	return "", nil
}
