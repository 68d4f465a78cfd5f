package job_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func newService(t *testing.T, cfg job.Config) (*job.Service, *store.Store) {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
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

// TestServiceOnlyFromTheController: a spec with service set is refused with
// 422 naming "service" on every client path (Submit, with and without an
// Idempotency-Key, a job token's child, and Validate of a kept template),
// and SubmitService, the controller's, makes it with no timeout.
func TestServiceOnlyFromTheController(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, job.Config{})
	ctx := context.Background()
	withService := func() api.JobSpec {
		s := spec()
		s.Service = &api.Service{Deployment: "iris", Replica: "r1", Revision: 1, Model: "iris", Version: 1, SHA256: "ab"}
		return s
	}
	parent, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "t", Spec: spec()})
	if err != nil {
		t.Fatal(err)
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		var je *job.Error
		if !errors.As(err, &je) || je.Field != "service" || je.Code.Status() != http.StatusUnprocessableEntity {
			t.Fatalf("err = %v, want a 422 job.Error about service", err)
		}
	}
	for _, req := range []job.Request{
		{Workspace: "ws", Actor: "t", Spec: withService()},
		{Workspace: "ws", Actor: "t", Spec: withService(), IdempotencyKey: "k1"},
		{Workspace: "ws", Actor: "t", Spec: withService(), ByJob: parent.Job.ID},
	} {
		_, err := svc.Submit(ctx, req)
		refused(t, err)
	}
	s := withService()
	refused(t, svc.Validate(ctx, "ws", &s))
	jobs, _, err := st.ListJobs(ctx, "ws", store.ListFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Fatalf("%d jobs stored, want only the parent", len(jobs))
	}

	j, err := svc.SubmitService(ctx, "ws", "deployment:iris", withService())
	if err != nil {
		t.Fatal(err)
	}
	if j.Spec.TimeoutSeconds != 0 || j.Spec.Service == nil || j.Spec.Service.Replica != "r1" {
		t.Fatalf("service job spec = %+v, want timeout 0 and its service", j.Spec)
	}
	bad := withService()
	bad.TimeoutSeconds = 60
	if _, err := svc.SubmitService(ctx, "ws", "deployment:iris", bad); err == nil || !strings.Contains(err.Error(), "timeout_seconds") {
		t.Fatalf("SubmitService with a timeout: %v, want a refusal naming timeout_seconds", err)
	}
}
