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

// TestWaitAfterCommandErrors: EXEC ran when a command of the MULTI answers
// redis.Nil (a ZRANK miss) or an error of its own, so txReplicated still
// WAITs and a WAIT that falls short replaces that result; the group commit
// answers every submit of such a batch ErrNotReplicated, the ones whose
// own commands succeeded too.
func TestWaitAfterCommandErrors(t *testing.T) {
	ctx := context.Background()
	rdb := aloneClient(t, nil)
	s := New(rdb, Config{ReplicaAcks: 1, ReplicaTimeout: 50 * time.Millisecond})
	if err := rdb.Set(ctx, prefix+"str", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]func(p redis.Pipeliner){
		"a ZRANK miss": func(p redis.Pipeliner) { p.ZRank(ctx, prefix+"none", "m") },
		"WRONGTYPE":    func(p redis.Pipeliner) { p.LPush(ctx, prefix+"str", "x") },
	} {
		_, err := s.txReplicated(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, prefix+"w", "v", 0)
			cmd(p)
			return nil
		})
		if !errors.Is(err, ErrNotReplicated) {
			t.Errorf("MULTI with %s and no replica: %v, want ErrNotReplicated", name, err)
		}
	}
	err := s.replicatedOn(ctx, func(rdb redis.Cmdable) error {
		rdb.Set(ctx, prefix+"w", "v", 0)
		return rdb.LPush(ctx, prefix+"str", "x").Err()
	})
	if !errors.Is(err, ErrNotReplicated) {
		t.Errorf("replicatedOn whose last command answers WRONGTYPE, no replica: %v, want ErrNotReplicated", err)
	}

	write := func(key string) func(p redis.Pipeliner) *redis.IntCmd {
		return func(p redis.Pipeliner) *redis.IntCmd {
			p.ZAdd(ctx, prefix+"z", redis.Z{Score: 1, Member: "a"})
			return p.ZRank(ctx, key, "a")
		}
	}
	batch := []*submitOp{
		{write: write(prefix + "z"), done: make(chan struct{})},
		{write: write(prefix + "none"), done: make(chan struct{})}, // redis.Nil
	}
	s.submits.send(ctx, s.txReplicated, batch)
	for i, op := range batch {
		<-op.done
		if !errors.Is(op.err, ErrNotReplicated) {
			t.Errorf("submit %d of a batch with a ZRANK miss, no replica: pos %d, err %v, want ErrNotReplicated", i, op.pos, op.err)
		}
	}
}
