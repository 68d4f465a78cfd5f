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
// job is made, the cancel of a queued job and a worker's Finish answer
// ErrNotReplicated (an ErrUnavailable) while the replica is paused; so do
// the calls that find their work done (a used Idempotency-Key, a cancel of
// an ended job, a Finish tried again).
func TestReplicaAcksRefuseUnreplicatedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel set")
	}
	set := testenv.Sentinel(t)
	// up waits long, so that a loaded machine makes no flake while the
	// replica follows; s gives up soon, for the calls while it is paused.
	up := store.New(testenv.RedisClient(t, set.URL), store.Config{ReplicaAcks: 1, ReplicaTimeout: 10 * time.Second})
	s := store.New(testenv.RedisClient(t, set.URL), store.Config{ReplicaAcks: 1, ReplicaTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	job := func() *api.Job {
		return &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "n", Experiment: "e",
			Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(),
			Spec: api.JobSpec{Command: []string{"x"}, Priority: api.PriorityNormal, Mode: api.ModeContainer, TimeoutSeconds: 60}}
	}
	writes := func(s *store.Store) map[string]func(j *api.Job) error {
		return map[string]func(j *api.Job) error{
			"CreateJob": func(j *api.Job) error { return s.CreateJob(ctx, j) },
			"SubmitJob": func(j *api.Job) error { _, err := s.SubmitJob(ctx, j, store.Submission{}); return err },
			"CreateJobOnce": func(j *api.Job) error {
				_, err := s.CreateJobOnce(ctx, j, store.Idempotency{KeyHash: j.ID, BodyHash: "b", TTL: time.Hour})
				return err
			},
		}
	}
	for name, write := range writes(up) {
		if err := write(job()); err != nil {
			t.Fatalf("%s with the replica up: %v", name, err)
		}
	}
	queued := job()
	if err := up.CreateJob(ctx, queued); err != nil {
		t.Fatal(err)
	}
	running, ended := job(), job()
	for _, j := range []*api.Job{running, ended} {
		if err := up.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		start(t, up, j, 1, "w1")
	}
	done := store.NewOutcome(api.StatusSucceeded, api.Reason{})
	done.Worker = "w1"
	if err := up.Finish(ctx, ended.Workspace, ended.ID, 1, done, time.Now()); err != nil {
		t.Fatal(err)
	}
	once := job()
	idem := store.Idempotency{KeyHash: "k-" + once.ID, BodyHash: "b", TTL: time.Hour}
	if _, err := up.CreateJobOnce(ctx, once, idem); err != nil {
		t.Fatal(err)
	}
	reps := set.Replicas()
	if len(reps) != 1 {
		t.Fatalf("replicas: %v", reps)
	}
	resume := set.Pause(reps[0])
	defer resume()
	for name, write := range writes(s) {
		err := write(job())
		if !errors.Is(err, store.ErrNotReplicated) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s with the replica paused: %v, want ErrNotReplicated", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := s.Cancel(ctx, queued.Workspace, queued.ID, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Cancel with the replica paused: %v, want ErrNotReplicated", err)
	}
	// What finds its work done confirms that a replica has it first.
	if _, err := s.Cancel(ctx, ended.Workspace, ended.ID, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("Cancel of an ended job with the replica paused: %v, want ErrNotReplicated", err)
	}
	if _, err := s.CreateJobOnce(ctx, job(), idem); !errors.Is(err, store.ErrNotReplicated) {
		t.Fatalf("CreateJobOnce under a used key with the replica paused: %v, want ErrNotReplicated", err)
	}
	for try := range 2 { // the second finds its own end
		if err := s.Finish(ctx, running.Workspace, running.ID, 1, done, time.Now()); !errors.Is(err, store.ErrNotReplicated) {
			t.Fatalf("Finish #%d with the replica paused: %v, want ErrNotReplicated", try+1, err)
		}
	}
	resume()
	testenv.Eventually(t, 30*time.Second, func() bool {
		return errors.Is(up.Finish(ctx, running.Workspace, running.ID, 1, done, time.Now()), store.ErrConflict)
	}, "the retried Finish is not answered ErrConflict (recorded) once the replica is back")
	testenv.Eventually(t, 30*time.Second, func() bool { return up.CreateJob(ctx, job()) == nil },
		"no acknowledged write after the replica resumed")
}
