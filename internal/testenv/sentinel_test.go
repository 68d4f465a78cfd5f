package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
)

func setWait(ctx context.Context, rdb redis.UniversalClient, key string, n int, timeout time.Duration) (int64, error) {
	var w *redis.Cmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "1", 0)
		w = p.Do(ctx, "WAIT", n, timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("SET %s; WAIT %d: %w", key, n, err)
	}
	return w.Int64()
}

// TestSentinelFailsOver checks the harness itself: a client on the set's URL
// writes, the primary is killed, the sentinels promote a replica, and the
// same client writes again and reads what it wrote before the kill.
func TestSentinelFailsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and redis-sentinel")
	}
	s := testenv.SentinelWith(t, testenv.SentinelOptions{Replicas: 2})
	rdb := testenv.RedisClient(t, s.URL)
	ctx := context.Background()
	// WAIT, on the write's own connection (one pipeline): the write is on
	// both replicas before the primary goes.
	if n, err := setWait(ctx, rdb, "before", 2, 5*time.Second); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d, %v", n, err)
	}
	old := s.KillPrimary()
	now, took := s.WaitFailover(30*time.Second, old)
	t.Logf("failover from %s to %s took %s", old, now, took)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return rdb.Set(ctx, "after", "1", 0).Err() == nil
	}, "no write after the failover")
	if v, err := rdb.Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Fatalf("before: %q, %v", v, err)
	}
	// The other replica follows the new primary.
	testenv.Eventually(t, 30*time.Second, func() bool {
		n, err := setWait(ctx, rdb, "after", 1, time.Second)
		return err == nil && n == 1
	}, "no replica acknowledges writes on the new primary %s", now)
	if reps := s.Replicas(); len(reps) != 1 {
		t.Fatalf("replicas after failover: %v", reps)
	}
}

// TestSentinelRedisSpare checks what Redis(t) hands out under
// JOBGATE_TEST_REDIS=sentinel without waiting for the sentinels to find each
// other: a set of this test's own, where a write is acknowledged by the
// replica (WAIT 1) at once.
func TestSentinelRedisSpare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and redis-sentinel")
	}
	t.Setenv("JOBGATE_TEST_REDIS", "sentinel")
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 2 {
		url := testenv.Redis(t)
		if seen[url] {
			t.Fatalf("Redis handed out %s twice", url)
		}
		seen[url] = true
		rdb := testenv.RedisClient(t, url)
		if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Fatalf("set %d: DBSIZE %d, %v: not a fresh set", i, n, err)
		}
		if n, err := setWait(ctx, rdb, "k", 1, 5*time.Second); err != nil || n != 1 {
			t.Fatalf("set %d: WAIT 1: %d, %v", i, n, err)
		}
	}
}
