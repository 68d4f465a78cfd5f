package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A deployment names model versions, and a version a deployment uses
// cannot be deleted. Checking one and then writing the other leaves a
// window (a PATCH resolves iris:2, a DELETE of iris:2 checks that nothing
// uses it, the PATCH writes its record, the DELETE removes the version the
// record now names), and the API's read-modify-write of a record loses a
// change made meanwhile (a DELETE's deleting flag, a PATCH). So each side
// writes in an optimistic transaction (WATCH) over what the other writes:
// a deployment's write watches the versions it names, a version's delete
// watches every deployment of the workspace and its replica slots; either
// one that loses the race reads again.

// ErrDeploymentChanged: the record changed since it was read.
var ErrDeploymentChanged = errors.New("the deployment changed meanwhile")

// casAttempts bounds the retries of a transaction that keeps losing.
const casAttempts = 16

// PutDeploymentIf writes d's record, as PutDeployment, if every version
// it targets exists (else an error wrapping ErrNotFound naming it) and the
// record is still prev (nil: d must be new, ErrConflict when it exists;
// ErrDeploymentChanged when another write came between, or it is gone).
func (s *Store) PutDeploymentIf(ctx context.Context, d DeploymentRecord, prev *DeploymentRecord) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode deployment: %w", err)
	}
	key := deploymentKey(d.Workspace, d.Spec.Name, "")
	keys := []string{key}
	for _, t := range d.Targets {
		keys = append(keys, modelKey(d.Workspace, t.Model, "versions"))
	}
	for range casAttempts {
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			raw, err := tx.HGet(ctx, key, "spec").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			switch {
			case prev == nil && raw != "":
				return fmt.Errorf("deployment %q: %w", d.Spec.Name, ErrConflict)
			case prev != nil && raw == "":
				return fmt.Errorf("deployment %q is gone: %w", d.Spec.Name, ErrDeploymentChanged)
			case prev != nil:
				var cur DeploymentRecord
				if err := json.Unmarshal([]byte(raw), &cur); err != nil {
					return fmt.Errorf("decode deployment %q: %w", d.Spec.Name, err)
				}
				if cur.Revision != prev.Revision || cur.Deleting != prev.Deleting || !cur.UpdatedAt.Equal(prev.UpdatedAt) {
					return fmt.Errorf("deployment %q: %w", d.Spec.Name, ErrDeploymentChanged)
				}
			}
			for _, t := range d.Targets {
				ok, err := tx.HExists(ctx, modelKey(d.Workspace, t.Model, "versions"), strconv.Itoa(t.Version)).Result()
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("model %s:%d: %w", t.Model, t.Version, ErrNotFound)
				}
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, key, "spec", b)
				p.SAdd(ctx, deploymentsKey(), d.Workspace+"/"+d.Spec.Name)
				return nil
			})
			return err
		}, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("deployment %q: %w", d.Spec.Name, ErrDeploymentChanged)
}

// DeleteUnusedModelVersion is DeleteModelVersion, unless a deployment of
// ws serves (or rolls away from) the version: then by names it, and
// nothing is deleted. The check and the delete are one transaction.
func (s *Store) DeleteUnusedModelVersion(ctx context.Context, ws, name string, v int) (aliases []string, by string, err error) {
	versions, aliasKey := modelKey(ws, name, "versions"), modelKey(ws, name, "aliases")
	for range casAttempts {
		aliases, by = nil, ""
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			all, err := tx.SMembers(ctx, deploymentsKey()).Result()
			if err != nil {
				return err
			}
			var deps []string
			for _, m := range all {
				if n, ok := strings.CutPrefix(m, ws+"/"); ok {
					deps = append(deps, n)
				}
			}
			slices.Sort(deps)
			var keys []string
			for _, n := range deps {
				keys = append(keys, deploymentKey(ws, n, ""), deploymentKey(ws, n, "replicas"))
			}
			if len(keys) > 0 {
				if err := tx.Watch(ctx, keys...).Err(); err != nil {
					return err
				}
			}
			for _, n := range deps {
				if used, err := deploymentUses(ctx, tx, ws, n, name, v); err != nil || used {
					if used {
						by = n
					}
					return err
				}
			}
			var res *redis.Cmd
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				res = deleteModelVersion.Eval(ctx, p, []string{versions, aliasKey}, v)
				p.Del(ctx, modelTagsKey(ws, name, v))
				return nil
			})
			if err != nil {
				return err
			}
			out, err := res.Slice()
			if err != nil {
				return err
			}
			if len(out) == 0 || out[0] != int64(1) {
				return fmt.Errorf("model %s:%d: %w", name, v, ErrNotFound)
			}
			aliases = []string{}
			for _, a := range out[1:] {
				aliases = append(aliases, fmt.Sprint(a))
			}
			slices.Sort(aliases)
			return nil
		}, deploymentsKey(), versions)
		if !errors.Is(err, redis.TxFailedErr) {
			return aliases, by, err
		}
	}
	return nil, "", fmt.Errorf("model %s:%d: deployments kept changing while it was deleted; retry", name, v)
}

// deploymentUses reports whether deployment dep of ws targets, or has a
// replica slot of, version v of model name (read in tx).
func deploymentUses(ctx context.Context, tx *redis.Tx, ws, dep, name string, v int) (bool, error) {
	raw, err := tx.HGet(ctx, deploymentKey(ws, dep, ""), "spec").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var d DeploymentRecord
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return false, fmt.Errorf("decode deployment %q: %w", dep, err)
	}
	for _, t := range d.Targets {
		if t.Model == name && t.Version == v {
			return true, nil
		}
	}
	slots, err := tx.HVals(ctx, deploymentKey(ws, dep, "replicas")).Result()
	if err != nil {
		return false, err
	}
	for _, raw := range slots {
		var r ReplicaSlot
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return false, fmt.Errorf("decode replica of %q: %w", dep, err)
		}
		if r.Model == name && r.Version == v {
			return true, nil
		}
	}
	return false, nil
}
