package store_test

import (
	"context"
	"errors"
	"fmt"
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

// TestUpdatesUnderRace: UpdateTrigger and UpdateSchedule change what is
// stored now, however many run at once: each of 8 concurrent updates adds
// its own mark, and every mark is there afterwards. (Fewer updaters than
// the store's attempts, so none can lose every round.)
func TestUpdatesUnderRace(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := s.CreateTrigger(ctx, store.Trigger{ID: "trg_race", Workspace: "default", Name: "t", Provider: "github", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, store.Schedule{ID: "sch_race", Workspace: "default", Name: "s", Cron: "@daily", Since: now}, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		mark := fmt.Sprint("m", i)
		wg.Go(func() {
			_, err := s.UpdateTrigger(ctx, "default", "t", func(tr *store.Trigger) error {
				tr.Job.Command = append(tr.Job.Command, mark)
				return nil
			})
			if err != nil {
				t.Errorf("update trigger: %v", err)
			}
		})
		wg.Go(func() {
			_, err := s.UpdateSchedule(ctx, "default", "s", func(sc *store.Schedule) error {
				sc.Job.Command = append(sc.Job.Command, mark)
				return nil
			})
			if err != nil {
				t.Errorf("update schedule: %v", err)
			}
		})
	}
	wg.Wait()
	tr, err := s.Trigger(ctx, "default", "t")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Schedule(ctx, "default", "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Job.Command) != 8 || len(sc.Job.Command) != 8 {
		t.Fatalf("marks kept: trigger %d, schedule %d; want 8 each (an update undid another)", len(tr.Job.Command), len(sc.Job.Command))
	}
	if tr.ID != "trg_race" || sc.ID != "sch_race" || !sc.Since.Equal(now.Truncate(time.Millisecond)) {
		t.Fatalf("identity or state moved: trigger %s, schedule %s since %s", tr.ID, sc.ID, sc.Since)
	}
	if _, err := s.UpdateTrigger(ctx, "default", "nope", func(*store.Trigger) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update a missing trigger: %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateSchedule(ctx, "other", "s", func(*store.Schedule) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update another workspace's schedule: %v, want ErrNotFound", err)
	}
}
