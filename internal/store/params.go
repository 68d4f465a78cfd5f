package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Limits on a job's params and tags, MLflow's own where it has them.
const (
	MaxParams        = 1000
	MaxTags          = 1000
	MaxParamKeyLen   = 250
	MaxParamValueLen = 6000
	MaxTagValueLen   = 8000
)

// ErrParamChanged means a param was logged again with another value: params
// record what a run was started with, and never change (as in MLflow).
var ErrParamChanged = errors.New("param already logged with another value")

// ErrTooMany means a job would have more than MaxParams params or MaxTags tags.
var ErrTooMany = errors.New("too many")

func paramsKey(id string) string { return prefix + "job:" + id + ":params" }
func tagsKey(id string) string   { return prefix + "job:" + id + ":tags" }

// ValidParamKey reports whether k may name a param or a tag: 1-250 bytes of
// letters, digits and _ - . space / (MLflow's rule).
func ValidParamKey(k string) bool {
	if k == "" || len(k) > MaxParamKeyLen {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == ' ' || r == '/') {
			return false
		}
	}
	return true
}

// KVError is a param or tag the store refuses: a bad key or value.
type KVError struct{ msg string }

func (e *KVError) Error() string { return e.msg }

// CheckKV checks the keys and values of params or tags (kind says which).
func CheckKV(kind string, kv map[string]string, maxValue int) error {
	for k, v := range kv {
		if !ValidParamKey(k) {
			return &KVError{fmt.Sprintf("%s key %q: want 1-%d letters, digits, '_', '-', '.', ' ' or '/'", kind, k, MaxParamKeyLen)}
		}
		if len(v) > maxValue || !utf8.ValidString(v) {
			return &KVError{fmt.Sprintf("%s %q: the value must be valid UTF-8 of at most %d bytes", kind, k, maxValue)}
		}
		if i := strings.IndexFunc(v, isValueControl); i >= 0 {
			r, _ := utf8.DecodeRuneInString(v[i:])
			return &KVError{fmt.Sprintf("%s %q: the value holds the control character %U; of those only tab, newline and carriage return are allowed", kind, k, r)}
		}
	}
	return nil
}

// isValueControl reports the control characters a param or tag value may
// not hold: NUL and the rest, except tab, newline and carriage return
// (multi-line values such as MLflow's mlflow.note.content are common).
func isValueControl(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
}

// SetParams records params of job id, all or none. Logging a param again
// with the same value is fine; with another value it is ErrParamChanged.
func (s *Store) SetParams(ctx context.Context, id string, params map[string]string) error {
	if !validID(id) {
		return fmt.Errorf("params of job %q: %w", id, ErrNotFound)
	}
	if err := CheckKV("param", params, MaxParamValueLen); err != nil {
		return err
	}
	if len(params) == 0 {
		return nil
	}
	args := []any{MaxParams}
	for k, v := range params {
		args = append(args, k, v)
	}
	res, err := setParamsScript.Run(ctx, s.rdb, []string{paramsKey(id)}, args...).Text()
	switch {
	case err != nil:
		return fmt.Errorf("params of job %s: %w", id, err)
	case res == "full":
		return fmt.Errorf("job %s may have at most %d params: %w", id, MaxParams, ErrTooMany)
	case res != "":
		k := res[len("changed:"):]
		return fmt.Errorf("param %q of job %s: %w (%q)", k, id, ErrParamChanged, params[k])
	}
	return nil
}

// SetTags sets tags of job id; a tag's value may change.
func (s *Store) SetTags(ctx context.Context, id string, tags map[string]string) error {
	if !validID(id) {
		return fmt.Errorf("tags of job %q: %w", id, ErrNotFound)
	}
	if err := CheckKV("tag", tags, MaxTagValueLen); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	n, err := s.rdb.HLen(ctx, tagsKey(id)).Result()
	if err != nil {
		return err
	}
	if int(n)+len(tags) > MaxTags {
		// Counting new keys exactly would need a script; a job near the
		// limit is rare, and this errs towards refusing.
		existing, err := s.rdb.HMGet(ctx, tagsKey(id), keys(tags)...).Result()
		if err != nil {
			return err
		}
		added := 0
		for _, v := range existing {
			if v == nil {
				added++
			}
		}
		if int(n)+added > MaxTags {
			return fmt.Errorf("job %s may have at most %d tags: %w", id, MaxTags, ErrTooMany)
		}
	}
	return s.rdb.HSet(ctx, tagsKey(id), tags).Err()
}

// DeleteTag removes tag key of job id; a missing tag is not an error.
func (s *Store) DeleteTag(ctx context.Context, id, key string) error {
	if !validID(id) {
		return nil
	}
	return s.rdb.HDel(ctx, tagsKey(id), key).Err()
}

// ParamsAndTags returns job id's params and tags (empty maps for none).
func (s *Store) ParamsAndTags(ctx context.Context, id string) (params, tags map[string]string, err error) {
	if !validID(id) {
		return map[string]string{}, map[string]string{}, nil
	}
	var pc, tc *redis.MapStringStringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		pc, tc = p.HGetAll(ctx, paramsKey(id)), p.HGetAll(ctx, tagsKey(id))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return pc.Val(), tc.Val(), nil
}

// ParamsOf returns the params of each of ids, read in one pipeline (a job
// without params has none in the map).
func (s *Store) ParamsOf(ctx context.Context, ids []string) (map[string]map[string]string, error) {
	cmds := make(map[string]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			if validID(id) {
				cmds[id] = p.HGetAll(ctx, paramsKey(id))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(cmds))
	for id, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out[id] = m
		}
	}
	return out, nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
