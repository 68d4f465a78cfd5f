package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// A batch's progress (api.BatchJob) is the worker's checkpoint: the answers
// are written to the artifact store in chunks of rows, each chunk whole
// under its own key, and this record says how many chunks are written and
// how many rows they hold (and how many of those failed). A resumed attempt
// starts at the next chunk; a chunk written again after a crash replaces
// itself, so no row is ever in the results twice.

func batchKey(id string) string { return prefix + "batch:" + id }

// BatchProgress is what a batch's scorer has written so far.
type BatchProgress struct {
	// Chunks written, in order from 0.
	Chunks int
	// Done rows in those chunks; Failed of them are errors.
	Done   int
	Failed int
}

// BatchProgress returns the progress of batch id; the zero value when it
// has none yet.
func (s *Store) BatchProgress(ctx context.Context, id string) (BatchProgress, error) {
	m, err := s.rdb.HGetAll(ctx, batchKey(id)).Result()
	if errors.Is(err, redis.Nil) || len(m) == 0 {
		return BatchProgress{}, err
	}
	if err != nil {
		return BatchProgress{}, err
	}
	atoi := func(k string) int { n, _ := strconv.Atoi(m[k]); return n }
	return BatchProgress{Chunks: atoi("chunks"), Done: atoi("done"), Failed: atoi("failed")}, nil
}

// SetBatchProgress records that batch id has written p: after its chunk is
// in the artifact store, in one step.
func (s *Store) SetBatchProgress(ctx context.Context, id string, p BatchProgress) error {
	return s.rdb.HSet(ctx, batchKey(id), "chunks", p.Chunks, "done", p.Done, "failed", p.Failed).Err()
}

// Batch is batch job j as GET /v1/batches/{id} and its callback show it:
// the job's state and times, and the rows its progress counts; now ends
// the rate of a batch still running.
func (s *Store) Batch(ctx context.Context, j *api.Job, now time.Time) (api.Batch, error) {
	pr, err := s.BatchProgress(ctx, j.ID)
	if err != nil {
		return api.Batch{}, err
	}
	b := api.Batch{ID: j.ID, Deployment: j.Spec.Batch.Deployment, Status: BatchStatus(j.Status),
		Total: j.Spec.Batch.Total, Done: pr.Done, Failed: pr.Failed,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, Reason: j.Reason}
	if j.StartedAt != nil {
		end := now
		if j.FinishedAt != nil {
			end = *j.FinishedAt
		}
		if s := end.Sub(*j.StartedAt).Seconds(); s > 0 {
			b.RowsPerSecond = float64(pr.Done) / s
		}
	}
	return b, nil
}

// BatchStatus is a batch's status from its job's.
func BatchStatus(s api.Status) api.BatchStatus {
	switch s {
	case api.StatusRunning:
		return api.BatchRunning
	case api.StatusSucceeded:
		return api.BatchSucceeded
	case api.StatusFailed:
		return api.BatchFailed
	case api.StatusCanceled:
		return api.BatchCanceled
	default:
		return api.BatchQueued
	}
}
