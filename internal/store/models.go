package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// The model registry, per workspace:
//
//	{jobgate}:ws:<ws>:models                  hash name → modelRecord
//	{jobgate}:ws:<ws>:model:<name>:seq        the last version number given out (INCR)
//	{jobgate}:ws:<ws>:model:<name>:versions   hash version → api.ModelVersion (no aliases)
//	{jobgate}:ws:<ws>:model:<name>:aliases    hash alias → version
//
// A version's files are in the artifact store (artifact.ModelPrefix); the
// records here say what they are.
func wsModelsKey(ws string) string { return prefix + "ws:" + ws + ":models" }
func modelKey(ws, name, part string) string {
	return prefix + "ws:" + ws + ":model:" + name + ":" + part
}

// modelRecord is what the models hash keeps of a model itself.
type modelRecord struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// NextModelVersion gives out the next version number of model name of ws:
// 1 for a new model, and each call one more, atomically, so concurrent
// registrations never share one. A number is never given out again, even
// when its version is deleted or never finished registering.
func (s *Store) NextModelVersion(ctx context.Context, ws, name string) (int, error) {
	n, err := s.rdb.Incr(ctx, modelKey(ws, name, "seq")).Result()
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// AddModelVersion records version v (numbered by NextModelVersion, its
// files already stored), and the model itself if v is its first.
func (s *Store) AddModelVersion(ctx context.Context, ws string, v api.ModelVersion) error {
	v.Aliases = nil // computed on read
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode model version: %w", err)
	}
	m, err := json.Marshal(modelRecord{Name: v.Name, CreatedAt: v.CreatedAt})
	if err != nil {
		return fmt.Errorf("encode model: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, wsModelsKey(ws), v.Name, m)
		p.HSet(ctx, modelKey(ws, v.Name, "versions"), strconv.Itoa(v.Version), b)
		return nil
	})
	return err
}

// Model returns model name of ws with its versions (oldest first) and
// aliases, or ErrNotFound.
func (s *Store) Model(ctx context.Context, ws, name string) (*api.Model, error) {
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HGet(ctx, wsModelsKey(ws), name)
		p.HGetAll(ctx, modelKey(ws, name, "versions"))
		p.HGetAll(ctx, modelKey(ws, name, "aliases"))
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var mr modelRecord
	if err := json.Unmarshal([]byte(cmds[0].(*redis.StringCmd).Val()), &mr); err != nil {
		return nil, fmt.Errorf("model %s/%s: %w", ws, name, err)
	}
	m := &api.Model{Name: mr.Name, CreatedAt: mr.CreatedAt, Aliases: map[string]int{}, Versions: []api.ModelVersion{}}
	byVersion := map[int][]string{}
	for alias, v := range cmds[2].(*redis.MapStringStringCmd).Val() {
		n, _ := strconv.Atoi(v)
		m.Aliases[alias] = n
		byVersion[n] = append(byVersion[n], alias)
	}
	for _, raw := range cmds[1].(*redis.MapStringStringCmd).Val() {
		var v api.ModelVersion
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("model version of %s/%s: %w", ws, name, err)
		}
		v.Aliases = sorted(byVersion[v.Version])
		m.Versions = append(m.Versions, v)
		m.LatestVersion = max(m.LatestVersion, v.Version)
	}
	slices.SortFunc(m.Versions, func(a, b api.ModelVersion) int { return cmp.Compare(a.Version, b.Version) })
	return m, nil
}

func sorted(ss []string) []string {
	slices.Sort(ss)
	return ss
}

// Models lists ws's models, sorted by name.
func (s *Store) Models(ctx context.Context, ws string) ([]api.Model, error) {
	names, err := s.rdb.HKeys(ctx, wsModelsKey(ws)).Result()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]api.Model, 0, len(names))
	for _, n := range names {
		m, err := s.Model(ctx, ws, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, nil
}

// ModelVersion returns version v of model name of ws, with its aliases, or
// ErrNotFound.
func (s *Store) ModelVersion(ctx context.Context, ws, name string, v int) (*api.ModelVersion, error) {
	var raw *redis.StringCmd
	var aliases *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		raw = p.HGet(ctx, modelKey(ws, name, "versions"), strconv.Itoa(v))
		aliases = p.HGetAll(ctx, modelKey(ws, name, "aliases"))
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("model %s:%d: %w", name, v, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var mv api.ModelVersion
	if err := json.Unmarshal([]byte(raw.Val()), &mv); err != nil {
		return nil, fmt.Errorf("model version %s/%s:%d: %w", ws, name, v, err)
	}
	for alias, n := range aliases.Val() {
		if n == strconv.Itoa(v) {
			mv.Aliases = append(mv.Aliases, alias)
		}
	}
	slices.Sort(mv.Aliases)
	return &mv, nil
}

// ResolveModel returns the version of ws that ref names: "name:version" or
// "name@alias" (api.ParseModelRef); ErrNotFound when the model, the
// version or the alias does not exist, and a plain error for a ref of
// another shape. Everything that takes a model by reference resolves it
// here.
func (s *Store) ResolveModel(ctx context.Context, ws, ref string) (*api.ModelVersion, error) {
	r, err := api.ParseModelRef(ref)
	if err != nil {
		return nil, err
	}
	v := r.Version
	if r.Alias != "" {
		n, err := s.rdb.HGet(ctx, modelKey(ws, r.Name, "aliases"), r.Alias).Result()
		if errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("model %s: no such alias: %w", ref, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		if v, err = strconv.Atoi(n); err != nil {
			return nil, fmt.Errorf("model %s: alias holds %q", ref, n)
		}
	}
	return s.ModelVersion(ctx, ws, r.Name, v)
}

// SetModelAlias points alias of model name at version v, moving it if it
// named another; ErrNotFound when v does not exist.
func (s *Store) SetModelAlias(ctx context.Context, ws, name, alias string, v int) error {
	n, err := setModelAliasScript.Run(ctx, s.rdb,
		[]string{modelKey(ws, name, "versions"), modelKey(ws, name, "aliases")}, alias, v).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("model %s:%d: %w", name, v, ErrNotFound)
	}
	return nil
}

// DeleteModelAlias removes alias of model name; ErrNotFound if it has none.
func (s *Store) DeleteModelAlias(ctx context.Context, ws, name, alias string) error {
	n, err := s.rdb.HDel(ctx, modelKey(ws, name, "aliases"), alias).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("model %s@%s: %w", name, alias, ErrNotFound)
	}
	return nil
}

// DeleteModelVersion removes version v of model name and the aliases that
// named it, which it returns; ErrNotFound when there is no such version.
// Its number is never given out again.
func (s *Store) DeleteModelVersion(ctx context.Context, ws, name string, v int) ([]string, error) {
	res, err := deleteModelVersion.Run(ctx, s.rdb,
		[]string{modelKey(ws, name, "versions"), modelKey(ws, name, "aliases")}, v).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || res[0] != int64(1) {
		return nil, fmt.Errorf("model %s:%d: %w", name, v, ErrNotFound)
	}
	if err := s.rdb.Del(ctx, modelTagsKey(ws, name, v)).Err(); err != nil {
		return nil, err
	}
	aliases := []string{}
	for _, a := range res[1:] {
		aliases = append(aliases, fmt.Sprint(a))
	}
	slices.Sort(aliases)
	return aliases, nil
}

// DeleteModel removes model name of ws once it has no versions: its record,
// aliases, description and tags. ErrNotFound when there is no such model;
// ErrConflict when it has a version (one registered since the caller
// deleted the others). Its version counter stays, so a model made again
// under the name goes on from the last number: a number never names two
// different sets of files.
func (s *Store) DeleteModel(ctx context.Context, ws, name string) error {
	versions := modelKey(ws, name, "versions")
	for range casAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.HLen(ctx, versions).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("model %s has %d versions: %w", name, n, ErrConflict)
			}
			ok, err := tx.HExists(ctx, wsModelsKey(ws), name).Result()
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("model %q: %w", name, ErrNotFound)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HDel(ctx, wsModelsKey(ws), name)
				p.Del(ctx, modelKey(ws, name, "aliases"), modelTagsKey(ws, name, 0))
				p.HDel(ctx, modelDescriptionsKey(ws), name)
				return nil
			})
			return err
		}, versions, wsModelsKey(ws))
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("model %q kept changing: %w", name, ErrConflict)
}
