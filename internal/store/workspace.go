package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

const (
	workspacesKey = prefix + "workspaces"
	tokenLastUsed = prefix + "tokens:last_used"
)

func tokenKey(hash string) string   { return prefix + "token:" + hash }
func wsTokensKey(ws string) string  { return prefix + "ws:" + ws + ":tokens" }
func wsSecretsKey(ws string) string { return prefix + "ws:" + ws + ":secrets" }
func wsAuditKey(ws string) string   { return prefix + "ws:" + ws + ":audit" }
func wsRunningKey(ws string) string { return prefix + "ws:" + ws + ":running" }

// CreateWorkspace stores w; ErrConflict if the name is taken.
func (s *Store) CreateWorkspace(ctx context.Context, w api.Workspace) error {
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	ok, err := s.rdb.HSetNX(ctx, workspacesKey, w.Name, b).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("workspace %q exists: %w", w.Name, ErrConflict)
	}
	return nil
}

// EnsureWorkspace creates w unless a workspace of that name exists.
func (s *Store) EnsureWorkspace(ctx context.Context, w api.Workspace) error {
	if err := s.CreateWorkspace(ctx, w); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// Workspace returns workspace name, or ErrNotFound.
func (s *Store) Workspace(ctx context.Context, name string) (*api.Workspace, error) {
	// Concurrent reads share a round trip (one HMGET; see batcher): every
	// submit reads its workspace's rules.
	op := &wsRead{name: name, done: make(chan struct{})}
	if err := s.wsReads.do(ctx, op, op.done, s.readWorkspaces); err != nil {
		return nil, err
	}
	b, err := op.raw, op.err
	if err != nil {
		return nil, err
	}
	var w api.Workspace
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("workspace %s: %w", name, err)
	}
	return &w, nil
}

// wsRead is one Workspace read: its answer is raw, or err (ErrNotFound).
type wsRead struct {
	name string
	raw  []byte
	err  error
	done chan struct{}
}

// readWorkspaces answers batch with one HMGET.
func (s *Store) readWorkspaces(ctx context.Context, batch []*wsRead) {
	names := make([]string, len(batch))
	for i, op := range batch {
		names[i] = op.name
	}
	vals, err := s.rdb.HMGet(ctx, workspacesKey, names...).Result()
	for i, op := range batch {
		switch {
		case err != nil:
			op.err = err
		case i >= len(vals) || vals[i] == nil:
			op.err = ErrNotFound
		default:
			v, _ := vals[i].(string)
			op.raw = []byte(v)
		}
		close(op.done)
	}
}

// SetWorkspaceHostProcess sets workspace name's allow_host_process and
// returns the record as it is now; ErrNotFound if there is none.
func (s *Store) SetWorkspaceHostProcess(ctx context.Context, name string, allow bool) (*api.Workspace, error) {
	var out *api.Workspace
	for range 10 {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.HGet(ctx, workspacesKey, name).Bytes()
			if errors.Is(err, redis.Nil) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			var w api.Workspace
			if err := json.Unmarshal(b, &w); err != nil {
				return fmt.Errorf("workspace %s: %w", name, err)
			}
			w.AllowHostProcess = allow
			nb, err := json.Marshal(w)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, workspacesKey, name, nb)
				return nil
			})
			out = &w
			return err
		}, workspacesKey)
		if !errors.Is(err, redis.TxFailedErr) {
			return out, err
		}
	}
	return nil, fmt.Errorf("workspace %s: too many concurrent changes: %w", name, ErrConflict)
}

// Workspaces lists every workspace.
func (s *Store) Workspaces(ctx context.Context) ([]api.Workspace, error) {
	m, err := s.rdb.HGetAll(ctx, workspacesKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([]api.Workspace, 0, len(m))
	for _, v := range m {
		var w api.Workspace
		if json.Unmarshal([]byte(v), &w) == nil {
			out = append(out, w)
		}
	}
	return out, nil
}

// HashToken is how tokens are stored and looked up: only the SHA-256 of a
// token is kept, so a copy of Redis holds no usable token.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateToken stores t under the hash of its secret.
func (s *Store) CreateToken(ctx context.Context, t api.Token, secret string) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	hash := HashToken(secret)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, tokenKey(hash), b, 0)
		p.HSet(ctx, wsTokensKey(t.Workspace), t.ID, hash)
		return nil
	})
	return err
}

// TokenBySecret returns the token whose secret this is, or ErrNotFound.
func (s *Store) TokenBySecret(ctx context.Context, secret string) (*api.Token, error) {
	return s.TokenByHash(ctx, HashToken(secret))
}

// TokenByHash returns the token whose secret hashes (HashToken) to hash, or
// ErrNotFound: the web portal's sessions keep only the hash.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*api.Token, error) {
	b, err := s.rdb.Get(ctx, tokenKey(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var t api.Token
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// TouchToken records that token id was used at now.
func (s *Store) TouchToken(ctx context.Context, id string, now time.Time) error {
	return s.rdb.HSet(ctx, tokenLastUsed, id, now.UnixMilli()).Err()
}

// Tokens lists ws's tokens, without secrets.
func (s *Store) Tokens(ctx context.Context, ws string) ([]api.Token, error) {
	ids, err := s.rdb.HGetAll(ctx, wsTokensKey(ws)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]api.Token, 0, len(ids))
	for id, hash := range ids {
		b, err := s.rdb.Get(ctx, tokenKey(hash)).Bytes()
		if err != nil {
			continue
		}
		var t api.Token
		if json.Unmarshal(b, &t) != nil {
			continue
		}
		if ms, err := s.rdb.HGet(ctx, tokenLastUsed, id).Int64(); err == nil {
			u := time.UnixMilli(ms).UTC()
			t.LastUsedAt = &u
		}
		out = append(out, t)
	}
	return out, nil
}

// DeleteToken revokes token id of ws at once; ErrNotFound if there is none.
func (s *Store) DeleteToken(ctx context.Context, ws, id string) error {
	hash, err := s.rdb.HGet(ctx, wsTokensKey(ws), id).Result()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, tokenKey(hash))
		p.HDel(ctx, wsTokensKey(ws), id)
		p.HDel(ctx, tokenLastUsed, id)
		return nil
	})
	return err
}

// PutSecret stores an encrypted secret value under name.
func (s *Store) PutSecret(ctx context.Context, ws, name string, sealed []byte) error {
	return s.rdb.HSet(ctx, wsSecretsKey(ws), name, sealed).Err()
}

// Secret returns the encrypted value of secret name, or ErrNotFound.
func (s *Store) Secret(ctx context.Context, ws, name string) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, wsSecretsKey(ws), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return b, err
}

// SecretNames lists ws's secret names.
func (s *Store) SecretNames(ctx context.Context, ws string) ([]string, error) {
	return s.rdb.HKeys(ctx, wsSecretsKey(ws)).Result()
}

// DeleteSecret removes secret name; ErrNotFound if there is none.
func (s *Store) DeleteSecret(ctx context.Context, ws, name string) error {
	n, err := s.rdb.HDel(ctx, wsSecretsKey(ws), name).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

const auditCap = 100_000

// Audit appends e to its workspace's audit log.
func (s *Store) Audit(ctx context.Context, e api.AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.rdb.XAdd(ctx, auditArgs(e.Workspace, b)).Err()
}

// auditArgs appends encoded entry b to ws's audit log.
func auditArgs(ws string, b []byte) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: wsAuditKey(ws), MaxLen: auditCap, Approx: true, Values: []any{"e", b}}
}

// AuditLog returns up to limit entries of ws, newest first, before the
// stream ID before ("" = from the newest), and the cursor of the next page.
func (s *Store) AuditLog(ctx context.Context, ws string, limit int64, before string) ([]api.AuditEntry, string, error) {
	end := "+"
	if before != "" {
		end = "(" + before
	}
	msgs, err := s.rdb.XRevRangeN(ctx, wsAuditKey(ws), end, "-", limit+1).Result()
	if err != nil {
		return nil, "", err
	}
	next := ""
	if int64(len(msgs)) > limit {
		msgs = msgs[:limit]
		next = msgs[len(msgs)-1].ID
	}
	out := make([]api.AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		var e api.AuditEntry
		if v, ok := m.Values["e"].(string); ok && json.Unmarshal([]byte(v), &e) == nil {
			out = append(out, e)
		}
	}
	return out, next, nil
}

// RunningUse is how many of ws's jobs hold a worker slot (placed or
// running), and how many GPUs they hold.
func (s *Store) RunningUse(ctx context.Context, ws string) (jobs, gpus int, err error) {
	ids, err := s.rdb.SMembers(ctx, wsRunningKey(ws)).Result()
	if err != nil {
		return 0, 0, err
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, jobKey(id), "gpus")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, err
	}
	for _, c := range cmds {
		if v := c.Val(); v != "" {
			gpus += strings.Count(v, ",") + 1
		}
	}
	return len(ids), gpus, nil
}
