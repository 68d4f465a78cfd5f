package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable marks an error of a store call that could not reach Redis
// (see Unavailable): the same call may succeed later. The gateway answers it
// with 503. Only errors of the store's Redis client carry it: New hooks
// the client to mark them.
var ErrUnavailable = errors.New("redis unavailable")

// unavailableHook marks the errors of Redis commands that mean Redis could
// not be reached with ErrUnavailable, on the command and as returned. An
// error because the caller's context ended is the caller's, not Redis's.
type unavailableHook struct{}

func (unavailableHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (unavailableHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if m := markUnavailable(ctx, err); m != err {
			cmd.SetErr(m)
			return m
		}
		return err
	}
}

func (unavailableHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if e := cmd.Err(); e != nil {
				if m := markUnavailable(ctx, e); m != e {
					cmd.SetErr(m)
				}
			}
		}
		return markUnavailable(ctx, err)
	}
}

func markUnavailable(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrUnavailable) || !Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Unavailable reports whether err, an error of a Redis call, means that
// Redis could not be reached or
// cannot serve right now — refused, reset or closed connections, timeouts,
// a server still loading its data set, a failover in progress — so the same
// call may succeed later. Errors of the call itself (ErrConflict, a script
// error) are not. It judges the error alone, so it is only meaningful for
// errors known to come from Redis; elsewhere ask errors.Is(err, ErrUnavailable).
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case redis.IsLoadingError(err), redis.IsTryAgainError(err), redis.IsClusterDownError(err),
		redis.IsMasterDownError(err), redis.IsReadOnlyError(err):
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}
