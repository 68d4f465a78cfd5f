package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/internal/testenv"
)

// TestMigrateKeysCommand: a gateway and a worker refuse a Redis holding an
// older jobgate's keys under their old names, naming the command that
// renames them; `jobgate migrate-keys` does, and says how many.
func TestMigrateKeysCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	ctx := context.Background()
	url := testenv.Redis(t)
	rdb := testenv.RedisClient(t, url)
	for _, k := range []string{"jobgate:cluster_id", "jobgate:pending"} {
		if err := rdb.Set(ctx, k, "old", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	env := func(string) string { return "" }
	for _, cmd := range []string{"gateway", "worker"} {
		var stderr bytes.Buffer
		code := run(ctx, []string{cmd, "--redis-url", url, "--artifacts-dir", t.TempDir()}, env, &stderr, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "jobgate migrate-keys --redis-url") {
			t.Fatalf("jobgate %s on old keys: exit %d, %q; want a refusal naming jobgate migrate-keys", cmd, code, stderr.String())
		}
	}
	var out bytes.Buffer
	if code := run(ctx, []string{"migrate-keys", "--redis-url", url}, env, &out, &out); code != 0 || !strings.Contains(out.String(), "renamed 2 keys") {
		t.Fatalf("migrate-keys: exit %d, %q; want 2 keys renamed", code, out.String())
	}
	if v := rdb.Get(ctx, "{jobgate}:cluster_id").Val(); v != "old" {
		t.Fatalf("{jobgate}:cluster_id = %q after migrate-keys, want the old installation's", v)
	}
	out.Reset()
	if code := run(ctx, []string{"migrate-keys", "--redis-url", url}, env, &out, &out); code != 0 || !strings.Contains(out.String(), "renamed 0 keys") {
		t.Fatalf("second migrate-keys: exit %d, %q; want nothing renamed", code, out.String())
	}
	// The URL from JOBGATE_REDIS_URL alone, as the error below says.
	out.Reset()
	urlEnv := func(k string) string { return map[string]string{"JOBGATE_REDIS_URL": url}[k] }
	if code := run(ctx, []string{"migrate-keys"}, urlEnv, &out, &out); code != 0 || !strings.Contains(out.String(), "renamed 0 keys") {
		t.Fatalf("migrate-keys with JOBGATE_REDIS_URL only: exit %d, %q; want it run, nothing renamed", code, out.String())
	}
	var stderr bytes.Buffer
	if code := run(ctx, []string{"migrate-keys"}, env, &stderr, &stderr); code == 0 || !strings.Contains(stderr.String(), "--redis-url") {
		t.Fatalf("migrate-keys without --redis-url: exit %d, %q", code, stderr.String())
	}
}
