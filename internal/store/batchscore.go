package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A batch-score job's work (api.BatchScore) is shared by the job and its
// children through three keys of the job (the parent):
//
//   - its plan, the sorted list of input files, written once by whoever
//     starts first (SET NX) and read by every attempt and partition;
//   - the claims, file index → "<lease expiry, ms> <owner>", the owner an
//     attempt ("<job id>:<attempt>") scoring that file now, which renews its
//     lease while it scores; a lapsed lease, or one held by an earlier
//     attempt of the same job, is free to take;
//   - the done marks, file index → the file's row counts, each written once,
//     after its results are in the artifact store.
//
// The keys' TTL is set by the caller (the worker gives the job's timeout and
// a week), renewed by every claim and done mark: they outlive the job's last
// attempt by that much, then go.

func batchScoreKey(parent, what string) string { return prefix + "bscore:" + parent + ":" + what }

var (
	claimBatchScoreScript = script("batchscore_claim.lua")
	renewBatchScoreScript = script("batchscore_renew.lua")
	doneBatchScoreScript  = script("batchscore_done.lua")
)

// BatchScoreFile is one file of a batch-score job's plan: its path relative
// to the input folder (slash-separated) and its size when planned.
type BatchScoreFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// BatchScoreDone is the done mark of one file: how many rows its results
// hold, how many of them failed, and which attempt scored it.
type BatchScoreDone struct {
	Rows   int    `json:"rows"`
	Failed int    `json:"failed"`
	By     string `json:"by,omitempty"`
}

// BatchScorePlan writes files as the plan of batch-score job parent unless
// it has one, and returns the plan it has: files, or what another attempt or
// partition wrote first. ttl is the plan's life.
func (s *Store) BatchScorePlan(ctx context.Context, parent string, files []BatchScoreFile, ttl time.Duration) ([]BatchScoreFile, error) {
	if files == nil {
		files = []BatchScoreFile{}
	}
	b, err := json.Marshal(files)
	if err != nil {
		return nil, err
	}
	key := batchScoreKey(parent, "plan")
	ok, err := s.rdb.SetNX(ctx, key, b, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("batch-score plan: %w", err)
	}
	if ok {
		return files, nil
	}
	raw, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		// Expired between the two calls: a plan so old is made again.
		return s.BatchScorePlan(ctx, parent, files, ttl)
	}
	if err != nil {
		return nil, fmt.Errorf("batch-score plan: %w", err)
	}
	var have []BatchScoreFile
	if err := json.Unmarshal(raw, &have); err != nil {
		return nil, fmt.Errorf("batch-score plan of %s: %w", parent, err)
	}
	return have, nil
}

// ClaimBatchScoreFile claims for owner ("<job id>:<attempt>") the first file
// of the plan (of n files) that is not done and whose claim is free (see
// lua/batchscore_claim.lua), for lease. index is -1 when none is free now;
// left is how many files are not done.
func (s *Store) ClaimBatchScoreFile(ctx context.Context, parent string, n int, owner string, lease, ttl time.Duration) (index, left int, err error) {
	keys := []string{batchScoreKey(parent, "claims"), batchScoreKey(parent, "done"), batchScoreKey(parent, "plan")}
	res, err := claimBatchScoreScript.Run(ctx, s.rdb, keys, n, owner, lease.Milliseconds(), ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return -1, 0, fmt.Errorf("claim a batch-score file: %w", err)
	}
	if len(res) != 2 {
		return -1, 0, fmt.Errorf("claim a batch-score file: answer %v", res)
	}
	return int(res[0]), int(res[1]), nil
}

// RenewBatchScoreClaim extends owner's claim on file index by lease;
// ErrConflict when the claim is no longer owner's (it lapsed and another
// took it, or the file is done).
func (s *Store) RenewBatchScoreClaim(ctx context.Context, parent string, index int, owner string, lease time.Duration) error {
	n, err := renewBatchScoreScript.Run(ctx, s.rdb, []string{batchScoreKey(parent, "claims")}, index, owner, lease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew a batch-score claim: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("file %d of batch-score job %s is no longer claimed by %s: %w", index, parent, owner, ErrConflict)
	}
	return nil
}

// MarkBatchScoreDone marks file index done with d (d.By is set to owner) and
// drops owner's claim on it. marked is false when the file was marked done
// already: the first mark stands.
func (s *Store) MarkBatchScoreDone(ctx context.Context, parent string, index int, owner string, d BatchScoreDone, ttl time.Duration) (marked bool, err error) {
	d.By = owner
	b, err := json.Marshal(d)
	if err != nil {
		return false, err
	}
	keys := []string{batchScoreKey(parent, "claims"), batchScoreKey(parent, "done")}
	n, err := doneBatchScoreScript.Run(ctx, s.rdb, keys, index, owner, b, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("mark a batch-score file done: %w", err)
	}
	return n == 1, nil
}

// BatchScoreDoneFiles returns the done marks of batch-score job parent by
// file index; an empty map when none is done (or the keys expired).
func (s *Store) BatchScoreDoneFiles(ctx context.Context, parent string) (map[int]BatchScoreDone, error) {
	m, err := s.rdb.HGetAll(ctx, batchScoreKey(parent, "done")).Result()
	if err != nil {
		return nil, fmt.Errorf("batch-score done files: %w", err)
	}
	out := make(map[int]BatchScoreDone, len(m))
	for k, v := range m {
		i, err := strconv.Atoi(k)
		if err != nil {
			continue
		}
		var d BatchScoreDone
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			return nil, fmt.Errorf("batch-score done mark %s of %s: %w", k, parent, err)
		}
		out[i] = d
	}
	return out, nil
}
