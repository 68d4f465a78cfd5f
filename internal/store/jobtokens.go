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
