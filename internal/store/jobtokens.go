package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"jobgate/api"
)

// JobTokenPrefix starts every job token, so the gateway knows which kind of
// token it holds without a second lookup, and secret scanners find leaks.
const JobTokenPrefix = "jgj_"

func jobTokenKey(hash string) string { return prefix + "jobtoken:" + hash }

// JobToken is what a job token stands for: one attempt of one job of one
// workspace.
type JobToken struct {
	JobID     string
	Workspace string
	Attempt   int
}

// CreateJobToken mints a token for attempt of job id of ws that lives for
// ttl at most;
// only its hash is stored. The worker gives it to one attempt
// (JOBGATE_JOB_TOKEN) and revokes it when the attempt ends, so the TTL only
// matters when the worker dies first.
func (s *Store) CreateJobToken(ctx context.Context, id, ws string, attempt int, ttl time.Duration) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("job token: job id %q: %w", id, ErrNotFound)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := JobTokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	if err := s.rdb.Set(ctx, jobTokenKey(HashToken(secret)), id+" "+ws+" "+strconv.Itoa(attempt), ttl).Err(); err != nil {
		return "", fmt.Errorf("job token for %s: %w", id, err)
	}
	return secret, nil
}

// JobTokenBySecret returns the job a job token stands for, or ErrNotFound
// (unknown, revoked or expired).
func (s *Store) JobTokenBySecret(ctx context.Context, secret string) (JobToken, error) {
	v, err := s.rdb.Get(ctx, jobTokenKey(HashToken(secret))).Result()
	if errors.Is(err, redis.Nil) {
		return JobToken{}, ErrNotFound
	}
	if err != nil {
		return JobToken{}, err
	}
	f := strings.Fields(v)
	if len(f) != 3 {
		return JobToken{}, ErrNotFound
	}
	attempt, err := strconv.Atoi(f[2])
	if err != nil {
		return JobToken{}, ErrNotFound
	}
	return JobToken{JobID: f[0], Workspace: f[1], Attempt: attempt}, nil
}

// RevokeJobToken makes a job token stop working.
func (s *Store) RevokeJobToken(ctx context.Context, secret string) error {
	return s.rdb.Del(ctx, jobTokenKey(HashToken(secret))).Err()
}

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
// the descendants of job id of ws with status and reason: their client was
// that job, and it has ended. It returns how many it ended.
func (s *Store) EndTrackedRuns(ctx context.Context, ws, id string, status api.Status, reason string, now time.Time) (int, error) {
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
				err := s.Finish(ctx, ws, k.ID, 1, Outcome{Status: status, Reason: reason, StartedAt: k.StartedAt}, now)
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
