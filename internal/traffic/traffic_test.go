package traffic

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestRecordThenRead: requests recorded with known latencies read back
// as counts, errors, per-version counts and percentiles in the buckets of
// those latencies; a second outside the window and another deployment do
// not count; a deployment without requests has no traffic.
func TestRecordThenRead(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	rec := NewRecorder(rdb, nil)
	iris, other, idle := Deployment{"team-a", "iris"}, Deployment{"team-b", "iris"}, Deployment{"team-a", "idle"}

	at := func(d time.Duration) { rec.now = func() time.Time { return now.Add(d) } }
	at(-30 * time.Second)
	for range 90 {
		rec.Record(iris, 1, 200, 4*time.Millisecond) // bucket (3, 5]
	}
	at(0)
	for range 8 {
		rec.Record(iris, 2, 200, 40*time.Millisecond) // bucket (30, 50]
	}
	rec.Record(iris, 2, 503, 400*time.Millisecond) // bucket (300, 500]
	rec.Record(iris, 0, 502, 400*time.Millisecond)
	rec.Record(other, 1, 200, time.Second)
	at(-61 * time.Second) // outside the window
	rec.Record(iris, 1, 500, time.Minute)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := Read(ctx, rdb, now, iris, idle)
	if err != nil {
		t.Fatal(err)
	}
	tr := got[iris]
	if tr == nil {
		t.Fatal("no traffic for iris")
	}
	if _, ok := got[idle]; ok {
		t.Fatalf("idle deployment has traffic: %+v", got[idle])
	}
	if tr.Requests != 100 || tr.Errors != 2 || tr.WindowSeconds != 60 || tr.ByTarget["1"] != 90 || tr.ByTarget["2"] != 9 || len(tr.ByTarget) != 2 {
		t.Fatalf("traffic %+v; want 100 requests, 2 errors, 90 on version 1 and 9 on 2", tr)
	}
	if want := 100.0 / 60; tr.RatePerSecond != want {
		t.Fatalf("rate %v, want %v", tr.RatePerSecond, want)
	}
	for _, c := range []struct {
		name   string
		v      float64
		lo, hi float64
	}{{"p50", tr.P50Ms, 3, 5}, {"p95", tr.P95Ms, 30, 50}, {"p99", tr.P99Ms, 300, 500}} {
		if c.v <= c.lo || c.v > c.hi {
			t.Errorf("%s = %v ms, want in (%v, %v]", c.name, c.v, c.lo, c.hi)
		}
	}

	// The keys expire: nothing outlives the retention.
	ttl, err := rdb.TTL(ctx, key(iris.Workspace, iris.Name, now.Unix())).Result()
	if err != nil || ttl <= 0 || ttl > Retention {
		t.Fatalf("TTL %v (%v); want in (0, %v]", ttl, err, Retention)
	}
}

func TestQuantile(t *testing.T) {
	hist := make([]int64, len(Buckets)+1)
	if q := Quantile(hist, 0.5); q != 0 {
		t.Fatalf("empty histogram: %v", q)
	}
	hist[len(Buckets)] = 1 // slower than every bound
	if q := Quantile(hist, 0.99); q != Buckets[len(Buckets)-1] {
		t.Fatalf("past the last bound: %v, want %v", q, Buckets[len(Buckets)-1])
	}
}
