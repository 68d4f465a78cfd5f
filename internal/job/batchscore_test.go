package job

import (
	"errors"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestNormalizeBatchScore checks a batch-score spec's defaults and that
// each bad field is refused naming it.
func TestNormalizeBatchScore(t *testing.T) {
	t.Parallel()
	lim := Limits{DefaultTimeoutSeconds: 60, MaxTimeoutSeconds: 3600, MaxRetries: 3}
	base := func() api.JobSpec {
		return api.JobSpec{Kind: api.KindBatchScore, Image: "localhost/x:1", Command: []string{"/bin/modelserver"},
			Inputs:     map[string]api.Input{"data": {Datastore: "d", Path: "in"}},
			BatchScore: &api.BatchScore{Model: "iris@production"}}
	}
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		s := base()
		if err := normalize(&s, lim, false); err != nil {
			t.Fatal(err)
		}
		b := s.BatchScore
		want := api.BatchScore{Model: "iris@production", Input: "data", MiniBatchSize: 10, InstanceCount: 1, Output: "predictions.jsonl",
			InputName: "input", MaxConcurrency: 2}
		if *b != want {
			t.Fatalf("defaults: %+v, want %+v", *b, want)
		}
		if s.Name != "batch-score" {
			t.Fatalf("name %q, want batch-score", s.Name)
		}
	})
	t.Run("through a deployment needs no image", func(t *testing.T) {
		t.Parallel()
		s := base()
		s.Image, s.Command = "", nil
		s.BatchScore.Deployment = "iris"
		if err := normalize(&s, lim, false); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name  string
		edit  func(s *api.JobSpec)
		field string
	}{
		{"unknown kind", func(s *api.JobSpec) { s.Kind = "score" }, "kind"},
		{"batch_score without the kind", func(s *api.JobSpec) { s.Kind = "" }, "kind"},
		{"kind without batch_score", func(s *api.JobSpec) { s.BatchScore = nil }, "batch_score"},
		{"bad model", func(s *api.JobSpec) { s.BatchScore.Model = "iris" }, "batch_score.model"},
		{"no inputs", func(s *api.JobSpec) { s.Inputs = nil }, "inputs"},
		{"input not one of them", func(s *api.JobSpec) { s.BatchScore.Input = "other" }, "batch_score.input"},
		{"two inputs, none named", func(s *api.JobSpec) { s.Inputs["more"] = api.Input{Datastore: "d"} }, "batch_score.input"},
		{"mini_batch_size", func(s *api.JobSpec) { s.BatchScore.MiniBatchSize = -1 }, "batch_score.mini_batch_size"},
		{"instance_count", func(s *api.JobSpec) { s.BatchScore.InstanceCount = 65 }, "batch_score.instance_count"},
		{"error_threshold", func(s *api.JobSpec) { s.BatchScore.ErrorThreshold = -2 }, "batch_score.error_threshold"},
		{"output outside", func(s *api.JobSpec) { s.BatchScore.Output = "../x.jsonl" }, "batch_score.output"},
		{"output absolute", func(s *api.JobSpec) { s.BatchScore.Output = "/etc/x" }, "batch_score.output"},
		{"max_concurrency", func(s *api.JobSpec) { s.BatchScore.MaxConcurrency = 1000 }, "batch_score.max_concurrency"},
		{"deployment and an image", func(s *api.JobSpec) { s.BatchScore.Deployment = "iris" }, "batch_score.deployment"},
		{"no command, no deployment", func(s *api.JobSpec) { s.Command = nil }, "command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base()
			tt.edit(&s)
			err := normalize(&s, lim, false)
			if e := (*Error)(nil); !errors.As(err, &e) || e.Field != tt.field {
				t.Fatalf("err = %v, want a refusal naming %s", err, tt.field)
			}
		})
	}
	t.Run("resolved fields refused from a client", func(t *testing.T) {
		t.Parallel()
		for _, b := range []api.BatchScore{{Version: 1}, {SHA256: "x"}, {Partition: 1}, {TraceParent: "00-x"}} {
			if err := refuseResolved(&b); err == nil {
				t.Errorf("%+v: accepted", b)
			}
		}
	})
}
