package gateway

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

// logHub wakes log followers when the live log stream of their job grows.
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
type logHub struct {
	rdb    redis.UniversalClient
	logger *slog.Logger

	// mu guards the fields below.
	mu sync.Mutex
	// ps is the subscription; nil while nobody follows.
	ps *redis.PubSub
	// subs holds each channel's followers' wake-up channels.
	subs map[string]map[chan struct{}]struct{}
	// ready is closed when Redis has confirmed the subscription to a channel.
	ready map[string]chan struct{}
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

func newLogHub(rdb redis.UniversalClient, logger *slog.Logger) *logHub {
	return &logHub{rdb: rdb, logger: logger, subs: map[string]map[chan struct{}]struct{}{}, ready: map[string]chan struct{}{}}
}

// follow registers a follower of job id's log. The returned channel receives
// a value (coalesced) whenever the stream may have grown; stop unregisters.
// It returns once the subscription is in place (or hubReadyWait passed), so
// a line appended after the follower's next read wakes it.
func (h *logHub) follow(ctx context.Context, id string) (wake <-chan struct{}, stop func()) {
	ch := store.LogChannel(id)
	w := make(chan struct{}, 1)
	h.mu.Lock()
	if h.ps == nil {
		h.ps = h.rdb.Subscribe(context.WithoutCancel(ctx))
		go h.loop(h.ps)
	}
	ready := h.ready[ch]
	if h.subs[ch] == nil {
		h.subs[ch] = map[chan struct{}]struct{}{}
		ready = make(chan struct{})
		h.ready[ch] = ready
		sctx, cancel := context.WithTimeout(ctx, hubOpTimeout)
		if err := h.ps.Subscribe(sctx, ch); err != nil {
			// go-redis subscribes again when it reconnects.
			h.logger.WarnContext(ctx, "subscribe to log wake-ups", slog.String("job_id", id), slog.Any("error", err))
		}
		cancel()
	}
	h.subs[ch][w] = struct{}{}
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

func (h *logHub) unfollow(ch string, w chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[ch], w)
	if len(h.subs[ch]) > 0 {
		return
	}
	delete(h.subs, ch)
	delete(h.ready, ch)
	if h.ps != nil {
		ctx, cancel := context.WithTimeout(context.Background(), hubOpTimeout)
		defer cancel()
		_ = h.ps.Unsubscribe(ctx, ch)
	}
}

// loop receives on ps until it is closed or idle.
func (h *logHub) loop(ps *redis.PubSub) {
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
		case timeout && len(h.subs) == 0:
			h.ps = nil
			h.mu.Unlock()
			ps.Close()
			return
		case timeout:
			// Quiet: make sure the connection is still there (the answer
			// comes in as a Pong).
			pctx, cancel := context.WithTimeout(ctx, hubOpTimeout)
			_ = ps.Ping(pctx)
			cancel()
		case errors.Is(err, redis.ErrClosed):
			h.ps = nil
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
			continue
		}
		h.mu.Unlock()
	}
}

// deliver hands one received message on. The caller holds mu.
func (h *logHub) deliver(msg any) {
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

// followers is how many log followers this gateway has; for tests.
func (h *logHub) followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ws := range h.subs {
		n += len(ws)
	}
	return n
}
