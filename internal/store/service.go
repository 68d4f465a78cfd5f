package store

import (
	"context"
	"time"
)

// What a worker running a service job (a deployment's replica) needs of
// the store beside its endpoint (deployments.go).

// RenewJobToken extends the life of a job token to ttl from now: a service
// job runs without a timeout, and its worker renews its token while it
// runs, so that the token of a replica whose worker died dies within ttl.
// A revoked (or expired) token stays gone.
func (s *Store) RenewJobToken(ctx context.Context, secret string, ttl time.Duration) error {
	return s.rdb.Expire(ctx, jobTokenKey(HashToken(secret)), ttl).Err()
}
