package job_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func newService(t *testing.T, cfg job.Config) (*job.Service, *store.Store) {
	t.Helper()
	opts, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Config{})
	if err := st.EnsureWorkspace(context.Background(), api.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	return job.New(cfg, rdb, st, slog.New(slog.DiscardHandler)), st
}

func spec() api.JobSpec { return api.JobSpec{Image: "localhost/x:1", Command: []string{"run"}} }

// TestErrorRendersAsAPIError: a job.Error is an api.Error to any renderer
// that asks errors.As for one, with its code (and so its status) and message.
func TestErrorRendersAsAPIError(t *testing.T) {
	t.Parallel()
	err := error(job.Errorf(api.CodeForbidden, "mode", "mode: not here"))
	var ae *api.Error
	if !errors.As(fmtWrap(err), &ae) {
		t.Fatalf("errors.As(%v, *api.Error) = false", err)
	}
	if ae.Code != api.CodeForbidden || ae.Message != "mode: not here" || ae.Code.Status() != http.StatusForbidden {
		t.Fatalf("api.Error = %+v, want forbidden \"mode: not here\"", ae)
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

// TestSubmitRefusals: what the service refuses comes back as a job.Error
// naming the field, with the code its status is rendered from; nothing is
// stored.
func TestSubmitRefusals(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, job.Config{})
	ctx := context.Background()
	tests := []struct {
		name      string
		mod       func(*api.JobSpec)
		wantCode  api.Code
		wantField string
	}{
		{"no command", func(s *api.JobSpec) { s.Command = nil }, api.CodeInvalidSpec, "command"},
		{"bad image", func(s *api.JobSpec) { s.Image = "Not An Image" }, api.CodeInvalidSpec, "image"},
		{"timeout past the limit", func(s *api.JobSpec) { s.TimeoutSeconds = 8 * 24 * 3600 }, api.CodeInvalidSpec, "timeout_seconds"},
		{"GPUs no worker has", func(s *api.JobSpec) { s.Resources.GPUs = 1 }, api.CodeInvalidSpec, "resources.gpus"},
		{"host process without the grant", func(s *api.JobSpec) { s.Mode = api.ModeProcess }, api.CodeForbidden, "mode"},
		{"a secret without the key", func(s *api.JobSpec) { s.Secrets = map[string]string{"DB": "db"} }, api.CodeInvalidSpec, "secrets"},
		{"missing datastore", func(s *api.JobSpec) { s.Inputs = map[string]api.Input{"data": {Datastore: "none"}} }, api.CodeInvalidSpec, "inputs.data.datastore"},
		{"missing parent", func(s *api.JobSpec) { s.ParentID = "01abc" }, api.CodeInvalidSpec, "parent_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec()
			tt.mod(&s)
			res, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "test", Spec: s})
			var je *job.Error
			if !errors.As(err, &je) || je.Code != tt.wantCode || je.Field != tt.wantField || res.Job != nil {
				t.Fatalf("Submit: %v (%#v), job %v; want a %s error about %s and no job", err, je, res.Job, tt.wantCode, tt.wantField)
			}
		})
	}
	if jobs, _, err := st.ListJobs(ctx, "ws", store.ListFilter{}); err != nil || len(jobs) != 0 {
		t.Fatalf("stored %d jobs (%v); want none", len(jobs), err)
	}
}

// TestSubmitSaveAndIdempotency: a Save hook stores the job (or says one was
// made already: no job, no error); an Idempotency-Key replays its first job
// and refuses another spec under it.
func TestSubmitSaveAndIdempotency(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, job.Config{})
	ctx := context.Background()

	saved := 0
	res, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "hook", Spec: spec(),
		Save: func(ctx context.Context, j *api.Job) (bool, error) { saved++; return false, nil }})
	if err != nil || res.Job != nil || saved != 1 {
		t.Fatalf("Save made none: job %v, err %v, saved %d; want no job, no error, one call", res.Job, err, saved)
	}

	first, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "a", Spec: spec(), IdempotencyKey: "k"})
	if err != nil || first.Job == nil || first.Replayed {
		t.Fatalf("first with key: %+v, %v", first, err)
	}
	again, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "a", Spec: spec(), IdempotencyKey: "k"})
	if err != nil || !again.Replayed || again.Job.ID != first.Job.ID {
		t.Fatalf("replay: %+v, %v; want job %s replayed", again, err, first.Job.ID)
	}
	other := spec()
	other.Name = "other"
	_, err = svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "a", Spec: other, IdempotencyKey: "k"})
	var je *job.Error
	if !errors.As(err, &je) || je.Code != api.CodeInvalid || je.Field != "Idempotency-Key" {
		t.Fatalf("another spec under the key: %v, want invalid_request about Idempotency-Key", err)
	}
	got, err := st.GetJob(ctx, "ws", first.Job.ID)
	if err != nil || got.Status != api.StatusQueued || got.Spec.Priority != api.PriorityNormal || got.Spec.TimeoutSeconds != 3600 {
		t.Fatalf("stored job: %+v, %v; want queued with the defaults filled", got, err)
	}

	if err := svc.Cancel(ctx, "ws", "a", first.Job.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetJob(ctx, "ws", first.Job.ID); got.Status != api.StatusCanceled {
		t.Fatalf("after Cancel: %s, want canceled", got.Status)
	}
}
