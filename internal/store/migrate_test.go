package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// oldName is key's name before the hash tags: {jobgate}:x and
// {jobgate:job:ID}:x were jobgate:x and jobgate:job:ID:x.
func oldName(key string) string {
	if rest, ok := strings.CutPrefix(key, "{jobgate}:"); ok {
		return "jobgate:" + rest
	}
	if strings.HasPrefix(key, "{jobgate:") {
		i := strings.IndexByte(key, '}')
		return key[1:i] + key[i+1:]
	}
	return key
}

// moveTo renames key to name on any Redis: DUMP and RESTORE, since on a
// Cluster the two may be in different slots.
func moveTo(t *testing.T, rdb redis.UniversalClient, key, name string) {
	t.Helper()
	ctx := context.Background()
	dump, err := rdb.Dump(ctx, key).Result()
	if err != nil {
		t.Fatalf("dump %s: %v", key, err)
	}
	ttl := rdb.PTTL(ctx, key).Val()
	if ttl < 0 {
		ttl = 0
	}
	if err := rdb.RestoreReplace(ctx, name, ttl, dump).Err(); err != nil {
		t.Fatalf("restore %s: %v", name, err)
	}
	if err := rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateKeys: an installation whose keys have their names from before
// the hash tags is refused (CheckKeys), MigrateKeys gives every key its new
// name with its value, and a second run moves nothing.
func TestMigrateKeys(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	s := store.New(rdb, store.Config{})
	if err := s.CheckKeys(ctx); err != nil {
		t.Fatalf("CheckKeys on an empty Redis: %v", err)
	}
	if n := rdb.Exists(ctx, "{jobgate}:cluster_id").Val(); n != 1 {
		t.Fatalf("CheckKeys did not record the cluster ID")
	}
	j := newJob(t, s)
	if err := s.AppendMetrics(ctx, j.ID, []store.MetricPoint{{Name: "loss", Step: 1, Value: 0.5, Time: time.Now()}, {Name: "acc", Step: 1, Value: 0.9, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, j.ID, 1, []store.LogLine{{Stream: store.Stdout, Line: []byte("hello")}}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "{jobgate}:with-ttl", "x", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	want := testenv.RedisValues(t, rdb)
	keys := testenv.RedisKeys(t, rdb, "*jobgate*")
	for _, k := range keys {
		if store.NewKeyName(oldName(k)) != k {
			t.Errorf("NewKeyName(%q) = %q, want %q", oldName(k), store.NewKeyName(oldName(k)), k)
		}
		moveTo(t, rdb, k, oldName(k))
	}
	if err := s.CheckKeys(ctx); !errors.Is(err, store.ErrOldKeys) || !strings.Contains(err.Error(), "jobgate migrate-keys") {
		t.Fatalf("CheckKeys with old names: %v, want ErrOldKeys naming jobgate migrate-keys", err)
	}

	res, err := s.MigrateKeys(ctx)
	if err != nil || res.Renamed != len(keys) {
		t.Fatalf("MigrateKeys: %+v, %v; want %d renamed", res, err, len(keys))
	}
	if got := testenv.RedisValues(t, rdb); got != want {
		t.Fatalf("after MigrateKeys:\n%s\nwant:\n%s", got, want)
	}
	if ttl := rdb.TTL(ctx, "{jobgate}:with-ttl").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL after MigrateKeys: %s, want it kept", ttl)
	}
	if got, err := s.GetJobByID(ctx, j.ID); err != nil || got.ID != j.ID {
		t.Fatalf("job after MigrateKeys: %v, %v", got, err)
	}
	if m, err := s.LastMetrics(ctx, j.ID); err != nil || m["loss"] != 0.5 {
		t.Fatalf("metrics after MigrateKeys: %v, %v", m, err)
	}
	if err := s.CheckKeys(ctx); err != nil {
		t.Fatalf("CheckKeys after MigrateKeys: %v", err)
	}
	if res, err := s.MigrateKeys(ctx); err != nil || res.Renamed != 0 {
		t.Fatalf("second MigrateKeys: %+v, %v; want nothing to do", res, err)
	}

	// An old key whose new name is taken stays, and is named.
	if err := rdb.Set(ctx, "jobgate:with-ttl", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = s.MigrateKeys(ctx)
	if err == nil || !strings.Contains(err.Error(), "jobgate:with-ttl") || len(res.Conflicts) != 1 {
		t.Fatalf("MigrateKeys onto a taken name: %+v, %v; want an error naming jobgate:with-ttl", res, err)
	}
	if v := rdb.Get(ctx, "{jobgate}:with-ttl").Val(); v != "x" {
		t.Fatalf("the new key was overwritten: %q", v)
	}
}

// TestMigrateKeysPartLeavesCheckKeysRefusing: a MigrateKeys that leaves a
// key behind (its new name taken) does not move the cluster ID, so
// CheckKeys still refuses; once the conflict is resolved a second run moves
// the rest and the cluster ID last.
func TestMigrateKeysPartLeavesCheckKeysRefusing(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	s := store.New(rdb, store.Config{})
	for k, v := range map[string]string{"jobgate:cluster_id": "c1", "jobgate:a": "1", "jobgate:b": "old", "{jobgate}:b": "new"} {
		if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.MigrateKeys(ctx)
	if err == nil || len(res.Conflicts) != 1 || res.Conflicts[0] != "jobgate:b" {
		t.Fatalf("MigrateKeys with a taken name: %+v, %v; want one conflict, jobgate:b", res, err)
	}
	if err := s.CheckKeys(ctx); !errors.Is(err, store.ErrOldKeys) {
		t.Fatalf("CheckKeys after a migration that left a key behind: %v, want ErrOldKeys", err)
	}
	if err := rdb.Del(ctx, "jobgate:b").Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.MigrateKeys(ctx); err != nil || res.Renamed != 1 {
		t.Fatalf("MigrateKeys once resolved: %+v, %v; want the cluster ID renamed", res, err)
	}
	if err := s.CheckKeys(ctx); err != nil {
		t.Fatalf("CheckKeys after the migration finished: %v", err)
	}
	if id := rdb.Get(ctx, "{jobgate}:cluster_id").Val(); id != "c1" {
		t.Fatalf("cluster ID after the migration: %q, want the old one, c1", id)
	}
}

func TestNewKeyName(t *testing.T) {
	for old, want := range map[string]string{
		"jobgate:job:01abc":                "{jobgate}:job:01abc",
		"jobgate:job:01abc:log":            "{jobgate}:job:01abc:log",
		"jobgate:job:01abc:metrics":        "{jobgate:job:01abc}:metrics",
		"jobgate:job:01abc:metric:a/b:c.d": "{jobgate:job:01abc}:metric:a/b:c.d",
		"jobgate:exec:s1:events":           "{jobgate:exec:s1}:events",
		"jobgate:exec:s1:lease":            "{jobgate:exec:s1}:lease",
		"jobgate:exec:worker:w1":           "{jobgate}:exec:worker:w1",
		"jobgate:ws:default:jobs":          "{jobgate}:ws:default:jobs",
		"asynq:{w1}:pending":               "asynq:{w1}:pending",
		"{jobgate}:pending":                "{jobgate}:pending",
	} {
		if got := store.NewKeyName(old); got != want {
			t.Errorf("NewKeyName(%q) = %q, want %q", old, got, want)
		}
	}
}
