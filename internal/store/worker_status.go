package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Worker statuses in the registry, and the states GET /v1/workers shows
// (the status, or WorkerLost). Only a WorkerUp worker is given jobs; a
// preparing or out-of-service one heartbeats so that people can see it and
// why (Worker.Problem). Every use of a worker status goes through these.
const (
	WorkerUp = "up"
	// WorkerPreparing: the worker's node preparation is running.
	WorkerPreparing = "preparing"
	// WorkerOutOfService: the worker cannot take jobs; Problem says why.
	WorkerOutOfService = "out_of_service"
	// WorkerStopping: the worker is shutting down; it ends or hands back
	// what runs on it and is given nothing new.
	WorkerStopping = "stopping"
	// WorkerStopped: the worker shut down cleanly.
	WorkerStopped = "stopped"
	// WorkerLost is no status a worker sets: the scheduler calls a worker
	// lost whose heartbeats stopped without it saying it stopped.
	WorkerLost = "lost"
)

// SetWorkerStatus sets a registered worker's status and problem ("" clears it).
func (s *Store) SetWorkerStatus(ctx context.Context, workerID, status, problem string) error {
	return s.rdb.HSet(ctx, workerKey(workerID), "status", status, "problem", problem).Err()
}

// JobWorkspaces returns the workspace of each of ids that names a job; ids
// of jobs that are gone are left out.
func (s *Store) JobWorkspaces(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return map[string]string{}, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, jobKey(id), "workspace")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]string, len(ids))
	for i, c := range cmds {
		if ws, err := c.Result(); err == nil {
			out[ids[i]] = ws
		}
	}
	return out, nil
}
