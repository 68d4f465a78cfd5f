package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestCreateJobOnceMakesOneJobPerKey: CreateJobOnce makes the job and
// completes the key in one step, so racing requests under one key (a claim
// that expired while its request was still creating, a retry) make one job,
// and the key answers with it afterwards, even once released.
func TestCreateJobOnceMakesOneJobPerKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	idem := store.Idempotency{KeyHash: "k1", BodyHash: "b1", TTL: time.Hour}
	if prev, err := s.ClaimIdempotency(ctx, "default", idem.KeyHash, idem.BodyHash, time.Minute); err != nil || prev != nil {
		t.Fatalf("claim: %+v, %v", prev, err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		seen    []string
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "n", Experiment: "e",
				Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
				Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer}}
			prev, err := s.CreateJobOnce(ctx, j, idem)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("CreateJobOnce: %v", err)
			case prev == nil:
				created = append(created, j.ID)
			default:
				seen = append(seen, prev.JobID)
			}
		}()
	}
	wg.Wait()
	if len(created) != 1 {
		t.Fatalf("%d jobs created under one key, want 1: %v", len(created), created)
	}
	for _, id := range seen {
		if id != created[0] {
			t.Fatalf("a loser saw job %s, want the winner %s", id, created[0])
		}
	}
	jobs, _, err := s.ListJobs(ctx, "default", store.ListFilter{Limit: 100})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("stored jobs: %d, %v; want 1", len(jobs), err)
	}
	// A failed request's release leaves a completed key alone.
	if err := s.ReleaseIdempotency(ctx, "default", idem.KeyHash); err != nil {
		t.Fatal(err)
	}
	prev, err := s.ClaimIdempotency(ctx, "default", idem.KeyHash, idem.BodyHash, time.Minute)
	if err != nil || prev == nil || prev.JobID != created[0] {
		t.Fatalf("claim after release: %+v, %v; want the record of job %s", prev, err, created[0])
	}
}
