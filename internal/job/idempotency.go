package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

const (
	// idempotencyTTL is how long a key keeps answering with its first job.
	idempotencyTTL = 24 * time.Hour
	// IdempotencyCreating bounds how long a key stays "being created" if the
	// gateway dies mid-request; a retry after it goes through. It may be
	// short: the job and the key's completion are one Redis step
	// (store.CreateJobOnce), so a request slower than this still makes one
	// job, whoever gets there first.
	IdempotencyCreating = 10 * time.Second
	maxIdempotencyKey   = 255
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// specHash is what an Idempotency-Key compares: the spec as decoded,
// encoded again as JSON (fields in a fixed order, map keys sorted), so the
// same spec sent as YAML through the CLI and as hand-written JSON is the
// same request. What the gateway sets is left out: the traceparent from
// the request's trace (a retry is a request of its own, with a span of its
// own), and the version a batch-score job's model resolved to (an alias
// moved between the request and its retry is still the same request).
func specHash(spec api.JobSpec) string {
	if spec.Batch != nil {
		b := *spec.Batch
		b.TraceParent = ""
		spec.Batch = &b
	}
	if spec.BatchScore != nil {
		b := *spec.BatchScore
		b.TraceParent = ""
		b.ModelName, b.Version, b.SHA256 = "", 0, ""
		spec.BatchScore = &b
	}
	b, _ := json.Marshal(spec)
	return sha(b)
}

// IdempotencyHashes are what names key in the store and what it compares:
// the hash of the key in its scope (a job's token has a key space of its
// own: two runs of one script sending the same key must each get their own
// child), and specHash.
func IdempotencyHashes(byJob, key string, spec api.JobSpec) (keyHash, bodyHash string) {
	scope := key
	if byJob != "" {
		scope = "job:" + byJob + "\x00" + key
	}
	return sha([]byte(scope)), specHash(spec)
}

// createIdempotent creates the job once per Idempotency-Key and workspace:
// the same key and spec return the first job again; the same key with
// another spec is a 422; a duplicate while the first is still being created
// is a 409. A request that fails frees its key for a retry.
func (s *Service) createIdempotent(ctx context.Context, req Request, tr trust) (*api.Job, bool, error) {
	key := req.IdempotencyKey
	if len(key) > maxIdempotencyKey {
		return nil, false, Errorf(api.CodeBadRequest, "Idempotency-Key", "Idempotency-Key is longer than %d characters", maxIdempotencyKey)
	}
	for _, r := range key {
		if r < 0x20 || r > 0x7e {
			return nil, false, Errorf(api.CodeBadRequest, "Idempotency-Key", "Idempotency-Key must be printable ASCII")
		}
	}
	keyHash, bodyHash := IdempotencyHashes(req.ByJob, key, req.Spec)
	prev, err := s.store.ClaimIdempotency(ctx, req.Workspace, keyHash, bodyHash, IdempotencyCreating)
	if err != nil {
		return nil, false, err
	}
	if prev == nil {
		// The job is made and the key completed in one step, unless the
		// key already names a job, whose record comes back instead.
		job, _, err := s.create(ctx, req.Workspace, req.Actor, req.Spec, func(ctx context.Context, j *api.Job) (bool, error) {
			var err error
			prev, err = s.store.CreateJobOnce(ctx, j, store.Idempotency{KeyHash: keyHash, BodyHash: bodyHash, TTL: idempotencyTTL})
			return prev == nil, err
		}, tr)
		if err != nil {
			cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if rerr := s.store.ReleaseIdempotency(cleanup, req.Workspace, keyHash); rerr != nil {
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
		return nil, false, Errorf(api.CodeInvalid, "Idempotency-Key", "Idempotency-Key was already used with another job spec")
	case prev.JobID == "":
		return nil, false, Errorf(api.CodeConflict, "Idempotency-Key", "a request with this Idempotency-Key is still being processed; retry shortly")
	}
	job, err := s.store.GetJob(ctx, req.Workspace, prev.JobID)
	return job, true, err
}
