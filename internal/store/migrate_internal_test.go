package store

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
)

// expireHook makes key expire (for real, PEXPIRE 1 then waiting until
// Redis has dropped it) right after the first command that reads it.
type expireHook struct {
	t    *testing.T
	key  string
	by   *redis.Client
	done bool
}

func (h *expireHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *expireHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *expireHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !h.done && len(cmd.Args()) > 1 && cmd.Args()[1] == h.key {
			h.done = true
			if err := h.by.PExpire(ctx, h.key, time.Millisecond).Err(); err != nil {
				h.t.Error(err)
			}
			testenv.Eventually(h.t, 10*time.Second, func() bool { return h.by.Exists(ctx, h.key).Val() == 0 }, "the key did not expire")
		}
		return err
	}
}

// TestDumpRestoreKeyExpiringMeanwhile: a key that expires while the
// Cluster path of MigrateKeys moves it is never restored without expiry.
func TestDumpRestoreKeyExpiringMeanwhile(t *testing.T) {
	ctx := context.Background()
	by := aloneClient(t, nil)
	node := redis.NewClient(&redis.Options{Addr: by.Options().Addr})
	t.Cleanup(func() { node.Close() })
	if err := node.Set(ctx, "jobgate:t", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	node.AddHook(&expireHook{t: t, key: "jobgate:t", by: by})
	r, err := dumpRestore(ctx, node, node, "jobgate:t", "{jobgate}:t")
	if err != nil {
		t.Fatal(err)
	}
	if ttl := by.PTTL(ctx, "{jobgate}:t").Val(); ttl == -1 {
		t.Fatalf("the key that expired during the move was restored with no expiry (result %d)", r)
	}
}
