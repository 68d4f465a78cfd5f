package store_test

import (
	"context"
	"testing"

	"github.com/jobgate/jobgate/internal/store"
)

// TestEndpointOlderAttempt: an older attempt of a job (its worker called
// lost, still running) neither overwrites nor removes the endpoint of the
// job's newer attempt; its own it renews and removes.
func TestEndpointOlderAttempt(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ep := func(attempt int, addr string) store.Endpoint {
		return store.Endpoint{JobID: "j1", Attempt: attempt, Workspace: "ws", Deployment: "iris", Address: addr, State: store.EndpointReady}
	}
	address := func() string {
		t.Helper()
		es, err := s.Endpoints(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return ""
		}
		return es[0].Address
	}
	for _, e := range []store.Endpoint{ep(1, "old:1"), ep(2, "new:2")} {
		if err := s.PutEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutEndpoint(ctx, ep(1, "old:1")); err != nil {
		t.Fatal(err)
	}
	if got := address(); got != "new:2" {
		t.Fatalf("after attempt 1 renewed its endpoint: %q, want attempt 2's new:2", got)
	}
	if err := s.RemoveEndpoint(ctx, "j1", 1); err != nil {
		t.Fatal(err)
	}
	if got := address(); got != "new:2" {
		t.Fatalf("after attempt 1 removed its endpoint: %q, want attempt 2's new:2", got)
	}
	if err := s.RemoveEndpoint(ctx, "j1", 2); err != nil {
		t.Fatal(err)
	}
	if got := address(); got != "" {
		t.Fatalf("after attempt 2 removed its endpoint: %q, want none", got)
	}
}
