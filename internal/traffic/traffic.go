// Package traffic is what the scoring router measured of each deployment's
// requests, kept in Redis for the gateway to show: the router's Recorder
// counts in memory and writes once a second; Read sums the last minute.
//
// Layout: one hash per deployment per second,
// {jobgate:traffic:<workspace>/<deployment>}:<unix second>, expiring after
// Retention, with the fields n (requests), e (errors: answers of 500 and
// up), t:<version> (requests a model version served) and b<i> (requests
// whose latency fell in latency bucket i, Buckets). The hash tag keeps a
// deployment's seconds on one Redis Cluster slot and spreads deployments
// over the masters; the name is outside jobgate:*, which migrate-keys
// takes for an old installation's.
package traffic

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Window is the span Read covers.
const Window = 60 * time.Second

// Retention is how long a second's hash is kept: the window and some
// slack for a reader whose clock is behind.
const Retention = 2 * time.Minute

// Buckets are the latency buckets' upper bounds in milliseconds; a request
// slower than the last falls in one more bucket, past it.
var Buckets = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
	1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000}

func key(ws, name string, sec int64) string {
	return "{jobgate:traffic:" + ws + "/" + name + "}:" + strconv.FormatInt(sec, 10)
}

// bucketOf is the index of the bucket of a latency of ms milliseconds.
func bucketOf(ms float64) int {
	for i, b := range Buckets {
		if ms <= b {
			return i
		}
	}
	return len(Buckets)
}

// Deployment names one deployment.
type Deployment struct{ Workspace, Name string }

type secondKey struct {
	dep Deployment
	sec int64
}

// Recorder counts requests in memory and writes them to Redis when Flush
// runs (every second in Run), so the request path adds no Redis call.
type Recorder struct {
	rdb    redis.UniversalClient
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pending map[secondKey]map[string]int64
}

// NewRecorder returns a Recorder writing to rdb; logger may be nil.
func NewRecorder(rdb redis.UniversalClient, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{rdb: rdb, logger: logger, now: time.Now, pending: map[secondKey]map[string]int64{}}
}

// Record counts one request to dep answered with status after latency;
// version is the model version that served it, 0 when none did.
func (r *Recorder) Record(dep Deployment, version int, status int, latency time.Duration) {
	k := secondKey{dep: dep, sec: r.now().Unix()}
	b := "b" + strconv.Itoa(bucketOf(float64(latency)/float64(time.Millisecond)))
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.pending[k]
	if m == nil {
		m = map[string]int64{}
		r.pending[k] = m
	}
	m["n"]++
	m[b]++
	if status >= 500 {
		m["e"]++
	}
	if version > 0 {
		m["t:"+strconv.Itoa(version)]++
	}
}

// Flush writes what was recorded since the last Flush in one pipeline. A
// write that fails loses those counts (they are a view, not a record), so
// memory stays bounded while Redis is away.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[secondKey]map[string]int64, len(batch))
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, fields := range batch {
			rk := key(k.dep.Workspace, k.dep.Name, k.sec)
			for f, n := range fields {
				p.HIncrBy(ctx, rk, f, n)
			}
			p.Expire(ctx, rk, Retention)
		}
		return nil
	})
	return err
}

// Run flushes every interval until ctx is done, then once more.
func (r *Recorder) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = r.Flush(flushCtx)
			cancel()
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.logger.WarnContext(ctx, "traffic: write request counts", slog.Any("error", err))
			}
		}
	}
}

// Read returns each deployment's traffic over the Window ending at now, in
// one pipeline; a deployment that served nothing in it has no entry.
func Read(ctx context.Context, rdb redis.UniversalClient, now time.Time, deps ...Deployment) (map[Deployment]*api.DeploymentTraffic, error) {
	if len(deps) == 0 {
		return nil, nil
	}
	secs := int64(Window / time.Second)
	last := now.Unix()
	cmds := make([][]*redis.MapStringStringCmd, len(deps))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range deps {
			cmds[i] = make([]*redis.MapStringStringCmd, secs)
			for s := range secs {
				cmds[i][s] = p.HGetAll(ctx, key(d.Workspace, d.Name, last-s))
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("traffic: read: %w", err)
	}
	out := map[Deployment]*api.DeploymentTraffic{}
	for i, d := range deps {
		t := api.DeploymentTraffic{WindowSeconds: int(secs)}
		hist := make([]int64, len(Buckets)+1)
		for _, c := range cmds[i] {
			for f, v := range c.Val() {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue
				}
				switch {
				case f == "n":
					t.Requests += n
				case f == "e":
					t.Errors += n
				case strings.HasPrefix(f, "t:"):
					if t.ByTarget == nil {
						t.ByTarget = map[string]int64{}
					}
					t.ByTarget[f[2:]] += n
				case strings.HasPrefix(f, "b"):
					if b, err := strconv.Atoi(f[1:]); err == nil && b >= 0 && b < len(hist) {
						hist[b] += n
					}
				}
			}
		}
		if t.Requests == 0 {
			continue
		}
		t.RatePerSecond = float64(t.Requests) / float64(secs)
		t.P50Ms, t.P95Ms, t.P99Ms = Quantile(hist, 0.5), Quantile(hist, 0.95), Quantile(hist, 0.99)
		out[d] = &t
	}
	return out, nil
}

// Quantile estimates the q quantile in milliseconds from bucket counts
// (hist[i] for Buckets[i], the last for past them), interpolating linearly
// within the bucket as Prometheus's histogram_quantile does; past the last
// bound it answers that bound.
func Quantile(hist []int64, q float64) float64 {
	var total int64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, n := range hist {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i == len(Buckets) {
			return Buckets[len(Buckets)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = Buckets[i-1]
		}
		hi := Buckets[i]
		v := lo + (hi-lo)*(rank-float64(seen))/float64(n)
		return math.Round(v*1000) / 1000
	}
	return Buckets[len(Buckets)-1]
}
