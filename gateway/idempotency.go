package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

const (
	// idempotencyTTL is how long a key keeps answering with its first job.
	idempotencyTTL = 24 * time.Hour
	// idempotencyCreating bounds how long a key stays "being created" if the
	// gateway dies mid-request; a retry after it goes through. It may be
	// short: the job and the key's completion are one Redis step
	// (store.CreateJobOnce), so a request slower than this still makes one
	// job, whoever gets there first.
	idempotencyCreating = 10 * time.Second
	maxIdempotencyKey   = 255
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// specHash is what an Idempotency-Key compares: the spec as decoded,
// encoded again as JSON (fields in a fixed order, map keys sorted), so the
// same spec sent as YAML through the CLI and as hand-written JSON is the
// same request.
func specHash(spec api.JobSpec) string {
	b, _ := json.Marshal(spec)
	return sha(b)
}

// createIdempotent creates the job once per Idempotency-Key and workspace:
// the same key and spec return the first job again; the same key with
// another spec is a 422; a duplicate while the first is still being created
// is a 409. A request that fails frees its key for a retry.
func (g *Gateway) createIdempotent(ctx context.Context, p principal, key string, spec api.JobSpec) (*api.Job, bool, error) {
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
	keyHash, bodyHash := sha([]byte(scope)), specHash(spec)
	prev, err := g.store.ClaimIdempotency(ctx, p.Workspace, keyHash, bodyHash, idempotencyCreating)
	if err != nil {
		return nil, false, err
	}
	if prev == nil {
		// The job is made and the key completed in one step, unless the
		// key already names a job, whose record comes back instead.
		job, err := g.createJobWith(ctx, p.Workspace, p.Actor, spec, func(ctx context.Context, j *api.Job) (bool, error) {
			var err error
			prev, err = g.store.CreateJobOnce(ctx, j, store.Idempotency{KeyHash: keyHash, BodyHash: bodyHash, TTL: idempotencyTTL})
			return prev == nil, err
		})
		if err != nil {
			cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if rerr := g.store.ReleaseIdempotency(cleanup, p.Workspace, keyHash); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return nil, false, err
		}
		if prev == nil {
			return job, false, nil
		}
		// Our claim expired and another request under the key made the job.
	}
	switch {
	case prev.BodyHash != bodyHash:
		return nil, false, errorf(http.StatusUnprocessableEntity, CodeInvalid, "Idempotency-Key was already used with another job spec")
	case prev.JobID == "":
		return nil, false, errorf(http.StatusConflict, CodeConflict, "a request with this Idempotency-Key is still being processed; retry shortly")
	}
	job, err := g.store.GetJob(ctx, p.Workspace, prev.JobID)
	return job, true, err
}
