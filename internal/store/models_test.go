package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestDeleteModel: a model goes only once it has no versions (a version
// registered meanwhile is a conflict, and the model stays); its aliases and
// description go with it, its version counter stays.
func TestDeleteModel(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := s.DeleteModel(ctx, "default", "iris"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of no model: %v, want ErrNotFound", err)
	}
	v, err := s.NextModelVersion(ctx, "default", "iris")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddModelVersion(ctx, "default", api.ModelVersion{Name: "iris", Version: v, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelAlias(ctx, "default", "iris", "prod", v); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelDescription(ctx, "default", "iris", "a flower"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteModel(ctx, "default", "iris"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete of a model with a version: %v, want ErrConflict", err)
	}
	if _, err := s.Model(ctx, "default", "iris"); err != nil {
		t.Fatalf("the model after the refused delete: %v", err)
	}
	if _, err := s.DeleteModelVersion(ctx, "default", "iris", v); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteModel(ctx, "default", "iris"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Model(ctx, "default", "iris"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("model after delete: %v, want ErrNotFound", err)
	}
	if d, _ := s.ModelDescriptions(ctx, "default"); len(d) != 0 {
		t.Errorf("descriptions after delete: %v", d)
	}
	if created, err := s.CreateModel(ctx, "default", "iris", now); err != nil || !created {
		t.Fatalf("create again: %v %v", created, err)
	}
	m, err := s.Model(ctx, "default", "iris")
	if err != nil || len(m.Aliases) != 0 {
		t.Fatalf("made again: %+v %v, want no aliases", m, err)
	}
	if next, _ := s.NextModelVersion(ctx, "default", "iris"); next != v+1 {
		t.Errorf("next version after delete = %d, want %d", next, v+1)
	}
}

// TestModelTagsNeedWhatTheyTag: a tag is set only on a model or version
// that exists, in one step with the check, so a tag set as its model is
// deleted is not left to show on a model made again under the name.
func TestModelTagsNeedWhatTheyTag(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	model, version := store.ModelTagRef{Name: "iris"}, store.ModelTagRef{Name: "iris", Version: 1}
	for _, ref := range []store.ModelTagRef{model, version} {
		if err := s.SetModelTag(ctx, "default", ref, "k", "v"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tag on %+v, which does not exist: %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.CreateModel(ctx, "default", "iris", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelTag(ctx, "default", model, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelTag(ctx, "default", version, "k", "v"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tag on a version not registered: %v, want ErrNotFound", err)
	}
	if err := s.DeleteModel(ctx, "default", "iris"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelTag(ctx, "default", model, "late", "v"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tag after the model was deleted: %v, want ErrNotFound", err)
	}
	if tags, err := s.ModelTags(ctx, "default", []store.ModelTagRef{model}); err != nil || len(tags) != 0 {
		t.Fatalf("tags left after the delete: %v, %v", tags, err)
	}
}
