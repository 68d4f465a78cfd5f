// Package leader elects one leader among the gateways sharing a Redis,
// shaped like River's elector: one Elector per process acquires, renews and
// gives up the lease in Redis (store.AcquireLeadership), and the loops that
// only the leader runs (placement, the cron loop, next a deployments
// controller) subscribe to it with Listen and never touch the lease.
package leader

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

// Config configures an Elector. Zero values get the defaults on each field.
type Config struct {
	// ID names this process in the election; default host-pid. Two
	// electors with the same ID both lead (the lease is the ID's).
	ID string
	// TTL of the lease; default 10s. A leader that dies is replaced within
	// TTL and one Interval.
	TTL time.Duration
	// Interval between bids for the lease, and between renewals while
	// leading; default 1s. It must be well below TTL.
	Interval time.Duration
}

// leaseStore is the lease in Redis.
type leaseStore interface {
	AcquireLeadership(ctx context.Context, holder string, ttl time.Duration) (bool, error)
	ReleaseLeadership(ctx context.Context, holder string) error
}

var _ leaseStore = (*store.Store)(nil)

// Elector takes part in the election for this process. Run bids for the
// lease and renews it; Listen tells the loops whether this process leads.
type Elector struct {
	cfg    Config
	store  leaseStore
	logger *slog.Logger

	// mu guards the fields below.
	mu      sync.Mutex
	leading bool
	subs    map[*Subscription]struct{}
}

// New returns an Elector over st's lease; Run runs it.
func New(cfg Config, st leaseStore, logger *slog.Logger) *Elector {
	host, _ := os.Hostname()
	cfg.ID = cmp.Or(cfg.ID, fmt.Sprintf("%s-%d", host, os.Getpid()))
	cfg.TTL = cmp.Or(cfg.TTL, 10*time.Second)
	cfg.Interval = cmp.Or(cfg.Interval, time.Second)
	return &Elector{cfg: cfg, store: st, logger: logger.With(slog.String("scheduler", cfg.ID)), subs: map[*Subscription]struct{}{}}
}

// ID is the name this process holds the lease under.
func (e *Elector) ID() string { return e.cfg.ID }

// Leading reports whether this process leads now.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// Run bids for the lease every Interval, and renews it while it leads,
// until ctx is done; then it gives the lease up (so another gateway takes
// over at once, not after TTL) and tells the subscribers it no longer leads.
// While Redis does not answer, the last answer stands until the lease
// would have lapsed (TTL after the last renewal began, even while a
// renewal has not come back): then it no longer leads.
// It returns nil.
func (e *Elector) Run(ctx context.Context) error {
	var renewed time.Time // when the last successful bid began
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.resign(ctx)
			return nil
		case <-t.C:
		}
		// A renewal waits no longer than the lease lasts: the lease lapses
		// TTL after the last renewal began, and another gateway may take it
		// then, whether or not this call has come back.
		bid, start := ctx, time.Now()
		cancelBid := func() {}
		if e.Leading() {
			bid, cancelBid = context.WithDeadline(ctx, renewed.Add(e.cfg.TTL))
		}
		ok, err := e.store.AcquireLeadership(bid, e.cfg.ID, e.cfg.TTL)
		cancelBid()
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			e.logger.WarnContext(ctx, "scheduler lease", slog.Any("error", err))
			if e.Leading() && time.Since(renewed) >= e.cfg.TTL {
				e.set(ctx, false)
			}
		default:
			if ok {
				renewed = start
			}
			e.set(ctx, ok)
		}
		next := e.cfg.Interval
		if e.Leading() {
			// Bid again by the time the lease lapses at the latest, so
			// that failed renewals end the leadership then.
			next = max(min(next, time.Until(renewed.Add(e.cfg.TTL))), 0)
		}
		t.Reset(next)
	}
}

// resign gives the lease up if this process holds it, on a bounded context
// of its own (ctx is done), and tells the subscribers.
func (e *Elector) resign(ctx context.Context) {
	if !e.Leading() {
		return
	}
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := e.store.ReleaseLeadership(cleanup, e.cfg.ID); err != nil {
		e.logger.WarnContext(ctx, "give up the scheduler lease", slog.Any("error", err))
	}
	e.set(ctx, false)
}

// set records whether this process leads and tells the subscribers when
// that changed.
func (e *Elector) set(ctx context.Context, leading bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leading == leading {
		return
	}
	e.leading = leading
	e.logger.InfoContext(ctx, "scheduler leadership", slog.Bool("leading", leading))
	for s := range e.subs {
		s.send(leading)
	}
}

// Listen subscribes to leadership changes. The subscription's channel holds
// the current state at once, and then each change; a subscriber that reads
// late finds the latest state (older ones are dropped), so the elector never
// waits for one. Unlisten ends it.
func (e *Elector) Listen() *Subscription {
	s := &Subscription{ch: make(chan bool, 1), e: e}
	e.mu.Lock()
	defer e.mu.Unlock()
	s.send(e.leading)
	e.subs[s] = struct{}{}
	return s
}

// Subscription is one subscriber's view of the election.
type Subscription struct {
	ch   chan bool
	e    *Elector
	once sync.Once
}

// C receives true when this process becomes the leader and false when it no
// longer is; the first value is the state when Listen was called.
func (s *Subscription) C() <-chan bool { return s.ch }

// Unlisten ends the subscription; C receives nothing more.
func (s *Subscription) Unlisten() {
	s.once.Do(func() {
		s.e.mu.Lock()
		defer s.e.mu.Unlock()
		delete(s.e.subs, s)
	})
}

// send replaces what s has not read yet with leading. The caller holds e.mu,
// so sends do not interleave.
func (s *Subscription) send(leading bool) {
	select {
	case <-s.ch:
	default:
	}
	s.ch <- leading
}
