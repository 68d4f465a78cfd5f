package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func addVersion(t *testing.T, s *store.Store, ws, name string, v int) {
	t.Helper()
	if err := s.AddModelVersion(context.Background(), ws, api.ModelVersion{Name: name, Version: v, SHA256: "ab", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
}

func deploymentOf(ws, name string, model string, v int) store.DeploymentRecord {
	now := time.Now().UTC()
	return store.DeploymentRecord{Workspace: ws, Spec: api.DeploymentSpec{Name: name}, Revision: 1, CreatedAt: now, UpdatedAt: now,
		Targets: []api.DeploymentTarget{{Ref: "x", Model: model, Version: v, Weight: 100}}}
}

// TestPutDeploymentIf: a new record only when there is none, a change only
// over the record it was made from, and only while the versions it names
// exist.
func TestPutDeploymentIf(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addVersion(t, s, "ws", "iris", 1)
	d := deploymentOf("ws", "dep", "iris", 1)
	if err := s.PutDeploymentIf(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeploymentIf(ctx, d, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create over an existing record: %v, want ErrConflict", err)
	}
	// A DELETE marks it deleting; a PATCH made from the record before must
	// not undo that.
	del := d
	del.Deleting, del.UpdatedAt = true, d.UpdatedAt.Add(time.Millisecond)
	if err := s.PutDeploymentIf(ctx, del, &d); err != nil {
		t.Fatal(err)
	}
	patch := d
	patch.Revision, patch.UpdatedAt = 2, d.UpdatedAt.Add(2*time.Millisecond)
	if err := s.PutDeploymentIf(ctx, patch, &d); !errors.Is(err, store.ErrDeploymentChanged) {
		t.Fatalf("a change made from a record read before another: %v, want ErrDeploymentChanged", err)
	}
	got, _, err := s.Deployment(ctx, "ws", "dep")
	if err != nil || !got.Deleting {
		t.Fatalf("after the stale change: %+v, %v; want it still deleting", got, err)
	}
	if err := s.PutDeploymentIf(ctx, deploymentOf("ws", "dep2", "iris", 7), nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deployment of a version that does not exist: %v, want ErrNotFound", err)
	}
}

// TestDeleteUnusedModelVersion: a version a deployment targets, or one of
// its replica slots still runs, is kept and named; an unused one goes.
func TestDeleteUnusedModelVersion(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for v := 1; v <= 3; v++ {
		addVersion(t, s, "ws", "iris", v)
	}
	if err := s.PutDeploymentIf(ctx, deploymentOf("ws", "dep", "iris", 2), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReplicaSlot(ctx, "ws", "dep", store.ReplicaSlot{ID: "r1", Model: "iris", Version: 1}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{1, 2} {
		if _, by, err := s.DeleteUnusedModelVersion(ctx, "ws", "iris", v); err != nil || by != "dep" {
			t.Fatalf("delete iris:%d: by %q, %v; want kept, by dep", v, by, err)
		}
	}
	if _, by, err := s.DeleteUnusedModelVersion(ctx, "ws", "iris", 3); err != nil || by != "" {
		t.Fatalf("delete iris:3: by %q, %v; want deleted", by, err)
	}
	if _, err := s.ModelVersion(ctx, "ws", "iris", 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("iris:3 after its delete: %v, want ErrNotFound", err)
	}
	if _, _, err := s.DeleteUnusedModelVersion(ctx, "ws", "iris", 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete iris:3 again: %v, want ErrNotFound", err)
	}
}

// TestDeployRacesVersionDelete: a deployment written while its version is
// deleted: one of them loses, never a deployment naming a deleted version.
func TestDeployRacesVersionDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for v := 1; v <= 200; v++ {
		addVersion(t, s, "ws", "iris", v)
		d := deploymentOf("ws", "dep", "iris", v)
		prev, _, err := s.Deployment(ctx, "ws", "dep")
		if errors.Is(err, store.ErrNotFound) {
			prev = nil
		} else if err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			d.Revision, d.UpdatedAt = prev.Revision+1, prev.UpdatedAt.Add(time.Microsecond)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := s.PutDeploymentIf(ctx, d, prev); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, _, err := s.DeleteUnusedModelVersion(ctx, "ws", "iris", v); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		got, _, err := s.Deployment(ctx, "ws", "dep")
		if err != nil {
			continue // not made yet: the delete won the first round
		}
		for _, tg := range got.Targets {
			if _, err := s.ModelVersion(ctx, "ws", tg.Model, tg.Version); err != nil {
				t.Fatalf("round %d: the deployment names %s:%d, which is gone (%v)", v, tg.Model, tg.Version, err)
			}
		}
	}
}

// TestServiceJobs: every service job that has not ended is listed, in any
// workspace, oldest first; other jobs are not, and an ended one leaves the
// index.
func TestServiceJobs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	svc := func(ws, replica string) func(*api.Job) {
		return func(j *api.Job) {
			j.Workspace = ws
			j.Spec.Service = &api.Service{Deployment: "dep", Replica: replica}
		}
	}
	if err := s.EnsureWorkspace(ctx, api.Workspace{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	a := newJob(t, s, svc("default", "r1"))
	newJob(t, s) // a batch job
	b := newJob(t, s, svc("other", "r2"))
	c := newJob(t, s, svc("default", "r3"))
	if _, err := s.Cancel(ctx, "default", c.ID, time.Now()); err != nil { // queued: canceled at once
		t.Fatal(err)
	}
	for range 2 { // the second time from the pruned index
		got, err := s.ServiceJobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range got {
			ids = append(ids, j.ID)
		}
		if len(ids) != 2 || ids[0] != a.ID || ids[1] != b.ID {
			t.Fatalf("service jobs %v, want [%s %s]", ids, a.ID, b.ID)
		}
	}
}
