package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func TestDatastores(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	train := store.Datastore{Datastore: api.Datastore{Name: "train", Path: "/data/a/train", CreatedAt: at, CreatedBy: "ci"}, Root: "/data/a"}
	if err := s.CreateDatastore(ctx, "team-a", train); err != nil {
		t.Fatal(err)
	}
	// The same name in another workspace is another datastore.
	other := store.Datastore{Datastore: api.Datastore{Name: "train", Path: "/data/b", CreatedAt: at}}
	if err := s.CreateDatastore(ctx, "team-b", other); err != nil {
		t.Fatal(err)
	}
	dup := train
	dup.Path = "/elsewhere"
	if err := s.CreateDatastore(ctx, "team-a", dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate name: %v, want ErrConflict", err)
	}

	got, err := s.Datastore(ctx, "team-a", "train")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&train, got); diff != "" {
		t.Fatalf("datastore (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ ws, name string }{{"team-a", "nope"}, {"team-c", "train"}} {
		if _, err := s.Datastore(ctx, tt.ws, tt.name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("datastore %s/%s: %v, want ErrNotFound", tt.ws, tt.name, err)
		}
	}

	if err := s.CreateDatastore(ctx, "team-a", store.Datastore{Datastore: api.Datastore{Name: "eval", Path: "/data/a/eval", CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	list, err := s.Datastores(ctx, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range list {
		names = append(names, d.Name+"="+d.Path)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"eval=/data/a/eval", "train=/data/a/train"}, names); diff != "" {
		t.Fatalf("list of team-a (-want +got):\n%s", diff)
	}
	if list, err := s.Datastores(ctx, "team-c"); err != nil || len(list) != 0 {
		t.Fatalf("list of a workspace without datastores: %v, %v", list, err)
	}

	if err := s.DeleteDatastore(ctx, "team-a", "train"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDatastore(ctx, "team-a", "train"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Datastore(ctx, "team-a", "train"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted datastore: %v, want ErrNotFound", err)
	}
	if _, err := s.Datastore(ctx, "team-b", "train"); err != nil {
		t.Fatalf("team-b's datastore of the same name went with team-a's: %v", err)
	}
}
