// Package authcache keeps the answers of token lookups for a short time, so
// that a process which authenticates every request (the gateway, the
// scoring router) reads Redis about once a second per token instead of once
// per request, and a revoked token still stops working within TTL.
package authcache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// ErrExpired comes back, with the token, for a token past its ExpiresAt.
var ErrExpired = errors.New("token expired")

// TokenStore looks an issued token up by its secret (store.Store): the
// token, or an error wrapping store.ErrNotFound.
type TokenStore interface {
	TokenBySecret(ctx context.Context, secret string) (*api.Token, error)
}

var _ TokenStore = (*store.Store)(nil)

// Config configures a Cache. The zero value works.
type Config struct {
	// TTL is how long a found token is served from memory; default 1s, and
	// at most 1s, so a revoked token stops within 2s of its deletion.
	TTL time.Duration
	// NegativeTTL is how long "no such token" is remembered, so a burst of
	// requests with a wrong token does not become a burst of lookups;
	// default 500ms, at most TTL.
	NegativeTTL time.Duration
	// MaxEntries bounds the memory; past it, the expired entries go, and all
	// of them when that is not enough. Default 10000.
	MaxEntries int
	// LookupTimeout bounds one lookup, shared by every request waiting for
	// it; default 5s.
	LookupTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cache is a short-TTL cache of token lookups, safe for concurrent use.
// Concurrent lookups of one token share one read (singleflight). Errors
// other than "not found" (Redis down) are not cached.
type Cache struct {
	cfg Config
	st  TokenStore
	sf  singleflight.Group

	// mu guards the field below.
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]entry
}

type entry struct {
	tok *api.Token // nil: not found
	at  time.Time
}

// New returns a Cache over st.
func New(cfg Config, st TokenStore) *Cache {
	cfg.TTL = min(cmp.Or(cfg.TTL, time.Second), time.Second)
	cfg.NegativeTTL = min(cmp.Or(cfg.NegativeTTL, 500*time.Millisecond), cfg.TTL)
	cfg.MaxEntries = cmp.Or(cfg.MaxEntries, 10000)
	cfg.LookupTimeout = cmp.Or(cfg.LookupTimeout, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg, st: st, entries: map[[sha256.Size]byte]entry{}}
}

// Token returns the issued token whose secret this is. Errors: one wrapping
// store.ErrNotFound for an unknown (or revoked) secret; ErrExpired, with
// the token, for one past its expiry; the store's own error otherwise.
func (c *Cache) Token(ctx context.Context, secret string) (*api.Token, error) {
	key := sha256.Sum256([]byte(secret))
	now := c.cfg.Now()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !c.fresh(e, now) {
		var err error
		if e, err = c.lookup(ctx, key, secret); err != nil {
			return nil, err
		}
	}
	if e.tok == nil {
		return nil, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if e.tok.ExpiresAt != nil && !now.Before(*e.tok.ExpiresAt) {
		return e.tok, ErrExpired
	}
	return e.tok, nil
}

func (c *Cache) fresh(e entry, now time.Time) bool {
	ttl := c.cfg.TTL
	if e.tok == nil {
		ttl = c.cfg.NegativeTTL
	}
	return now.Sub(e.at) < ttl
}

// lookup reads the token once for every caller waiting on the same key; a
// caller whose ctx ends stops waiting, the read goes on for the others.
func (c *Cache) lookup(ctx context.Context, key [sha256.Size]byte, secret string) (entry, error) {
	ch := c.sf.DoChan(hex.EncodeToString(key[:]), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LookupTimeout)
		defer cancel()
		tok, err := c.st.TokenBySecret(lctx, secret)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return entry{}, err
		}
		e := entry{tok: tok, at: c.cfg.Now()}
		c.put(key, e)
		return e, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return entry{}, res.Err
		}
		return res.Val.(entry), nil
	case <-ctx.Done():
		return entry{}, ctx.Err()
	}
}

func (c *Cache) put(key [sha256.Size]byte, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.cfg.MaxEntries {
		for k, old := range c.entries {
			if !c.fresh(old, e.at) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.cfg.MaxEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}
