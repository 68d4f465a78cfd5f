package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestJobRecordOfEarlierRelease: a job stored as the release before this one
// stored it (name, experiment and parent_id fields beside the spec, and an
// index of all of the workspace's jobs) is read as it was, and listed with
// the jobs stored now, newest first; a job stored now holds neither, nor
// fields at their defaults.
func TestJobRecordOfEarlierRelease(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	s := store.New(rdb, store.Config{})
	ctx := context.Background()
	spec, _ := json.Marshal(api.JobSpec{Name: "in-spec", Experiment: "exp", Image: "localhost/x:1", Command: []string{"x"}, Mode: api.ModeContainer})
	const old = "01aaaaaaaaaaaaaaaaaaaaaaaa"
	// As store.writeJob wrote it before.
	if err := rdb.HSet(ctx, "{jobgate}:job:"+old, map[string]any{"id": old, "workspace": "default", "name": "old-name", "experiment": "exp",
		"status": "queued", "reason": "waiting for the scheduler", "reason_code": api.ReasonWaitingForScheduler, "attempt": 1,
		"created_at": "2026-11-30T10:00:00Z", "priority": "normal", "spec": spec, "notify": "false", "parent_id": ""}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"{jobgate}:ws:default:jobs", "{jobgate}:ws:default:jobs:status:queued", "{jobgate}:ws:default:jobs:exp:exp"} {
		rdb.ZAdd(ctx, k, redis.Z{Member: old})
	}
	j, err := s.GetJob(ctx, "default", old)
	if err != nil || j.Name != "old-name" || j.Experiment != "exp" || j.Spec.Image != "localhost/x:1" {
		t.Fatalf("old record read as %+v, %v", j, err)
	}
	n := newJob(t, s, func(j *api.Job) { j.Spec.Name, j.Spec.Experiment = j.Name, j.Experiment })
	if fields, _ := rdb.HKeys(ctx, "{jobgate}:job:"+n.ID).Result(); len(fields) == 0 || contains(fields, "name") || contains(fields, "parent_id") ||
		contains(fields, "notify") || contains(fields, "priority") {
		t.Errorf("new record has fields %v: want no name, no empty parent_id, no notify or priority at their defaults", fields)
	}
	if ok, _ := rdb.ZScore(ctx, "{jobgate}:ws:default:jobs", n.ID).Result(); ok != 0 {
		t.Errorf("new job in the all-jobs index")
	}
	got, err := s.GetJob(ctx, "default", n.ID)
	if err != nil || got.Name != n.Name || got.Experiment != n.Experiment {
		t.Fatalf("new record read as %+v, %v; want name %q experiment %q", got, err, n.Name, n.Experiment)
	}
	list, _, err := s.ListJobs(ctx, "default", store.ListFilter{})
	if err != nil || len(list) != 2 || list[0].ID != n.ID || list[1].ID != old {
		t.Fatalf("ListJobs: %d jobs, %v; want the new one then the old one", len(list), err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
