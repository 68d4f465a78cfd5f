package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/redisconn"
	"github.com/jobgate/jobgate/queue"
)

// dequeueWaitHook makes asynq's dequeue wait for work instead of polling.
//
// asynq's processor runs a Lua script against the queue's pending list and,
// when it finds nothing, sleeps TaskCheckInterval (1 s by default, about
// 0.8 s of latency at idle, measured). Shortening the interval would make
// every idle worker hammer Redis. Instead the worker sets the interval to
// 1 ms and this hook, on the Redis client asynq uses, holds an empty dequeue
// until the scheduler's wake-up for this worker arrives (or max passes): the
// idle worker costs one dequeue per max, and a new task starts in about a
// Redis round trip.
//
// The generation is read before the script runs, so a wake-up that lands
// between the empty answer and the wait is not missed.
type dequeueWaitHook struct {
	pendingKey string
	waker      *queue.Waker
	max        time.Duration
}

var _ redis.Hook = dequeueWaitHook{}

func (h dequeueWaitHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h dequeueWaitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h dequeueWaitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.isDequeue(cmd) {
			return next(ctx, cmd)
		}
		gen := h.waker.Gen()
		err := next(ctx, cmd)
		if errors.Is(err, redis.Nil) {
			h.waker.Wait(ctx, gen, h.max)
		}
		return err
	}
}

// isDequeue recognises asynq's dequeue script on our queue: EVAL/EVALSHA whose
// first key is the queue's pending list.
func (h dequeueWaitHook) isDequeue(cmd redis.Cmder) bool {
	name := cmd.Name()
	if name != "evalsha" && name != "eval" {
		return false
	}
	args := cmd.Args()
	if len(args) < 4 {
		return false
	}
	k, _ := args[3].(string)
	return k == h.pendingKey
}

// secondClient opens another client to the same Redis as rdb (one server,
// a Sentinel set or a Cluster), so a hook on it touches nothing but
// asynq's server.
func secondClient(rdb redis.UniversalClient) (redis.UniversalClient, error) {
	c, err := redisconn.Another(rdb)
	if err != nil {
		return nil, fmt.Errorf("worker: a Redis client for the task server: %w", err)
	}
	return c, nil
}

// asynqLogger adapts slog to asynq's Logger interface.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug("asynq", slog.Any("msg", args)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info("asynq", slog.Any("msg", args)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn("asynq", slog.Any("msg", args)) }
func (a asynqLogger) Error(args ...any) { a.l.Error("asynq", slog.Any("msg", args)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error("asynq fatal", slog.Any("msg", args)) }
