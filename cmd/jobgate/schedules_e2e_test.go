package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// TestScheduleFiresUnderRun: `jobgate gateway` runs the cron loop beside the
// API (runGateway), so a schedule created through the API fires. (It was a
// test of Gateway.Run in gateway/ while the gateway ran its own loops.)
func TestScheduleFiresUnderRun(t *testing.T) {
	c := newCluster(t)
	body := `{"name":"s","cron":"@every 1s","job":{"image":"localhost/jobgate-examples:test","command":["/bin/toolbox","echo","hi"]}}`
	if code := c.do(http.MethodPost, "/v1/schedules", body, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/schedules: %d", code)
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		var h struct{ History []json.RawMessage }
		return c.do(http.MethodGet, "/v1/schedules/s/history", "", &h) == http.StatusOK && len(h.History) > 0
	}, "the schedule never fired under `jobgate gateway`")
}

// TestGatewayGivesUpTheLeaseOnShutdown: `jobgate gateway` leads (its one
// elector holds the scheduler lease, runGateway runs it), and on shutdown it
// gives the lease up after its controllers stopped, so another gateway
// takes over at once instead of after the lease's TTL.
func TestGatewayGivesUpTheLeaseOnShutdown(t *testing.T) {
	c := newCluster(t)
	rdb := c.redisClient()
	ctx := context.Background()
	const leaderKey = "{jobgate}:scheduler:leader" // store's lease key
	testenv.Eventually(t, 15*time.Second, func() bool { return rdb.Exists(ctx, leaderKey).Val() == 1 },
		"the gateway never took the scheduler lease")
	c.stopGateway()
	if holder, err := rdb.Get(ctx, leaderKey).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after the gateway stopped the lease is still held by %q (%v); want it given up", holder, err)
	}
	if ok, err := store.New(rdb, store.Config{}).AcquireLeadership(ctx, "next-gateway", time.Second); err != nil || !ok {
		t.Fatalf("another gateway could not take the lease at once: %v %v", ok, err)
	}
}
