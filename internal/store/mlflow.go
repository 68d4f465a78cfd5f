package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// What MLflow's lifecycle calls keep beyond jobgate's own records: which
// experiments and runs are deleted (MLflow deletes softly: a deleted one
// is hidden from searches and can be restored) and experiments' tags.

// MaxExperimentTags bounds one experiment's tags.
const MaxExperimentTags = 100

func deletedExperimentsKey(ws string) string { return prefix + "ws:" + ws + ":experiments:deleted" }
func experimentTagsKey(ws, exp string) string {
	return prefix + "ws:" + ws + ":experiment-tags:" + exp
}

// lifecycleField is the job-record field that marks a deleted run.
const lifecycleField = "lifecycle_stage"

// SetExperimentDeleted marks experiment exp of ws deleted, or active again.
func (s *Store) SetExperimentDeleted(ctx context.Context, ws, exp string, deleted bool) error {
	if deleted {
		return s.rdb.SAdd(ctx, deletedExperimentsKey(ws), exp).Err()
	}
	return s.rdb.SRem(ctx, deletedExperimentsKey(ws), exp).Err()
}

// DeletedExperiments is the set of ws's deleted experiments.
func (s *Store) DeletedExperiments(ctx context.Context, ws string) (map[string]bool, error) {
	names, err := s.rdb.SMembers(ctx, deletedExperimentsKey(ws)).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

var (
	setBoundedScript = script("hash_set_bounded.lua")
	setJobFields     = script("job_fields_set.lua")
)

// SetExperimentTag sets tag key of experiment exp of ws; ErrTooMany past
// MaxExperimentTags.
func (s *Store) SetExperimentTag(ctx context.Context, ws, exp, key, value string) error {
	if err := CheckKV("tag", map[string]string{key: value}, MaxTagValueLen); err != nil {
		return err
	}
	ok, err := setBoundedScript.Run(ctx, s.rdb, []string{experimentTagsKey(ws, exp)}, key, value, MaxExperimentTags).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("experiment %s may have at most %d tags: %w", exp, MaxExperimentTags, ErrTooMany)
	}
	return nil
}

// ExperimentTags is experiment exp of ws's tags.
func (s *Store) ExperimentTags(ctx context.Context, ws, exp string) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, experimentTagsKey(ws, exp)).Result()
}

// SetRunDeleted marks job id's MLflow run deleted, or active again;
// ErrNotFound for no such job.
func (s *Store) SetRunDeleted(ctx context.Context, id string, deleted bool) error {
	if !validID(id) {
		return ErrNotFound
	}
	stage := "active"
	if deleted {
		stage = "deleted"
	}
	ok, err := setJobFields.Run(ctx, s.rdb, []string{jobKey(id)}, lifecycleField, stage).Int()
	if err == nil && ok == 0 {
		err = ErrNotFound
	}
	return err
}

// DeletedRuns says which of ids are deleted MLflow runs, read in one
// pipeline.
func (s *Store) DeletedRuns(ctx context.Context, ids []string) (map[string]bool, error) {
	cmds := make(map[string]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			if validID(id) {
				cmds[id] = p.HGet(ctx, jobKey(id), lifecycleField)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string]bool{}
	for id, c := range cmds {
		if c.Val() == "deleted" {
			out[id] = true
		}
	}
	return out, nil
}

// SetJobName renames job id of experiment exp (MLflow's runs/update
// run_name): the record's name field, and its experiment beside it, which
// the record holds together (writeJob).
func (s *Store) SetJobName(ctx context.Context, id, exp, name string) error {
	if !validID(id) {
		return ErrNotFound
	}
	ok, err := setJobFields.Run(ctx, s.rdb, []string{jobKey(id)}, "name", name, "experiment", exp).Int()
	if err == nil && ok == 0 {
		err = ErrNotFound
	}
	return err
}

// TagsOf returns the tags of each of ids, read in one pipeline.
func (s *Store) TagsOf(ctx context.Context, ids []string) (map[string]map[string]string, error) {
	cmds := make(map[string]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			if validID(id) {
				cmds[id] = p.HGetAll(ctx, tagsKey(id))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(cmds))
	for id, c := range cmds {
		out[id] = c.Val()
	}
	return out, nil
}

// MLflow's registered models are jobgate's models; what MLflow keeps of
// one beyond them is its description. MLflow creates a model before its
// first version, so a model record may have no versions.
func modelDescriptionsKey(ws string) string { return prefix + "ws:" + ws + ":model-descriptions" }

// CreateModel records model name of ws without versions; false if it
// exists.
func (s *Store) CreateModel(ctx context.Context, ws, name string, at time.Time) (bool, error) {
	m, err := json.Marshal(modelRecord{Name: name, CreatedAt: at})
	if err != nil {
		return false, fmt.Errorf("encode model: %w", err)
	}
	return s.rdb.HSetNX(ctx, wsModelsKey(ws), name, m).Result()
}

// SetModelDescription sets model name of ws's description ("" removes it).
func (s *Store) SetModelDescription(ctx context.Context, ws, name, desc string) error {
	if desc == "" {
		return s.rdb.HDel(ctx, modelDescriptionsKey(ws), name).Err()
	}
	return s.rdb.HSet(ctx, modelDescriptionsKey(ws), name, desc).Err()
}

// ModelDescriptions is the description of each of ws's models that has one.
func (s *Store) ModelDescriptions(ctx context.Context, ws string) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, modelDescriptionsKey(ws)).Result()
}

// MLflow's registered models and their versions carry tags, which
// jobgate's registry itself never reads: a hash per model and one per
// version, at most MaxExperimentTags fields each, gone with what they tag.
func modelTagsKey(ws, name string, v int) string {
	if v == 0 {
		return modelKey(ws, name, "tags")
	}
	return modelKey(ws, name, "tags:"+strconv.Itoa(v))
}

// ModelTagRef names what a tag is on: model Name (Version 0) or one of its
// versions.
type ModelTagRef struct {
	Name    string
	Version int
}

var setModelTagScript = script("model_tag_set.lua")

// SetModelTag sets tag key of ref in ws, in one step with the check that
// ref exists (else ErrNotFound); ErrTooMany past MaxExperimentTags.
func (s *Store) SetModelTag(ctx context.Context, ws string, ref ModelTagRef, key, value string) error {
	if err := CheckKV("tag", map[string]string{key: value}, MaxTagValueLen); err != nil {
		return err
	}
	holder, field := wsModelsKey(ws), ref.Name
	if ref.Version != 0 {
		holder, field = modelKey(ws, ref.Name, "versions"), strconv.Itoa(ref.Version)
	}
	ok, err := setModelTagScript.Run(ctx, s.rdb, []string{modelTagsKey(ws, ref.Name, ref.Version), holder}, key, value, MaxExperimentTags, field).Int()
	if err != nil {
		return err
	}
	switch ok {
	case -1:
		return fmt.Errorf("model %s version %d: %w", ref.Name, ref.Version, ErrNotFound)
	case 0:
		return fmt.Errorf("a registered model or version may have at most %d tags: %w", MaxExperimentTags, ErrTooMany)
	}
	return nil
}

// DeleteModelTag removes tag key of ref in ws; ErrNotFound if it has none.
func (s *Store) DeleteModelTag(ctx context.Context, ws string, ref ModelTagRef, key string) error {
	n, err := s.rdb.HDel(ctx, modelTagsKey(ws, ref.Name, ref.Version), key).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("tag %q: %w", key, ErrNotFound)
	}
	return nil
}

// ModelTags is the tags of each of refs in ws, in one round trip.
func (s *Store) ModelTags(ctx context.Context, ws string, refs []ModelTagRef) (map[ModelTagRef]map[string]string, error) {
	cmds := make([]*redis.MapStringStringCmd, len(refs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			cmds[i] = p.HGetAll(ctx, modelTagsKey(ws, r.Name, r.Version))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[ModelTagRef]map[string]string, len(refs))
	for i, r := range refs {
		if tags := cmds[i].Val(); len(tags) > 0 {
			out[r] = tags
		}
	}
	return out, nil
}
