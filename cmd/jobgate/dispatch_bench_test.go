package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// Dispatch latency at idle: how long a job submitted to an idle system waits
// before a worker starts it. Run side by side with plain asynq:
//
//	make bench-dispatch
//
// The numbers land in BENCHMARKS.md.

// idleGap lets the system go idle before the next submit: a random pause of
// up to 2 s, so submits land anywhere in a poller's sleep. The same gap is
// used for jobgate and for asynq.
func idleGap(b *testing.B) {
	b.StopTimer()
	time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Second))))
	b.StartTimer()
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDispatchIdle measures submit (the gateway's created_at) to attempt
// start (the worker's started_at) for host-process jobs on an idle worker, and
// to the end of a trivial container job.
func BenchmarkDispatchIdle(b *testing.B) {
	for _, mode := range []api.Mode{api.ModeProcess, api.ModeContainer} {
		b.Run(string(mode), func(b *testing.B) {
			c := newBenchCluster(b)
			spec := api.JobSpec{Mode: mode, Command: []string{"/bin/true"}}
			if mode == api.ModeContainer {
				spec = api.JobSpec{Image: testenv.ExampleImage, Command: toolbox("now")}
			}
			var toStart, toEnd, toWorkload []time.Duration
			for b.Loop() {
				idleGap(b)
				j, err := c.api.Submit(context.Background(), spec, "")
				if err != nil {
					b.Fatal(err)
				}
				done, err := c.api.Wait(context.Background(), j.ID)
				if err != nil || done.Status != api.StatusSucceeded {
					b.Fatalf("job: %v %v", done, err)
				}
				toStart = append(toStart, done.StartedAt.Sub(done.CreatedAt))
				toEnd = append(toEnd, done.FinishedAt.Sub(done.CreatedAt))
				if mode == api.ModeContainer {
					// The workload printed when it started running.
					ns, err := strconv.ParseInt(strings.TrimSpace(c.logs(j.ID)), 10, 64)
					if err != nil {
						b.Fatalf("toolbox now printed %q", c.logs(j.ID))
					}
					toWorkload = append(toWorkload, time.Unix(0, ns).Sub(done.CreatedAt))
				}
			}
			reportPercentiles(b, toStart)
			if mode == api.ModeContainer {
				slices.Sort(toEnd)
				slices.Sort(toWorkload)
				b.ReportMetric(float64(toEnd[len(toEnd)/2].Microseconds())/1000, "p50-submit-to-end-ms")
				b.ReportMetric(float64(toWorkload[len(toWorkload)/2].Microseconds())/1000, "p50-submit-to-container-running-ms")
				b.ReportMetric(float64(toWorkload[len(toWorkload)*99/100].Microseconds())/1000, "p99-submit-to-container-running-ms")
			}
		})
	}
}

// BenchmarkAsynqDefaultIdle is the peer: a plain asynq server with default
// settings, enqueue to handler start, one task at a time on an idle server.
func BenchmarkAsynqDefaultIdle(b *testing.B) {
	opts, err := redis.ParseURL(testenv.RedisIn(b, b.TempDir()).URL) // one server in every mode
	if err != nil {
		b.Fatal(err)
	}
	conn := asynq.RedisClientOpt{Addr: opts.Addr}
	started := make(chan time.Duration, 1)
	srv := asynq.NewServer(conn, asynq.Config{Concurrency: 1, LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench", func(ctx context.Context, t *asynq.Task) error {
		ns, _ := strconv.ParseInt(string(t.Payload()), 10, 64)
		started <- time.Since(time.Unix(0, ns))
		return nil
	})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClient(conn)
	defer cl.Close()
	var lat []time.Duration
	for b.Loop() {
		idleGap(b)
		if _, err := cl.Enqueue(asynq.NewTask("bench", []byte(strconv.FormatInt(time.Now().UnixNano(), 10)))); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, <-started)
	}
	reportPercentiles(b, lat)
}
