package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestUnavailable tells errors of a Redis that is not there from errors of
// the call, with real clients: one to a port nothing listens on, one to a
// live server.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	gone := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialTimeout: time.Second})
	defer gone.Close()
	url := testenv.Redis(t)
	live := testenv.RedisClient(t, url)
	closed := testenv.RedisClient(t, url)
	closed.Close()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nothing listens", err: gone.Ping(ctx).Err(), want: true},
		{name: "client closed", err: closed.Ping(ctx).Err(), want: true},
		{name: "wrong type", err: live.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{"{jobgate}:test:str"}).Err(), want: false},
		{name: "conflict", err: fmt.Errorf("finish: %w", store.ErrConflict), want: false},
		{name: "nil", err: nil, want: false},
	}
	live.Set(ctx, "{jobgate}:test:str", "x", 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestStoreMarksUnreachableRedis: every kind of store call (a command, a
// pipeline, a script) against a Redis that is not there fails with
// ErrUnavailable; a call whose context the caller ended, and an error of a
// call to a live server, do not.
func TestStoreMarksUnreachableRedis(t *testing.T) {
	ctx := context.Background()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	gone := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialTimeout: time.Second})
	defer gone.Close()
	down := store.New(gone, store.Config{})
	live := testenv.RedisClient(t, testenv.Redis(t))
	up := store.New(live, store.Config{})
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	live.Set(ctx, "{jobgate}:job:str", "x", 0)
	_, getErr := down.GetJobByID(ctx, "j1")
	_, workersErr := down.Workers(ctx)
	_, canceledErr := down.GetJobByID(canceled, "j1")
	_, typeErr := up.GetJobByID(ctx, "str")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "command", err: getErr, want: true},
		{name: "pipeline", err: workersErr, want: true},
		{name: "script", err: down.Finish(ctx, "default", "j1", 1, store.Outcome{Status: "succeeded"}, time.Now()), want: true},
		{name: "raw command on the hooked client", err: gone.Get(ctx, "k").Err(), want: true},
		{name: "caller canceled", err: canceledErr, want: false},
		{name: "live server, wrong type", err: typeErr, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, store.ErrUnavailable); got != tt.want {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
