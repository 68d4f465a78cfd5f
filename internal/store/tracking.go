package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// What run tracking needs of job records beyond their state: walking a job
// tree, ending the tracked runs a job left open, and where a host-process
// attempt keeps its outputs.

// maxJobTreeDepth bounds how far up a job's parents are followed.
const maxJobTreeDepth = 64

// IsInJobTree reports whether job id is root or one of root's descendants
// (child, grandchild, ...), following parent_id upwards.
func (s *Store) IsInJobTree(ctx context.Context, root, id string) (bool, error) {
	for range maxJobTreeDepth {
		if id == root {
			return true, nil
		}
		if !validID(id) {
			return false, nil
		}
		parent, err := s.parentOf(ctx, id)
		if err != nil || parent == "" {
			return false, err
		}
		id = parent
	}
	return false, nil
}

// parentOf is job id's parent_id, "" for none or no such job.
func (s *Store) parentOf(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.HGet(ctx, jobKey(id), "parent_id").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// maxTrackedEnd bounds how many tracked runs below one job EndTrackedRuns
// looks at.
const maxTrackedEnd = 10_000

// EndTrackedRuns ends the tracked runs (mode tracked, still running) among
// the descendants of job id of ws with status and the reason
// api.ReasonRunAbandoned with detail: their client was that job, and it has
// ended. It returns how many it ended.
func (s *Store) EndTrackedRuns(ctx context.Context, ws, id string, status api.Status, detail string, now time.Time) (int, error) {
	why := api.Reason{Code: api.ReasonRunAbandoned, Detail: detail}
	ended, seen := 0, 0
	todo := []string{id}
	for len(todo) > 0 && seen < maxTrackedEnd {
		kids, err := s.Children(ctx, todo[0], maxTrackedEnd)
		if err != nil {
			return ended, err
		}
		todo = todo[1:]
		for _, k := range kids {
			seen++
			if k.Spec.Mode != api.ModeTracked {
				continue // a job of its own ends by itself
			}
			if k.Status == api.StatusRunning {
				o := NewOutcome(status, why)
				o.StartedAt = k.StartedAt
				err := s.Finish(ctx, ws, k.ID, 1, o, now)
				switch {
				case err == nil:
					ended++
				case !errors.Is(err, ErrConflict):
					return ended, err
				}
			}
			todo = append(todo, k.ID)
		}
	}
	return ended, nil
}

// SetOutputsPath records where a host-process attempt's outputs folder is,
// so the tracking API can point MLflow's artifact calls there.
func (s *Store) SetOutputsPath(ctx context.Context, id, path string) error {
	if !validID(id) {
		return ErrNotFound
	}
	return s.rdb.HSet(ctx, jobKey(id), "outputs_path", path).Err()
}

// OutputsPath is what SetOutputsPath recorded for job id, or "".
func (s *Store) OutputsPath(ctx context.Context, id string) string {
	if !validID(id) {
		return ""
	}
	v, _ := s.rdb.HGet(ctx, jobKey(id), "outputs_path").Result()
	return v
}
