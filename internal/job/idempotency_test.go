package job_test

import (
	"fmt"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
)

// TestIdempotencyIgnoresTraceParent: the traceparent the gateway puts in a
// batch's spec (and a batch-score job's) is the request's, so a retry under
// the same Idempotency-Key has another; it is still the same request. Any
// other field of the spec is not.
func TestIdempotencyIgnoresTraceParent(t *testing.T) {
	batch := func(tp, dep string) api.JobSpec {
		return api.JobSpec{Name: "b", Batch: &api.BatchJob{Deployment: dep, Input: "in", Total: 3, MaxConcurrency: 4, TraceParent: tp}}
	}
	score := func(tp, model string) api.JobSpec {
		return api.JobSpec{Name: "s", Kind: api.KindBatchScore, BatchScore: &api.BatchScore{Model: model, TraceParent: tp}}
	}
	resolved := func(s api.JobSpec, v int) api.JobSpec {
		s.BatchScore.ModelName, s.BatchScore.Version, s.BatchScore.SHA256 = "iris", v, fmt.Sprint("sha-", v)
		return s
	}
	const tp1, tp2 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
	for _, tc := range []struct {
		name string
		a, b api.JobSpec
		same bool
	}{
		{"batch, another traceparent", batch(tp1, "iris"), batch(tp2, "iris"), true},
		{"batch, none and one", batch("", "iris"), batch(tp1, "iris"), true},
		{"batch, another deployment", batch(tp1, "iris"), batch(tp1, "other"), false},
		{"batch-score, another traceparent", score(tp1, "iris:1"), score(tp2, "iris:1"), true},
		{"batch-score, another model", score(tp1, "iris:1"), score(tp1, "iris:2"), false},
		{"batch-score, the alias moved since", resolved(score(tp1, "iris@production"), 1), resolved(score(tp2, "iris@production"), 2), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ha := job.IdempotencyHashes("", "k", tc.a)
			_, hb := job.IdempotencyHashes("", "k", tc.b)
			if (ha == hb) != tc.same {
				t.Errorf("same hash: %v, want %v", ha == hb, tc.same)
			}
			// The hash leaves the spec as it was.
			if tc.b.Batch != nil && tc.b.Batch.TraceParent == "" || tc.b.BatchScore != nil && tc.b.BatchScore.TraceParent == "" {
				t.Errorf("hashing cleared the spec's traceparent")
			}
		})
	}
}
