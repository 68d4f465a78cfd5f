package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestReplicaAcksRefuseUnreplicatedWrites: with ReplicaAcks 1 on a Sentinel
// set, new jobs are acknowledged while the replica follows, and every way a
// job is made, and the cancel of a queued job, answer ErrNotReplicated (an
// ErrUnavailable) while the replica is paused.
func TestReplicaAcksRefuseUnreplicatedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel set")
	}
	set := testenv.Sentinel(t)
	rdb := testenv.RedisClient(t, set.URL)
	s := store.New(rdb, store.Config{ReplicaAcks: 1, ReplicaTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	job := func() *api.Job {
		return &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "n", Experiment: "e",
			Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
			Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer, TimeoutSeconds: 60}}
	}
	writes := map[string]func(j *api.Job) error{
		"CreateJob": func(j *api.Job) error { return s.CreateJob(ctx, j) },
		"SubmitJob": func(j *api.Job) error { _, err := s.SubmitJob(ctx, j, store.Submission{}); return err },
		"CreateJobOnce": func(j *api.Job) error {
			_, err := s.CreateJobOnce(ctx, j, store.Idempotency{KeyHash: j.ID, BodyHash: "b", TTL: time.Hour})
			return err
		},
	}
	for name, write := range writes {
		if err := write(job()); err != nil {
			t.Fatalf("%s with the replica up: %v", name, err)
		}
	}
	queued := job()
	if err := s.CreateJob(ctx, queued); err != nil {
		t.Fatal(err)
	}
	reps := set.Replicas()
	if len(reps) != 1 {
		t.Fatalf("replicas: %v", reps)
	}
	resume := set.Pause(reps[0])
	defer resume()
	for name, write := range writes {
		err := write(job())
		if !errors.Is(err, store.ErrNotReplicated) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s with the replica paused: %v, want ErrNotReplicated", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := s.Cancel(ctx, queued.Workspace, queued.ID, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Cancel with the replica paused: %v, want ErrNotReplicated", err)
	}
	resume()
	testenv.Eventually(t, 30*time.Second, func() bool { return s.CreateJob(ctx, job()) == nil },
		"no acknowledged write after the replica resumed")
}
