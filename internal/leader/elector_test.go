package leader_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	return store.New(rdb, store.Config{})
}

// killed is the lease store of a process that is killed: once dead is
// closed it releases nothing, as a process killed with SIGKILL gives up
// nothing; its lease lapses after its TTL.
type killed struct {
	*store.Store
	dead chan struct{}
}

func (k killed) ReleaseLeadership(ctx context.Context, holder string) error {
	select {
	case <-k.dead:
		return nil
	default:
		return k.Store.ReleaseLeadership(ctx, holder)
	}
}

// running is one elector's Run, and its subscription.
type running struct {
	e   *leader.Elector
	sub *leader.Subscription
	// initial is what sub held at once, before Run started.
	initial bool
	seen    chan bool // what sub received later, in order
	stop    func()
}

func start(t *testing.T, e *leader.Elector) *running {
	t.Helper()
	r := &running{e: e, sub: e.Listen(), seen: make(chan bool, 100)}
	select {
	case r.initial = <-r.sub.C():
	default:
		t.Fatal("a new subscription holds no state")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for {
			select {
			case v := <-r.sub.C():
				r.seen <- v
			case <-done:
				// What Run said last, before it returned.
				select {
				case v := <-r.sub.C():
					r.seen <- v
				default:
				}
				return
			}
		}
	}()
	stopped := false
	r.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			<-subDone
			r.sub.Unlisten()
		}
	}
	t.Cleanup(r.stop)
	return r
}

// next is the next value r's subscriber received.
func (r *running) next(t *testing.T) bool {
	t.Helper()
	select {
	case v := <-r.seen:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("the subscriber heard nothing")
		return false
	}
}

// TestElectorOneLeadsAndHandsOver: of two electors one leads; when it stops,
// it gives the lease up and the other takes over; when it is killed (no
// release), the other takes over once the lease lapsed. Subscribers learn
// the state at once and every change.
func TestElectorOneLeadsAndHandsOver(t *testing.T) {
	for _, tt := range []struct {
		name string
		kill bool
	}{
		{"leader stops", false},
		{"leader is killed", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			logger := slog.New(slog.DiscardHandler)
			cfg := leader.Config{TTL: 600 * time.Millisecond, Interval: 50 * time.Millisecond}
			dead := make(chan struct{})
			cfg.ID = "a"
			a := start(t, leader.New(cfg, killed{st, dead}, logger))
			if a.initial {
				t.Fatal("a leads before it bid")
			}
			if !a.next(t) {
				t.Fatal("a, alone, did not become the leader")
			}
			cfg.ID = "b"
			b := start(t, leader.New(cfg, st, logger))
			if b.initial {
				t.Fatal("b leads at Listen")
			}
			late := a.e.Listen() // a new subscriber learns the state at once
			if v := <-late.C(); !v {
				t.Fatal("a late subscriber of a heard it does not lead")
			}
			late.Unlisten()
			if b.e.Leading() {
				t.Fatal("b leads beside a")
			}

			if tt.kill {
				close(dead)
			}
			a.stop()
			if a.next(t) {
				t.Fatal("a's subscriber did not hear that a stopped leading")
			}
			if !b.next(t) {
				t.Fatal("b did not take over")
			}
			if a.e.Leading() || !b.e.Leading() {
				t.Fatalf("after the hand-over a leads %v, b leads %v", a.e.Leading(), b.e.Leading())
			}
			ok, err := st.AcquireLeadership(context.Background(), "c", time.Second)
			if err != nil || ok {
				t.Fatalf("c took the lease b holds: %v %v", ok, err)
			}
			b.stop()
			if b.next(t) {
				t.Fatal("b's subscriber did not hear that b stopped leading")
			}
			// b gave the lease up on its way out: c gets it at once.
			if ok, err := st.AcquireLeadership(context.Background(), "c", time.Second); err != nil || !ok {
				t.Fatalf("after b stopped, c did not get the lease: %v %v", ok, err)
			}
		})
	}
}

// hung is the lease store of a Redis that stops answering after the first
// bid: every later call waits until its context ends (or the test ends),
// as a call to an unreachable Redis waits for its timeouts and retries.
type hung struct {
	first chan struct{} // closed by the first bid, which wins
	end   chan struct{}
}

func (h *hung) AcquireLeadership(ctx context.Context, _ string, _ time.Duration) (bool, error) {
	select {
	case <-h.first:
	default:
		close(h.first)
		return true, nil
	}
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-h.end:
		return false, context.DeadlineExceeded
	}
}

func (h *hung) ReleaseLeadership(context.Context, string) error { return nil }

// TestElectorStepsDownWhenTheLeaseLapsesDuringABid: while a renewal hangs
// (Redis out of reach, the call waiting on its timeouts), the lease in Redis
// lapses TTL after the last renewal began, and another gateway may take it.
// The elector must say it no longer leads by then, not only once the hung
// call returns: the loops that subscribe to it (placement, the cron loop)
// act on what it said meanwhile, and the scheduler of before stopped at the
// first failed renewal.
func TestElectorStepsDownWhenTheLeaseLapsesDuringABid(t *testing.T) {
	h := &hung{first: make(chan struct{}), end: make(chan struct{})}
	t.Cleanup(func() { close(h.end) })
	e := leader.New(leader.Config{ID: "a", TTL: 200 * time.Millisecond, Interval: 20 * time.Millisecond}, h,
		slog.New(slog.DiscardHandler))
	r := start(t, e)
	defer r.stop()
	testenv.Eventually(t, 10*time.Second, e.Leading, "the elector never led")
	testenv.Eventually(t, 10*time.Second, func() bool { return !e.Leading() },
		"the elector still leads long after its lease lapsed, while a renewal hangs")
}

// refused is the lease store of a Redis that refuses every call after the
// first bid at once (connection refused).
type refused struct{ first chan struct{} }

func (r *refused) AcquireLeadership(context.Context, string, time.Duration) (bool, error) {
	select {
	case <-r.first:
		return false, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	default:
		close(r.first)
		return true, nil
	}
}

func (r *refused) ReleaseLeadership(context.Context, string) error { return nil }

// TestElectorStepsDownWhenItsLeaseLapses: a leader whose renewals fail
// steps down once its lease can have lapsed, even when its next bid is not
// due before then (an Interval longer than what is left of the TTL).
func TestElectorStepsDownWhenItsLeaseLapses(t *testing.T) {
	e := leader.New(leader.Config{ID: "a", TTL: 200 * time.Millisecond, Interval: time.Minute}, &refused{first: make(chan struct{})},
		slog.New(slog.DiscardHandler))
	r := start(t, e)
	defer r.stop()
	testenv.Eventually(t, 10*time.Second, e.Leading, "the elector never led")
	testenv.Eventually(t, 10*time.Second, func() bool { return !e.Leading() },
		"the elector still leads long after its lease lapsed")
}
