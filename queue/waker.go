package queue

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Notify publishes a wake-up on channel. Failure only delays the waiter until its
// next timed look, so callers may ignore the error.
func Notify(ctx context.Context, rdb redis.UniversalClient, channel string) error {
	return rdb.Publish(ctx, channel, "").Err()
}

// Waker turns wake-up messages on one channel into a generation counter that
// goroutines can wait on without missing a message: take Gen before looking for
// work, and if there was none, Wait(ctx, gen, max) returns as soon as a message
// arrived after that look.
type Waker struct {
	sub *redis.PubSub

	// mu guards the fields below.
	mu      sync.Mutex
	gen     uint64
	changed chan struct{}
	closed  bool
}

// NewWaker subscribes to channel and waits until the subscription is live, so a
// Notify after NewWaker returns is never missed. Close releases it.
func NewWaker(ctx context.Context, rdb redis.UniversalClient, channel string) (*Waker, error) {
	sub := rdb.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, err
	}
	w := &Waker{sub: sub, changed: make(chan struct{})}
	go w.loop()
	return w, nil
}

// loop pokes on every message, and on every (re)subscription too: when the
// connection drops (a Redis restart) go-redis subscribes again by itself, but
// what was published meanwhile is lost, so the waiters look again then.
func (w *Waker) loop() {
	for range w.sub.ChannelWithSubscriptions() {
		w.Poke()
	}
}

// Poke wakes the waiters as a message would; used for local events.
func (w *Waker) Poke() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.gen++
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// Gen is the current generation.
func (w *Waker) Gen() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

// Wait returns true once the generation moved past gen, false after max, when
// ctx is done, or at once when the Waker is closed.
func (w *Waker) Wait(ctx context.Context, gen uint64, max time.Duration) bool {
	w.mu.Lock()
	if w.gen != gen {
		w.mu.Unlock()
		return true
	}
	if w.closed {
		w.mu.Unlock()
		return false
	}
	ch := w.changed
	w.mu.Unlock()
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Close ends the subscription and releases every waiter; later Waits return
// at once. Closing twice is harmless.
func (w *Waker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	return w.sub.Close()
}
