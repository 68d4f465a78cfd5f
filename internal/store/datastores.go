package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Datastores live in one hash per workspace, name → Datastore as JSON:
//
//	{jobgate}:ws:<ws>:datastores
func wsDatastoresKey(ws string) string { return prefix + "ws:" + ws + ":datastores" }

// Datastore is a datastore as stored: the API's record and the operator's
// root it was admitted under.
type Datastore struct {
	api.Datastore
	// Root is the operator's datastore root (gateway --datastore-root) the
	// path was checked against when a workspace admin registered it; empty
	// for one the system admin registered, which may be anywhere. Workers
	// check again, on their own filesystem, that the path has not become a
	// link out of Root since.
	Root string `json:"root,omitempty"`
}

// CreateDatastore stores d in workspace ws; ErrConflict if ws has a
// datastore of that name.
func (s *Store) CreateDatastore(ctx context.Context, ws string, d Datastore) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode datastore: %w", err)
	}
	ok, err := s.rdb.HSetNX(ctx, wsDatastoresKey(ws), d.Name, b).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("datastore %q exists: %w", d.Name, ErrConflict)
	}
	return nil
}

// Datastore returns datastore name of workspace ws, or ErrNotFound.
func (s *Store) Datastore(ctx context.Context, ws, name string) (*Datastore, error) {
	b, err := s.rdb.HGet(ctx, wsDatastoresKey(ws), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var d Datastore
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("datastore %s/%s: %w", ws, name, err)
	}
	return &d, nil
}

// Datastores lists ws's datastores, in no particular order.
func (s *Store) Datastores(ctx context.Context, ws string) ([]Datastore, error) {
	vals, err := s.rdb.HVals(ctx, wsDatastoresKey(ws)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Datastore, 0, len(vals))
	for _, v := range vals {
		var d Datastore
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			return nil, fmt.Errorf("datastore of %s: %w", ws, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// DeleteDatastore removes datastore name of ws; ErrNotFound if there is
// none. Jobs that name it and have not started fail with the reason
// input_unavailable.
func (s *Store) DeleteDatastore(ctx context.Context, ws, name string) error {
	n, err := s.rdb.HDel(ctx, wsDatastoresKey(ws), name).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
