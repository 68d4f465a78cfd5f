package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/jobgate/jobgate/api"
)

const (
	// idempotencyTTL is how long a key keeps answering with its first job.
	idempotencyTTL = 24 * time.Hour
	// idempotencyCreating bounds how long a key stays "being created" if the
	// gateway dies mid-request.
	idempotencyCreating = time.Minute
	maxIdempotencyKey   = 255
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// createIdempotent creates the job once per Idempotency-Key and workspace:
// the same key and body return the first job again; the same key with
// another body is a 422; a duplicate while the first is still being created
// is a 409. A request that fails frees its key for a retry.
func (g *Gateway) createIdempotent(ctx context.Context, p principal, key string, body []byte, spec api.JobSpec) (*api.Job, bool, error) {
	if len(key) > maxIdempotencyKey {
		return nil, false, errorf(http.StatusBadRequest, CodeBadRequest, "Idempotency-Key is longer than %d characters", maxIdempotencyKey)
	}
	for _, r := range key {
		if r < 0x20 || r > 0x7e {
			return nil, false, errorf(http.StatusBadRequest, CodeBadRequest, "Idempotency-Key must be printable ASCII")
		}
	}
	// A job's token has a key space of its own: two runs of one script
	// sending the same key must each get their own child.
	scope := key
	if p.JobID != "" {
		scope = "job:" + p.JobID + "\x00" + key
	}
	keyHash, bodyHash := sha([]byte(scope)), sha(body)
	prev, err := g.store.ClaimIdempotency(ctx, p.Workspace, keyHash, bodyHash, idempotencyCreating)
	if err != nil {
		return nil, false, err
	}
	if prev != nil {
		switch {
		case prev.BodyHash != bodyHash:
			return nil, false, errorf(http.StatusUnprocessableEntity, CodeInvalid, "Idempotency-Key was already used with another request body")
		case prev.JobID == "":
			return nil, false, errorf(http.StatusConflict, CodeConflict, "a request with this Idempotency-Key is still being processed; retry shortly")
		}
		job, err := g.store.GetJob(ctx, p.Workspace, prev.JobID)
		return job, true, err
	}
	job, err := g.createJob(ctx, p.Workspace, p.Actor, spec)
	if err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := g.store.ReleaseIdempotency(cleanup, p.Workspace, keyHash); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, false, err
	}
	if err := g.store.CompleteIdempotency(ctx, p.Workspace, keyHash, bodyHash, job.ID, idempotencyTTL); err != nil {
		return nil, false, err
	}
	return job, false, nil
}
