package loghub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// slowRedis is a client of the test's Redis whose connections, once down is
// set, take delay to fail: a Redis gone unreachable. dials counts those.
type slowRedis struct {
	*redis.Client
	down  atomic.Bool
	dials atomic.Int64
}

func newSlowRedis(t *testing.T, url string, delay time.Duration) *slowRedis {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	r := &slowRedis{}
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if r.down.Load() {
			r.dials.Add(1)
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			return nil, errors.New("redis unreachable (test)")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	r.Client = redis.NewClient(opts)
	t.Cleanup(func() { r.Close() })
	return r
}

// numSub is how many subscribers Redis counts on each channel: on a
// Cluster, summed over the masters (each counts its own clients only).
func numSub(t *testing.T, rdb redis.UniversalClient, chans ...string) map[string]int64 {
	t.Helper()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		n, err := rdb.PubSubNumSub(context.Background(), chans...).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var mu sync.Mutex
	sum := map[string]int64{}
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := m.PubSubNumSub(ctx, chans...).Result()
		mu.Lock()
		defer mu.Unlock()
		for k, v := range n {
			sum[k] += v
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestLogHubFollowersLeaveAtOnceWhileRedisIsSlow: with the hub's Redis
// connection gone and every new one taking a second to fail, 50 followers
// leave at once: leaving makes no Redis call of its own (the hub
// unsubscribes in batches, outside its lock), where each used to wait for
// its own UNSUBSCRIBE, one after the other, 50 delays in all. When Redis is
// back the subscription holds none of their channels, and a new follower is
// woken as before.
func TestLogHubFollowersLeaveAtOnceWhileRedisIsSlow(t *testing.T) {
	// One server in every mode: the slow client is a *redis.Client with a
	// dialer of its own.
	url := testenv.RedisIn(t, t.TempDir()).URL
	const delay = 1 * time.Second
	slow := newSlowRedis(t, url, delay)
	opts, _ := redis.ParseURL(url)
	plain := redis.NewClient(opts)
	t.Cleanup(func() { plain.Close() })
	h := New(slow, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()

	const n = 50
	var chans []string
	stops := make([]func(), n)
	for i := range n {
		_, stops[i] = h.Follow(ctx, fmt.Sprintf("job%d", i))
		chans = append(chans, store.LogChannel(fmt.Sprintf("job%d", i)))
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, k := range numSub(t, plain, chans...) {
			if k != 1 {
				return false
			}
		}
		return true
	}, "the followers' channels were not subscribed to")

	// Redis becomes unreachable, slowly, and the hub's connection breaks.
	slow.down.Store(true)
	if err := plain.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return slow.dials.Load() > 0 }, "the hub did not try to reconnect")

	var left atomic.Int64
	var wg sync.WaitGroup
	for _, stop := range stops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop()
			left.Add(1)
		}()
	}
	// Leaving one at a time, each behind an UNSUBSCRIBE that dials, takes
	// 50 delays; the 10 s here are 10.
	testenv.Eventually(t, 10*delay, func() bool { return left.Load() == n }, "the followers did not leave within 10 delays of Redis")
	wg.Wait()
	if k := h.Followers(); k != 0 {
		t.Fatalf("the hub has %d followers, want 0", k)
	}

	// Redis is back: none of the channels is subscribed to, and a new
	// follower is woken by a new line.
	slow.down.Store(false)
	testenv.Eventually(t, 20*time.Second, func() bool {
		for _, k := range numSub(t, plain, chans...) {
			if k != 0 {
				return false
			}
		}
		return true
	}, "the channels of followers that left are still subscribed to")
	wake, stop := h.Follow(ctx, "again")
	defer stop()
	testenv.Eventually(t, 20*time.Second, func() bool {
		plain.Publish(ctx, store.LogChannel("again"), "")
		select {
		case <-wake:
			return true
		default:
			return false
		}
	}, "a new follower was not woken")
}

// TestLogHubChurn: followers joining and leaving the same channels at once,
// over and over, leave the subscription with exactly the channels that have
// followers, and each of those wakes its followers.
func TestLogHubChurn(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	h := New(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()

	const jobs = 4
	var chans []string
	for j := range jobs {
		chans = append(chans, store.LogChannel(fmt.Sprintf("churn%d", j)))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				_, stop := h.Follow(ctx, fmt.Sprintf("churn%d", (g+i)%jobs))
				stop()
			}
		}()
	}
	wg.Wait()
	// Jobs 0 and 1 keep a follower; 2 and 3 have none.
	wakes := make([]<-chan struct{}, 2)
	for j := range wakes {
		var stop func()
		wakes[j], stop = h.Follow(ctx, fmt.Sprintf("churn%d", j))
		defer stop()
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		n := numSub(t, rdb, chans...)
		return n[chans[0]] == 1 && n[chans[1]] == 1 && n[chans[2]] == 0 && n[chans[3]] == 0
	}, "the subscription is not to the first two channels only")
	for j, wake := range wakes {
		for len(wake) > 0 {
			<-wake // a wake-up from the churn
		}
		if err := rdb.Publish(ctx, chans[j], "").Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			t.Fatalf("the follower of %s was not woken", chans[j])
		}
	}
}
