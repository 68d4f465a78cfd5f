package testenv

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/redisconn"
)

// RedisMode is the Redis deployment Redis(t) starts: $JOBGATE_TEST_REDIS,
// "single" (the default), "sentinel" (a primary, a replica and three
// sentinels) or "cluster" (three masters), so that the same tests run on
// each (make test-redis-modes).
func RedisMode() string {
	switch m := os.Getenv("JOBGATE_TEST_REDIS"); m {
	case "sentinel", "cluster":
		return m
	default:
		return "single"
	}
}

// RedisClient opens a client for url, in any form redisconn takes, closed
// when the test ends.
func RedisClient(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	c, err := redisconn.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := c.NewClient()
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
