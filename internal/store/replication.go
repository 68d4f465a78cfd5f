package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated marks a write that the primary made but that fewer
// replicas than Config.ReplicaAcks acknowledged in time. It wraps
// ErrUnavailable (the gateway answers 503): the write may or may not
// survive a failover, so the caller may not be told it succeeded.
var ErrNotReplicated = fmt.Errorf("%w: not acknowledged by enough replicas", ErrUnavailable)

// Acknowledged writes are followed by WAIT, not guarded by the primary's
// min-replicas-to-write. WAIT, sent on the write's own connection after its
// EXEC, blocks until that many replicas have acknowledged the replication
// offset of this very write (or the timeout passes): it proves that this
// write is on a replica, so a failover to that replica keeps it (Sentinel
// promotes the replica with the largest offset). min-replicas-to-write only
// makes the primary refuse writes while fewer replicas than N have pinged
// within min-replicas-max-lag seconds: a write it accepts may still be on
// no replica when the primary dies a moment later, and that refusal applies
// to every client of the server, set by whoever runs Redis. WAIT costs one
// round trip more per acknowledged write; the submit group commit shares it
// among the submits of a batch.

// What waits, and what not. New jobs (SubmitJob, CreateJob, the guarded
// creates), Cancel of a queued job or a tracked run, and the worker's
// Finish: a caller told "accepted", "canceled" or "recorded" must not see
// that undone by a failover (a canceled job that comes back would run; an
// end that is lost leaves the job running on no one). A call that finds
// its work already done (an Idempotency-Key's job, a job already ended, a
// Finish retried after an ErrNotReplicated that finds the end recorded)
// answers from what the primary holds, which may itself not be on a
// replica yet: it confirms first (confirmReplicated). The scheduler's own
// transitions (placement, lost-worker requeues) do not wait: the leader
// finds and does them again from the state the new primary holds. A cancel
// of a running job publishes the request to the worker, which acts on the
// message itself.

// txReplicated runs fn's commands in one MULTI and, when cfg.ReplicaAcks
// is set, waits on the same connection until enough replicas have them.
// The commands' own results come back as TxPipelined's do; a WAIT that
// fails or falls short is an ErrNotReplicated, every command's: it also
// replaces a command's error (redis.Nil, a command's own error), since
// EXEC ran the other commands.
func (s *Store) txReplicated(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	if s.cfg.ReplicaAcks <= 0 {
		return s.rdb.TxPipelined(ctx, fn)
	}
	c, ok := s.rdb.(*redis.Client)
	if !ok {
		return nil, fmt.Errorf("store: replica acknowledgements need a single server or a Sentinel set (WAIT on the write's connection), not a %T", s.rdb)
	}
	conn := c.Conn()
	defer conn.Close()
	cmds, err := conn.TxPipelined(ctx, fn)
	if !mayHaveWritten(err) {
		return cmds, err
	}
	if werr := s.waitReplicas(ctx, conn); werr != nil {
		return cmds, werr
	}
	return cmds, err
}

// mayHaveWritten reports whether a call that returned err may still have
// made writes that WAIT must cover: it succeeded, or Redis answered it
// with a reply of its own (redis.Nil, as a ZRANK miss returns, or one
// command's or a script's error), which comes after EXEC ran or after a
// script wrote what it wrote before the error. A connection error means
// WAIT cannot be sent on that connection anyway.
func mayHaveWritten(err error) bool {
	var re redis.Error
	return err == nil || errors.Is(err, redis.Nil) || (errors.As(err, &re) && !errors.Is(err, ErrUnavailable))
}

// waitReplicas sends WAIT on c, the connection that made the writes.
func (s *Store) waitReplicas(ctx context.Context, c interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}) error {
	if s.cfg.ReplicaAcks <= 0 {
		return nil
	}
	n, err := c.Do(ctx, "WAIT", s.cfg.ReplicaAcks, s.cfg.ReplicaTimeout.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT %d: %w", ErrNotReplicated, s.cfg.ReplicaAcks, unavailableCause(err))
	}
	if n < int64(s.cfg.ReplicaAcks) {
		return fmt.Errorf("%w: %d of %d replica(s) acknowledged the write within %s", ErrNotReplicated, n, s.cfg.ReplicaAcks, s.cfg.ReplicaTimeout)
	}
	return nil
}

// unavailableCause is the error that markUnavailable wrapped with
// ErrUnavailable (ErrNotReplicated says that already), or err itself. Its
// two %w leave errors.Unwrap nothing, so the cause is taken from the list.
func unavailableCause(err error) error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if es := u.Unwrap(); len(es) == 2 && es[0] == ErrUnavailable {
			return es[1]
		}
	}
	return err
}

// replicatedOn runs fn on one connection of s.rdb and, when
// cfg.ReplicaAcks is set and fn may have written (mayHaveWritten), WAITs on that connection for
// its writes to reach enough replicas (ErrNotReplicated otherwise).
func (s *Store) replicatedOn(ctx context.Context, fn func(rdb redis.Cmdable) error) error {
	if s.cfg.ReplicaAcks <= 0 {
		return fn(s.rdb)
	}
	c, ok := s.rdb.(*redis.Client)
	if !ok {
		return fmt.Errorf("store: replica acknowledgements need a single server or a Sentinel set (WAIT on the write's connection), not a %T", s.rdb)
	}
	conn := c.Conn()
	defer conn.Close()
	err := fn(conn)
	if !mayHaveWritten(err) {
		return err
	}
	if werr := s.waitReplicas(ctx, conn); werr != nil {
		return werr
	}
	return err
}

// replicaProbeChannel is published to by confirmReplicated: a PUBLISH is
// replicated, so it moves the connection's replication offset past every
// write the primary had made before it, and touches no key.
const replicaProbeChannel = prefix + "replica-probe"

// confirmReplicated makes sure that what the primary holds now has reached
// cfg.ReplicaAcks replicas: a PUBLISH, then WAIT, on one connection.
func (s *Store) confirmReplicated(ctx context.Context) error {
	if s.cfg.ReplicaAcks <= 0 {
		return nil
	}
	return s.replicatedOn(ctx, func(rdb redis.Cmdable) error {
		return rdb.Publish(ctx, replicaProbeChannel, "").Err()
	})
}
