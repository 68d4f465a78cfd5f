package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// PendingStat is what waits in the pending set at one priority.
type PendingStat struct {
	Priority api.Priority
	// Depth is how many jobs wait to be placed.
	Depth int64
	// Oldest is when the job first in line was queued (created, or
	// requeued); zero when none waits.
	Oldest time.Time
}

// PendingStats returns the pending set's depth and first-in-line job per
// priority, high first, in one round trip; it reads no job record, so its
// cost does not grow with the backlog (a ZCOUNT and a one-entry range per
// priority). The metrics read it at every scrape.
func (s *Store) PendingStats(ctx context.Context) ([]PendingStat, error) {
	pris := []api.Priority{api.PriorityHigh, api.PriorityNormal, api.PriorityLow}
	counts := make([]*redis.IntCmd, len(pris))
	firsts := make([]*redis.ZSliceCmd, len(pris))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pr := range pris {
			lo, hi := pendingBand(pr)
			counts[i] = p.ZCount(ctx, pendingKey, lo, hi)
			firsts[i] = p.ZRangeByScoreWithScores(ctx, pendingKey, &redis.ZRangeBy{Min: lo, Max: hi, Count: 1})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]PendingStat, len(pris))
	for i, pr := range pris {
		out[i] = PendingStat{Priority: pr, Depth: counts[i].Val()}
		if z := firsts[i].Val(); len(z) > 0 {
			ms := int64(z[0].Score) - priorityRank(pr)*pendingRankSpan
			out[i].Oldest = time.UnixMilli(ms)
		}
	}
	return out, nil
}

// pendingRankSpan is the score range of one priority rank (pendingScore).
const pendingRankSpan = 100_000_000_000_000

// pendingBand is the score range of priority p in the pending set, as
// ZRANGEBYSCORE bounds: [rank*span, (rank+1)*span).
func pendingBand(p api.Priority) (lo, hi string) {
	r := priorityRank(p)
	return strconv.FormatInt(r*pendingRankSpan, 10), "(" + strconv.FormatInt((r+1)*pendingRankSpan, 10)
}
