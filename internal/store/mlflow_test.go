package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestMLflowLifecycleRecords: soft deletion of experiments and runs,
// bounded experiment tags, and a rename that keeps the run's experiment;
// none of them makes a record for a job that is not there.
func TestMLflowLifecycleRecords(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	s := store.New(rdb, store.Config{})
	ctx := context.Background()

	if err := s.SetExperimentDeleted(ctx, "default", "e", true); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DeletedExperiments(ctx, "default"); err != nil || !d["e"] {
		t.Fatalf("deleted experiments = %v, %v", d, err)
	}
	if d, _ := s.DeletedExperiments(ctx, "other"); len(d) != 0 {
		t.Fatalf("another workspace's deleted experiments = %v", d)
	}
	_ = s.SetExperimentDeleted(ctx, "default", "e", false)
	if d, _ := s.DeletedExperiments(ctx, "default"); d["e"] {
		t.Fatal("a restored experiment is still deleted")
	}

	for i := range store.MaxExperimentTags {
		if err := s.SetExperimentTag(ctx, "default", "e", fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetExperimentTag(ctx, "default", "e", "one-more", "v"); !errors.Is(err, store.ErrTooMany) {
		t.Fatalf("tag past the bound: %v", err)
	}
	if err := s.SetExperimentTag(ctx, "default", "e", "k0", "changed"); err != nil {
		t.Fatalf("changing a tag of a full experiment: %v", err)
	}
	if tags, _ := s.ExperimentTags(ctx, "default", "e"); len(tags) != store.MaxExperimentTags || tags["k0"] != "changed" {
		t.Fatalf("tags = %d, k0 = %q", len(tags), tags["k0"])
	}

	j := newJob(t, s, func(j *api.Job) { j.Spec.Name, j.Spec.Experiment = j.Name, j.Experiment })
	if err := s.SetRunDeleted(ctx, j.ID, true); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DeletedRuns(ctx, []string{j.ID, "01aaaaaaaaaaaaaaaaaaaaaaaa"}); !d[j.ID] || len(d) != 1 {
		t.Fatalf("deleted runs = %v", d)
	}
	if err := s.SetJobName(ctx, j.ID, j.Experiment, "renamed"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetJob(ctx, "default", j.ID); err != nil || got.Name != "renamed" || got.Experiment != "e" {
		t.Fatalf("renamed job = %+v, %v", got, err)
	}
	const gone = "01bbbbbbbbbbbbbbbbbbbbbbbb"
	if err := s.SetRunDeleted(ctx, gone, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting no run: %v", err)
	}
	if err := s.SetJobName(ctx, gone, "e", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renaming no run: %v", err)
	}
	if n, _ := rdb.Exists(ctx, "{jobgate}:job:"+gone).Result(); n != 0 {
		t.Fatal("a record was made for a job that is not there")
	}
}
