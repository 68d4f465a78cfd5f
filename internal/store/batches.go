package store

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"
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
