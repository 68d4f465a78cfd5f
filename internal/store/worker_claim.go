package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Heartbeats are stamped with Redis's clock (TIME, inside the scripts), and
// the scheduler reads that clock too (Time): no worker's or gateway's clock
// decides whether a worker is alive.

// ErrWorkerIDInUse means that ClaimWorker found the worker ID held by
// another worker process that is alive as far as the registry can tell.
var ErrWorkerIDInUse = errors.New("worker ID in use")

// Holder is the process that holds a worker ID in the registry.
type Holder struct {
	Instance  string
	Hostname  string
	Proc      string
	Status    string
	StartedAt time.Time
	// SilentFor is how long ago, by Redis's clock, it last heartbeated.
	SilentFor time.Duration
}

// ClaimWorker registers w as held by the process w.Instance, heartbeating
// now, unless another instance holds the ID and is alive: not stopped and
// heartbeating within liveFor. Then it returns that holder and
// ErrWorkerIDInUse, and changes nothing. replace names an instance that may
// be replaced even so (the caller knows it is dead).
func (s *Store) ClaimWorker(ctx context.Context, w Worker, liveFor time.Duration, replace string) (*Holder, error) {
	fields, err := registration(w)
	if err != nil {
		return nil, err
	}
	args := []any{w.ID, w.Instance, liveFor.Milliseconds(), replace, WorkerStopped}
	for k, v := range fields {
		args = append(args, k, v)
	}
	res, err := claimScript.Run(ctx, s.rdb, []string{workerKey(w.ID), workersKey}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim worker ID %s: %w", w.ID, err)
	}
	if len(res) == 0 || res[0] != "busy" || len(res) < 7 {
		return nil, nil
	}
	h := &Holder{Instance: res[1], Hostname: res[2], Proc: res[3], Status: res[4]}
	h.StartedAt, _ = time.Parse(time.RFC3339Nano, res[5])
	var ms int64
	fmt.Sscan(res[6], &ms)
	h.SilentFor = time.Duration(ms) * time.Millisecond
	return h, ErrWorkerIDInUse
}

// Heartbeat marks workerID alive, at Redis's time. It returns ErrConflict,
// and marks nothing, when the registration is held by another instance
// than instance (one that claimed the ID after this one fell silent).
func (s *Store) Heartbeat(ctx context.Context, workerID, instance string) error {
	cur, err := heartbeatScript.Run(ctx, s.rdb, []string{workerKey(workerID), workersKey}, workerID, instance).Text()
	if err != nil {
		return err
	}
	if cur != "" {
		return fmt.Errorf("worker ID %s is held by instance %s: %w", workerID, cur, ErrConflict)
	}
	return nil
}

// Time is Redis's clock, the one heartbeats are stamped with.
func (s *Store) Time(ctx context.Context) (time.Time, error) {
	return s.rdb.Time(ctx).Result()
}
