// Package loghub wakes the log followers of a gateway
// (GET /v1/jobs/{id}/logs?follow=true) when the live log stream of their
// job grows: one Redis subscription per process carries the wake-ups of all
// of them.
package loghub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/store"
)

// Hub wakes log followers when the live log stream of their job grows.
// One Redis subscription per gateway, to store.LogChannel of every followed
// job, carries the wake-ups of all followers, so a follower holds no Redis
// connection while it waits and any number of them leave the request pool to
// requests. A follower reads the stream itself (a short, non-blocking read)
// when woken.
//
// The subscription is opened by the first follower and closed once nobody
// has followed for hubIdle. Wake-ups are hints: one lost with a broken
// connection is made up for by waking every follower, and followers look at
// the stream now and then anyway (followPoll).
//
// No Redis call is made under mu: followers joining and leaving only change
// subs, and one goroutine at a time (sync) brings the subscription in line
// with it, a batch of channels per SUBSCRIBE or UNSUBSCRIBE. So against a
// slow or unreachable Redis a follower leaves at once, many leaving cost a
// call or two, not one each, and wake-ups for the others are not held up.
type Hub struct {
	rdb    redis.UniversalClient
	logger *slog.Logger

	// mu guards the fields below.
	mu sync.Mutex
	// ps is the subscription; nil while nobody follows.
	ps *redis.PubSub
	// subs holds each channel's followers' wake-up channels.
	subs map[string]map[chan struct{}]struct{}
	// on holds the channels ps was asked to subscribe to (and not since to
	// unsubscribe from).
	on map[string]bool
	// ready is closed when Redis has confirmed the subscription to a channel;
	// it is dropped with the channel from on.
	ready map[string]chan struct{}
	// syncing is set while a sync goroutine runs.
	syncing bool
	// stopped is set once Run ended: no goroutine starts after it.
	stopped bool

	// wg counts the goroutines that loop and sync run in; Run waits for them.
	wg sync.WaitGroup
}

const (
	// hubIdle is how long the subscription stays open without followers,
	// and how often an idle one is pinged.
	hubIdle = 30 * time.Second
	// hubReadyWait bounds how long a new follower waits for its
	// subscription to be confirmed; past it, it relies on followPoll.
	hubReadyWait = 2 * time.Second
	// hubOpTimeout bounds one SUBSCRIBE, UNSUBSCRIBE or PING.
	hubOpTimeout = 5 * time.Second
)

// New returns a Hub over rdb; Run owns its goroutines.
func New(rdb redis.UniversalClient, logger *slog.Logger) *Hub {
	return &Hub{rdb: rdb, logger: logger, subs: map[string]map[chan struct{}]struct{}{},
		on: map[string]bool{}, ready: map[string]chan struct{}{}}
}

// Follow registers a follower of job id's log. The returned channel receives
// a value (coalesced) whenever the stream may have grown; stop unregisters.
// It returns once the subscription is in place (or hubReadyWait passed), so
// a line appended after the follower's next read wakes it.
func (h *Hub) Follow(ctx context.Context, id string) (wake <-chan struct{}, stop func()) {
	ch := store.LogChannel(id)
	w := make(chan struct{}, 1)
	h.mu.Lock()
	if h.stopped {
		// Shutting down: the follower relies on its own polling.
		h.mu.Unlock()
		return make(chan struct{}), func() {}
	}
	if h.ps == nil {
		// Subscribing to nothing yet: go-redis does not call Redis here.
		h.ps = h.rdb.Subscribe(context.WithoutCancel(ctx))
		h.wg.Add(1)
		go h.loop(h.ps)
	}
	if h.subs[ch] == nil {
		h.subs[ch] = map[chan struct{}]struct{}{}
	}
	h.subs[ch][w] = struct{}{}
	ready := h.ready[ch]
	if ready == nil {
		ready = make(chan struct{})
		h.ready[ch] = ready
	}
	h.startSync()
	h.mu.Unlock()

	t := time.NewTimer(hubReadyWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	case <-ctx.Done():
	}
	return w, func() { h.unfollow(ch, w) }
}

func (h *Hub) unfollow(ch string, w chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[ch], w)
	if len(h.subs[ch]) > 0 {
		return
	}
	delete(h.subs, ch)
	if !h.on[ch] {
		delete(h.ready, ch) // never subscribed: nothing to unsubscribe from
		return
	}
	h.startSync()
}

// startSync starts a sync goroutine unless one runs. The caller holds mu.
func (h *Hub) startSync() {
	if !h.syncing && !h.stopped {
		h.syncing = true
		h.wg.Add(1)
		go h.sync()
	}
}

// sync subscribes ps to the channels that have followers and unsubscribes it
// from those that have none left, until on matches subs. What changes while
// a call is under way goes in the next one. A call that fails is not tried
// again: go-redis keeps the channels it was asked for and subscribes to them
// when it reconnects.
func (h *Hub) sync() {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		ps := h.ps
		var add, drop []string
		if ps != nil {
			for ch := range h.subs {
				if !h.on[ch] {
					h.on[ch] = true
					add = append(add, ch)
				}
			}
			for ch := range h.on {
				if h.subs[ch] == nil {
					delete(h.on, ch)
					delete(h.ready, ch)
					drop = append(drop, ch)
				}
			}
		}
		if len(add) == 0 && len(drop) == 0 {
			h.syncing = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), hubOpTimeout)
		if len(drop) > 0 {
			_ = ps.Unsubscribe(ctx, drop...)
		}
		if len(add) > 0 {
			if err := ps.Subscribe(ctx, add...); err != nil {
				h.logger.WarnContext(ctx, "subscribe to log wake-ups", slog.Int("channels", len(add)), slog.Any("error", err))
			}
		}
		cancel()
	}
}

// loop receives on ps until it is closed or idle.
func (h *Hub) loop(ps *redis.PubSub) {
	defer h.wg.Done()
	ctx := context.Background()
	for {
		msg, err := ps.ReceiveTimeout(ctx, hubIdle)
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		h.mu.Lock()
		if h.ps != ps {
			h.mu.Unlock()
			return
		}
		switch {
		case err == nil:
			h.deliver(msg)
			h.mu.Unlock()
		case timeout && len(h.subs) == 0:
			h.ps = nil
			h.on, h.ready = map[string]bool{}, map[string]chan struct{}{}
			h.mu.Unlock()
			ps.Close()
			return
		case timeout:
			h.mu.Unlock()
			// Quiet: make sure the connection is still there (the answer
			// comes in as a Pong).
			pctx, cancel := context.WithTimeout(ctx, hubOpTimeout)
			_ = ps.Ping(pctx)
			cancel()
		case errors.Is(err, redis.ErrClosed):
			h.ps = nil
			h.on, h.ready = map[string]bool{}, map[string]chan struct{}{}
			h.mu.Unlock()
			return
		default:
			// The connection broke; go-redis reconnects and subscribes again,
			// but what was published meanwhile is lost: everyone looks again.
			for _, ws := range h.subs {
				for w := range ws {
					poke(w)
				}
			}
			h.mu.Unlock()
			h.logger.WarnContext(ctx, "log wake-ups", slog.Any("error", err))
			time.Sleep(time.Second) // not in a loop against a Redis that is down
		}
	}
}

// deliver hands one received message on. The caller holds mu.
func (h *Hub) deliver(msg any) {
	switch m := msg.(type) {
	case *redis.Message:
		for w := range h.subs[m.Channel] {
			poke(w)
		}
	case *redis.Subscription:
		if r := h.ready[m.Channel]; m.Kind == "subscribe" && r != nil {
			select {
			case <-r:
			default:
				close(r)
			}
		}
	}
}

// poke sends a wake-up unless one is waiting already.
func poke(w chan struct{}) {
	select {
	case w <- struct{}{}:
	default:
	}
}

// Followers is how many log followers this process has.
func (h *Hub) Followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ws := range h.subs {
		n += len(ws)
	}
	return n
}

// Run waits for ctx to end, then closes the subscription and waits for the
// hub's goroutines to end; followers left (there are none once HTTP is shut
// down) fall back on their own polling. It returns nil.
func (h *Hub) Run(ctx context.Context) error {
	<-ctx.Done()
	h.mu.Lock()
	h.stopped = true
	ps := h.ps
	h.ps = nil
	h.on, h.ready = map[string]bool{}, map[string]chan struct{}{}
	h.mu.Unlock()
	if ps != nil {
		ps.Close()
	}
	h.wg.Wait()
	return nil
}
