package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

const clusterIDKey = prefix + "cluster_id"

// ClusterID is this installation's ID: a random ID stored once in Redis, the
// same for every gateway and worker on it. Workers label their containers
// with it, so that a worker cleaning up never touches the containers of
// another installation sharing the same podman.
func (s *Store) ClusterID(ctx context.Context) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := s.rdb.SetNX(ctx, clusterIDKey, hex.EncodeToString(b), 0).Err(); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	id, err := s.rdb.Get(ctx, clusterIDKey).Result()
	if err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return id, nil
}

// RunningInstance is the instance (one worker process, see StartBy) that
// started the running attempt of job id; "" when none is recorded.
func (s *Store) RunningInstance(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.HGet(ctx, jobKey(id), "instance").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}
