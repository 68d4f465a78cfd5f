package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func TestPendingStats(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	at := func(p api.Priority, ago time.Duration) func(*api.Job) {
		return func(j *api.Job) { j.Spec.Priority, j.CreatedAt = p, base.Add(-ago) }
	}
	newJob(t, s, at(api.PriorityHigh, 0))
	newJob(t, s, at(api.PriorityNormal, time.Minute))
	newJob(t, s, at(api.PriorityNormal, 3*time.Minute)) // first in line
	newJob(t, s, at(api.PriorityNormal, 2*time.Minute))

	got, err := s.PendingStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.PendingStat{
		{Priority: api.PriorityHigh, Depth: 1, Oldest: base},
		{Priority: api.PriorityNormal, Depth: 3, Oldest: base.Add(-3 * time.Minute)},
		{Priority: api.PriorityLow},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("PendingStats (-want +got):\n%s", diff)
	}
}
