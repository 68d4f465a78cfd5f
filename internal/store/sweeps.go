package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// SweepRecord is a sweep as Redis keeps it: everything a gateway needs to
// go on with it after a restart. Its sampler's state is Seed and Next (a
// trial's parameters are a function of the spec, the seed and its index);
// each trial's job is made under an Idempotency-Key of its index, so a
// trial made by a gateway that died before it wrote Next is found again,
// never made twice.
type SweepRecord struct {
	// ID is the sweep's parent job's: the trials are its children.
	ID        string            `json:"id"`
	Workspace string            `json:"workspace"`
	Actor     string            `json:"actor"`
	Spec      api.SweepSpec     `json:"spec"`
	Seed      int64             `json:"seed"`
	Next      int               `json:"next"`
	Status    api.SweepStatus   `json:"status"`
	CreatedAt time.Time         `json:"created_at"`
	EndedAt   *time.Time        `json:"ended_at,omitempty"`
	Trials    []SweepTrialState `json:"trials"`
}

// SweepTrialState is one trial as the sweep keeps it; its state and
// metrics are its job's.
type SweepTrialState struct {
	Index  int               `json:"index"`
	JobID  string            `json:"job_id,omitempty"`
	Params map[string]string `json:"params"`
	// Stop is why the sweep stopped the trial (an early termination), or
	// why its job could not be made.
	Stop *api.Reason `json:"stop,omitempty"`
	// Judged is how many of its objective's points the early termination
	// rule has seen: each interval is judged once, as its point arrives.
	Judged int `json:"judged,omitempty"`
	// Rung is the asha rung JobID runs to; Segments are the jobs of the
	// rungs before, in order (JobID went on from their checkpoint).
	Rung     int      `json:"rung,omitempty"`
	Segments []string `json:"segments,omitempty"`
}

func sweepKey(ws, id string) string { return prefix + "ws:" + ws + ":sweep:" + id }

// runningSweepsKey is the set of the sweeps still running, as "ws/id":
// what the controller's loop passes over.
var runningSweepsKey = prefix + "sweeps:running"

// RunningSweeps are the running sweeps, each as [workspace, id].
func (s *Store) RunningSweeps(ctx context.Context) ([][2]string, error) {
	members, err := s.rdb.SMembers(ctx, runningSweepsKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(members))
	for _, m := range members {
		if ws, id, ok := strings.Cut(m, "/"); ok {
			out = append(out, [2]string{ws, id})
		}
	}
	return out, nil
}

// wsSweepsKey orders a workspace's sweeps by ID, which is their parent
// job's ULID: newest last, all at score 0 so that they sort by ID alone.
func wsSweepsKey(ws string) string { return prefix + "ws:" + ws + ":sweeps" }

// CreateSweep stores a new sweep; ErrConflict if one has its ID.
func (s *Store) CreateSweep(ctx context.Context, rec SweepRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode sweep: %w", err)
	}
	ok, err := s.rdb.SetNX(ctx, sweepKey(rec.Workspace, rec.ID), b, 0).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("sweep %s: %w", rec.ID, ErrConflict)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, runningSweepsKey, rec.Workspace+"/"+rec.ID)
		p.ZAdd(ctx, wsSweepsKey(rec.Workspace), redis.Z{Member: rec.ID})
		return nil
	})
	return err
}

// ListSweeps is a page of ws's sweeps, newest first: at most limit of
// them with IDs below before (all when before is ""), and the cursor of
// the next page ("" on the last).
func (s *Store) ListSweeps(ctx context.Context, ws, before string, limit int) ([]SweepRecord, string, error) {
	bound := "+"
	if before != "" {
		bound = "(" + before
	}
	ids, err := s.rdb.ZRevRangeByLex(ctx, wsSweepsKey(ws), &redis.ZRangeBy{Max: bound, Min: "-", Count: int64(limit) + 1}).Result()
	if err != nil || len(ids) == 0 {
		return nil, "", err
	}
	next := ""
	if len(ids) > limit {
		ids, next = ids[:limit], ids[limit-1]
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = sweepKey(ws, id)
	}
	raws, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, "", err
	}
	out := make([]SweepRecord, 0, len(raws))
	for i, raw := range raws {
		str, ok := raw.(string)
		if !ok {
			continue // indexed, not yet (or no longer) stored
		}
		var rec SweepRecord
		if err := json.Unmarshal([]byte(str), &rec); err != nil {
			return nil, "", fmt.Errorf("decode sweep %s: %w", ids[i], err)
		}
		out = append(out, rec)
	}
	return out, next, nil
}

// GetSweep is sweep id of ws; ErrNotFound if there is none.
func (s *Store) GetSweep(ctx context.Context, ws, id string) (*SweepRecord, error) {
	raw, err := s.rdb.Get(ctx, sweepKey(ws, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("sweep %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec SweepRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode sweep %s: %w", id, err)
	}
	return &rec, nil
}

// UpdateSweep changes sweep id of ws with change, which may run more than
// once (another gateway changed it meanwhile): it must make whatever it
// makes outside Redis idempotently. change returning false stores nothing.
func (s *Store) UpdateSweep(ctx context.Context, ws, id string, change func(*SweepRecord) (bool, error)) (*SweepRecord, error) {
	key := sweepKey(ws, id)
	var out *SweepRecord
	for range casAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("sweep %s: %w", id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			var rec SweepRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("decode sweep %s: %w", id, err)
			}
			changed, err := change(&rec)
			if err != nil {
				return err
			}
			out = &rec
			if !changed {
				return nil
			}
			b, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("encode sweep: %w", err)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, b, 0)
				if rec.Status != api.SweepRunning {
					p.SRem(ctx, runningSweepsKey, ws+"/"+id)
				}
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return out, err
		}
	}
	return nil, fmt.Errorf("sweep %s kept changing: %w", id, ErrConflict)
}
