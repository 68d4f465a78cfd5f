package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
)

// TestGatewayThatCannotServeRunsNoController: a gateway whose HTTP API
// cannot start (its address is taken, its TLS certificate does not load)
// exits with the error before any controller or the elector runs, as
// Gateway.Run did while it ran the loops itself: it never takes the
// scheduler lease, so it cannot lead (place jobs, fire schedule ticks) for
// the moment it takes to fail.
func TestGatewayThatCannotServeRunsNoController(t *testing.T) {
	// One server in every mode: keyspace notifications are each Cluster
	// node's own.
	url := testenv.RedisIn(t, t.TempDir()).URL
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	// Every write of the lease key is published, so that a lease taken and
	// given up while the gateway fails is seen.
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", "KA").Err(); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	tests := []struct {
		name string
		args []string
	}{
		{"address taken", []string{"--addr", taken.Addr().String()}},
		{"TLS certificate missing", []string{"--addr", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}},
	}
	want := map[string]string{"address taken": "listen on", "TLS certificate missing": "TLS certificate"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const sentinel = "test:compose:sentinel"
			sub := rdb.PSubscribe(ctx, "__keyspace@*__:jobgate:scheduler:leader", sentinel)
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil { // the first subscription's confirmation
				t.Fatal(err)
			}
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"gateway", "--redis-url", url, "--artifacts-dir", t.TempDir(), "--log-level", "error"}, tt.args...)
			getenv := func(k string) string {
				if k == "JOBGATE_TOKEN" {
					return testToken
				}
				return ""
			}
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			// The parts ran concurrently with the failing API, so a lease
			// taken is a race it may lose: try a few times.
			for range 10 {
				var out strings.Builder
				if code := run(rctx, args, getenv, &out, &out); code == 0 {
					t.Fatalf("jobgate gateway %v exited 0; want the serving error", tt.args)
				}
				if !strings.Contains(out.String(), want[tt.name]) {
					t.Fatalf("jobgate gateway %v: %s; want the serving error", tt.args, out.String())
				}
			}
			// Redis delivers a subscriber's messages in order: once the
			// sentinel arrives, every lease event before it has too.
			if err := rdb.Publish(ctx, sentinel, "end").Err(); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := sub.ReceiveMessage(rctx)
				if err != nil {
					t.Fatal(err)
				}
				if m.Channel == sentinel {
					return
				}
				t.Errorf("the gateway that could not serve touched the scheduler lease: %s %s", m.Channel, m.Payload)
			}
		})
	}
}
