package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
)

// aloneClient is a client of a redis-server of its own, with no replica
// (so WAIT 1 never succeeds), whatever JOBGATE_TEST_REDIS says.
func aloneClient(t *testing.T, tune func(*redis.Options)) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisIn(t, t.TempDir()).URL)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(opt)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestWaitConnectionErrorKeepsCause: a WAIT that fails on the connection
// (here the client's read timeout, shorter than WAIT's own) is an
// ErrNotReplicated and an ErrUnavailable whose message names the cause.
func TestWaitConnectionErrorKeepsCause(t *testing.T) {
	rdb := aloneClient(t, func(o *redis.Options) { o.ReadTimeout = 200 * time.Millisecond; o.MaxRetries = -1 })
	s := New(rdb, Config{ReplicaAcks: 1, ReplicaTimeout: time.Minute})
	_, err := s.txReplicated(context.Background(), func(p redis.Pipeliner) error {
		p.Set(context.Background(), prefix+"t", "v", 0)
		return nil
	})
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("WAIT past the read timeout: %v, want ErrNotReplicated and ErrUnavailable", err)
	}
	if msg := err.Error(); strings.Contains(msg, "%!") || !strings.Contains(msg, "timeout") {
		t.Fatalf("WAIT past the read timeout: message %q does not name the cause", msg)
	}
	t.Logf("%v", err)
}
