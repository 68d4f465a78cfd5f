package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestClusterSpreadsSlots starts a Cluster and checks that a ClusterClient
// made from its URL reaches all three masters, and that keys on different
// hash tags land on different ones.
func TestClusterSpreadsSlots(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	start := time.Now()
	c := Cluster(t)
	t.Logf("cluster up in %s: %s", time.Since(start).Round(time.Millisecond), c.URL)
	rdb := RedisClient(t, c.URL)
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("RedisClient(%s) = %T, want *redis.ClusterClient", c.URL, rdb)
	}
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if err := cc.Set(ctx, fmt.Sprintf("{tag%d}:k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var masters, withKeys int
	var mu = make(chan struct{}, 1)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		mu <- struct{}{}
		masters++
		if n > 0 {
			withKeys++
		}
		<-mu
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if masters != clusterMasters || withKeys != clusterMasters {
		t.Fatalf("%d masters, %d holding keys; want %d and %d", masters, withKeys, clusterMasters, clusterMasters)
	}
}
