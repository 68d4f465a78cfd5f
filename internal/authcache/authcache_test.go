package authcache_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/authcache"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// counting wraps the real store and counts its lookups.
type counting struct {
	*store.Store
	n atomic.Int64
}

func (c *counting) TokenBySecret(ctx context.Context, secret string) (*api.Token, error) {
	c.n.Add(1)
	return c.Store.TokenBySecret(ctx, secret)
}

func newStore(t *testing.T) *counting {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	return &counting{Store: store.New(rdb, store.Config{})}
}

func mustCreate(t *testing.T, st *counting, tok api.Token, secret string) {
	t.Helper()
	if err := st.CreateToken(context.Background(), tok, secret); err != nil {
		t.Fatal(err)
	}
}

// TestRevokedTokenStopsWithin2s: a deleted token is refused within 2s of
// its deletion, though it was in the cache.
func TestRevokedTokenStopsWithin2s(t *testing.T) {
	st := newStore(t)
	c := authcache.New(authcache.Config{}, st)
	mustCreate(t, st, api.Token{ID: "t1", Workspace: "ws", Name: "one", Scopes: []api.Scope{api.ScopeScore}}, "jgt_one")
	ctx := context.Background()
	if tok, err := c.Token(ctx, "jgt_one"); err != nil || tok.ID != "t1" {
		t.Fatalf("Token: %v %v", tok, err)
	}
	if err := st.DeleteToken(ctx, "ws", "t1"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, func() bool {
		_, err := c.Token(ctx, "jgt_one")
		return errors.Is(err, store.ErrNotFound)
	}, "a deleted token still authenticates")
}

// TestHotLoopLooksUpRarely: a loop of requests with one token, and a
// concurrent burst, do about one lookup per TTL; so do wrong tokens.
func TestHotLoopLooksUpRarely(t *testing.T) {
	st := newStore(t)
	// A clock that stands still: what is counted is how often a burst of
	// checks within one TTL reads the store, not how many TTLs a slow
	// machine's wall clock spans.
	now := time.Now()
	c := authcache.New(authcache.Config{Now: func() time.Time { return now }}, st)
	mustCreate(t, st, api.Token{ID: "t1", Workspace: "ws", Name: "one"}, "jgt_one")
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 200 {
				if _, err := c.Token(ctx, "jgt_one"); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Token(ctx, "jgt_wrong"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("wrong token: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// One lookup per token per TTL, and concurrent misses share one; a
	// goroutine that missed just before another's lookup was stored may
	// read again, so a few, not one per goroutine.
	const allowed = 6
	if n := st.n.Load(); n > allowed {
		t.Fatalf("20,000 checks did %d lookups; want at most %d", n, allowed)
	}
}

// TestExpiredToken: a token past its expiry comes back with ErrExpired.
func TestExpiredToken(t *testing.T) {
	st := newStore(t)
	now := time.Now()
	c := authcache.New(authcache.Config{Now: func() time.Time { return now }}, st)
	exp := now.Add(time.Minute)
	mustCreate(t, st, api.Token{ID: "t1", Workspace: "ws", Name: "one", ExpiresAt: &exp}, "jgt_one")
	if _, err := c.Token(context.Background(), "jgt_one"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if tok, err := c.Token(context.Background(), "jgt_one"); !errors.Is(err, authcache.ErrExpired) || tok == nil {
		t.Fatalf("after expiry: %v %v; want the token and ErrExpired", tok, err)
	}
}
