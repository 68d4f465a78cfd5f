package gateway

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// brokenListener listens, then fails its first Accept for good, as a
// listener whose socket went away does.
type brokenListener struct{ net.Listener }

func (l brokenListener) Accept() (net.Conn, error) { return nil, errors.New("accept: socket broken") }

// TestRunEndsWhenAPartFails: Run returns the first failure of any of its
// parts (here the HTTP server), without waiting for its context to end,
// and a certificate that does not load fails Run before it listens.
func TestRunEndsWhenAPartFails(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	bad := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name     string
		cfg      Config
		mentions string
	}{
		{"serving fails", Config{Listener: brokenListener{ln}}, "socket broken"},
		{"certificate does not load", Config{Listener: ln, TLSCertFile: bad, TLSKeyFile: bad}, "TLS certificate " + bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.AdminToken = systemToken
			g, _ := newGateway(t, tt.cfg, control.Config{}, rdb, store.New(rdb, store.Config{}), nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel() // never before Run returns: it must end by itself
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.mentions) {
					t.Fatalf("Run: %v, want an error mentioning %q", err, tt.mentions)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after a part of it failed; it waits for its context")
			}
		})
	}
}
