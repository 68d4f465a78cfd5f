package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// oldPrefix began every key before the keys got their hash tag (prefix).
const oldPrefix = "jobgate:"

// oldClusterIDKey is clusterIDKey's old name. MigrateKeys renames it last.
const oldClusterIDKey = oldPrefix + "cluster_id"

// ErrOldKeys is CheckKeys's answer when Redis holds an installation's keys
// under the names from before the hash tags.
var ErrOldKeys = errors.New("redis holds jobgate keys under their old names (jobgate:*); stop every gateway and worker and run `jobgate migrate-keys --redis-url URL` once, then start them again")

// CheckKeys refuses a Redis that holds an older installation's keys under
// their old names (jobgate:*, from before the hash tags) and none under the
// new ones: a gateway or worker started on it would see an empty
// installation and leave the old jobs behind. It returns an error wrapping
// ErrOldKeys then. A Redis with the new cluster ID (an installation already
// migrated or started new) passes without a scan; one that passes the scan
// gets its cluster ID (ClusterID), so the next start needs no scan either.
func (s *Store) CheckKeys(ctx context.Context) error {
	n, err := s.rdb.Exists(ctx, clusterIDKey).Result()
	if err != nil {
		return fmt.Errorf("check key names: %w", err)
	}
	if n > 0 {
		return nil
	}
	found := false
	err = s.scanOld(ctx, 1, func(context.Context, redis.Cmdable, string) error {
		found = true
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("check key names: %w", err)
	}
	if found {
		return ErrOldKeys
	}
	_, err = s.ClusterID(ctx)
	return err
}

var errStopScan = errors.New("stop scan")

// MigrateResult is what MigrateKeys did.
type MigrateResult struct {
	// Renamed counts the keys moved to their new names.
	Renamed int
	// Conflicts are old keys left in place because their new name is taken
	// (the new one kept); an error names them.
	Conflicts []string
}

// MigrateKeys renames every key under its old name (jobgate:*) to its name
// with the hash tags (NewKeyName). Run it with every gateway and worker
// stopped: a process of either version writing meanwhile would be renamed
// under, or write under the name just moved away. It is idempotent: a
// second run finds nothing to move. A key whose new name already exists is
// not overwritten; it is counted in Conflicts and MigrateKeys returns an
// error naming the first. The cluster ID moves last, and only when every
// other key moved: a run that stops part-way leaves CheckKeys refusing
// (it passes without a scan once the new cluster ID exists). asynq's keys (asynq:*) keep their names.
func (s *Store) MigrateKeys(ctx context.Context) (MigrateResult, error) {
	var (
		mu  sync.Mutex
		res MigrateResult
	)
	err := s.scanOld(ctx, 500, func(ctx context.Context, node redis.Cmdable, old string) error {
		if old == oldClusterIDKey {
			return nil // last, below
		}
		r, err := moveKey(ctx, s.rdb, node, old, NewKeyName(old))
		if err != nil {
			return fmt.Errorf("rename %s: %w", old, err)
		}
		mu.Lock()
		defer mu.Unlock()
		switch r {
		case moved:
			res.Renamed++
		case taken:
			res.Conflicts = append(res.Conflicts, old)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("migrate keys: %w", err)
	}
	if len(res.Conflicts) == 0 {
		// The cluster ID under its new name lets CheckKeys pass without a
		// scan, so it moves only once every other key has.
		r, err := moveKey(ctx, s.rdb, s.rdb, oldClusterIDKey, clusterIDKey)
		if err != nil {
			return res, fmt.Errorf("migrate keys: rename %s: %w", oldClusterIDKey, err)
		}
		switch r {
		case moved:
			res.Renamed++
		case taken:
			res.Conflicts = append(res.Conflicts, oldClusterIDKey)
		}
	}
	if len(res.Conflicts) > 0 {
		return res, fmt.Errorf("migrate keys: %d old keys left in place because their new names exist already, first %s (new name %s): compare and delete one by hand",
			len(res.Conflicts), res.Conflicts[0], NewKeyName(res.Conflicts[0]))
	}
	return res, nil
}

// NewKeyName is the name key (under oldPrefix) has with the hash tags: a
// job's metric series under the job's own tag (metricsTag), everything
// else under prefix. Any other key is returned as it is.
func NewKeyName(key string) string {
	rest, ok := strings.CutPrefix(key, oldPrefix)
	if !ok {
		return key
	}
	switch {
	case strings.HasPrefix(rest, "exec:"):
		// queue.ExecStreamKey and ExecLeaseKey: the session's own tag.
		if session, tail, ok := strings.Cut(strings.TrimPrefix(rest, "exec:"), ":"); ok && (tail == "events" || tail == "lease") {
			return "{jobgate:exec:" + session + "}:" + tail
		}
	case strings.HasPrefix(rest, "job:"):
		if id, tail, ok := strings.Cut(strings.TrimPrefix(rest, "job:"), ":"); ok && validID(id) {
			if tail == "metrics" {
				return metricsLastKey(id)
			}
			if name, ok := strings.CutPrefix(tail, "metric:"); ok {
				return metricKey(id, name)
			}
		}
	}
	return prefix + rest
}

// scanOld calls fn with each key under oldPrefix and the node that holds
// it: every master of a Cluster (a ClusterClient's SCAN reaches one node
// only), or the one server.
func (s *Store) scanOld(ctx context.Context, count int64, fn func(ctx context.Context, node redis.Cmdable, key string) error) error {
	scan := func(ctx context.Context, node redis.Cmdable) error {
		it := node.Scan(ctx, 0, oldPrefix+"*", count).Iterator()
		for it.Next(ctx) {
			if err := fn(ctx, node, it.Val()); err != nil {
				return err
			}
		}
		return it.Err()
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return scan(ctx, m) })
	}
	return scan(ctx, s.rdb)
}

type moveResult int

const (
	moved moveResult = iota
	taken            // the new name exists: nothing moved
	gone             // the old key is gone (SCAN may return a key twice)
)

// moveKey renames old to new unless new exists. On a Cluster the two names
// may hash to different slots, where RENAME is refused: the value moves by
// DUMP and RESTORE (its TTL kept) instead.
func moveKey(ctx context.Context, rdb redis.UniversalClient, node redis.Cmdable, old, new string) (moveResult, error) {
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		ok, err := node.RenameNX(ctx, old, new).Result()
		switch {
		case err != nil && strings.Contains(err.Error(), "no such key"):
			return gone, nil
		case err != nil:
			return taken, err
		case !ok:
			return taken, nil
		}
		return moved, nil
	}
	return dumpRestore(ctx, rdb, node, old, new)
}

// dumpRestore moves old (on node) to new (through rdb) by DUMP and
// RESTORE, its TTL kept. The TTL is read first: read after DUMP, a key
// that expired between the two would read -2 and be restored with no
// expiry; read before, such a key is gone at DUMP.
func dumpRestore(ctx context.Context, rdb, node redis.Cmdable, old, new string) (moveResult, error) {
	ttl, err := node.PTTL(ctx, old).Result()
	if err != nil {
		return taken, err
	}
	if ttl == -2 { // no such key (go-redis keeps -2 and -1 unscaled)
		return gone, nil
	}
	dump, err := node.Dump(ctx, old).Result()
	if errors.Is(err, redis.Nil) {
		return gone, nil
	}
	if err != nil {
		return taken, err
	}
	if ttl < 0 {
		ttl = 0 // RESTORE's "no expiry"
	}
	if err := rdb.Restore(ctx, new, ttl, dump).Err(); err != nil {
		if strings.Contains(err.Error(), "BUSYKEY") {
			return taken, nil
		}
		return taken, err
	}
	return moved, node.Del(ctx, old).Err()
}
