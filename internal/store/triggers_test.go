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

// TestCreateJobForDeliveryMakesOneJob: CreateJobForDelivery stores the job
// and completes every claim of the delivery in one step, so racing callers
// (one whose claims lapsed while it was slow, one that claimed afresh) make
// one job, and each claim answers with it afterwards, even once released.
func TestCreateJobForDeliveryMakesOneJob(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	keys := []store.DeliveryKey{store.ByDeliveryID("d-1"), store.ByBody([]byte(`{"after":"abc"}`))}
	for _, k := range keys {
		if _, claimed, err := s.ClaimDelivery(ctx, "trg", k, "tok", time.Minute); err != nil || !claimed {
			t.Fatalf("claim %s: %v, %v", k, claimed, err)
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		seen    []string
	)
	for range 10 {
		wg.Go(func() {
			j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "n", Experiment: "e",
				Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
				Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer}}
			prev, err := s.CreateJobForDelivery(ctx, j, "trg", keys, time.Hour)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("CreateJobForDelivery: %v", err)
			case prev == "":
				created = append(created, j.ID)
			default:
				seen = append(seen, prev)
			}
		})
	}
	wg.Wait()
	if len(created) != 1 {
		t.Fatalf("%d jobs created for one delivery, want 1: %v", len(created), created)
	}
	for _, id := range seen {
		if id != created[0] {
			t.Fatalf("a loser saw job %s, want the winner %s", id, created[0])
		}
	}
	if jobs, _, err := s.ListJobs(ctx, "default", store.ListFilter{Limit: 100}); err != nil || len(jobs) != 1 {
		t.Fatalf("stored jobs: %d, %v; want 1", len(jobs), err)
	}
	for _, k := range keys {
		// A failed delivery's release leaves a completed claim alone.
		if err := s.ReleaseDelivery(ctx, "trg", k, "tok"); err != nil {
			t.Fatal(err)
		}
		if jobID, claimed, err := s.ClaimDelivery(ctx, "trg", k, "other", time.Minute); err != nil || claimed || jobID != created[0] {
			t.Fatalf("claim %s afterwards: %q, %v, %v; want job %s", k, jobID, claimed, err, created[0])
		}
	}
}
