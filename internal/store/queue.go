package store

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// queueChunk is how many pending IDs QueuedJobs reads per round trip.
const queueChunk = 1000

// QueuedJobs returns the first limit queued jobs of workspace ws ("" for
// every workspace) in the order the scheduler considers them (the pending
// set: priority, then age), and how many such jobs wait in all. It reads
// only each job's workspace and status to filter, and the whole record of
// the jobs it returns. The jobs come without their metrics.
func (s *Store) QueuedJobs(ctx context.Context, ws string, limit int) ([]*api.Job, int, error) {
	var picked []string
	total := 0
	for start := int64(0); ; start += queueChunk {
		ids, err := s.rdb.ZRange(ctx, pendingKey, start, start+queueChunk-1).Result()
		if err != nil {
			return nil, 0, err
		}
		if len(ids) == 0 {
			break
		}
		cmds := make([]*redis.SliceCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HMGet(ctx, jobKey(id), "workspace", "status")
			}
			return nil
		}); err != nil {
			return nil, 0, err
		}
		for i, c := range cmds {
			v := c.Val()
			jws, _ := v[0].(string)
			status, _ := v[1].(string)
			if jws == "" || api.Status(status) != api.StatusQueued || (ws != "" && jws != ws) {
				continue
			}
			total++
			if len(picked) < limit {
				picked = append(picked, ids[i])
			}
		}
		if len(ids) < queueChunk {
			break
		}
	}
	jobs, err := s.JobsByID(ctx, picked)
	if err != nil {
		return nil, 0, err
	}
	out := jobs[:0]
	for _, j := range jobs {
		if j != nil {
			out = append(out, j)
		}
	}
	return out, total, nil
}
