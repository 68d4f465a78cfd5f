package job_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jobgate/jobgate/internal/job"
)

// TestSubmitSavesTraceContext: a submit under a request's span makes a
// job.submit span under it (job ID and workspace as attributes) and stores
// that span's W3C context with the job, so placement and the attempts join
// the trace later; the job's trace ID is the request's. Without a provider
// and without a span in the context (tracing off) the job keeps none.
func TestSubmitSavesTraceContext(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	svc, st := newService(t, job.Config{TracerProvider: tp})
	ctx, req := tp.Tracer("t").Start(context.Background(), "POST /v1/jobs")
	res, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "t", Spec: spec()})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	var submit sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "job.submit" {
			submit = s
		}
	}
	if submit == nil {
		t.Fatalf("no job.submit span among %d", len(rec.Ended()))
	}
	sc := submit.SpanContext()
	if submit.Parent().SpanID() != req.SpanContext().SpanID() || sc.TraceID() != req.SpanContext().TraceID() {
		t.Errorf("job.submit: parent %s in trace %s, want the request's span %s", submit.Parent().SpanID(), sc.TraceID(), req.SpanContext().SpanID())
	}
	attrs := attribute.NewSet(submit.Attributes()...)
	if v, _ := attrs.Value("job.id"); v.AsString() != res.Job.ID {
		t.Errorf("job.submit job.id %q, want %s", v.AsString(), res.Job.ID)
	}
	if v, _ := attrs.Value("job.workspace"); v.AsString() != "ws" {
		t.Errorf("job.submit job.workspace %q, want ws", v.AsString())
	}
	stored, err := st.GetJobByID(context.Background(), res.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if stored.TraceParent != want || stored.TraceID != sc.TraceID().String() || res.Job.TraceID != stored.TraceID {
		t.Errorf("stored traceparent %q, trace ID %q (submit answered %q); want %s, %s", stored.TraceParent, stored.TraceID, res.Job.TraceID, want, sc.TraceID())
	}

	off, st2 := newService(t, job.Config{})
	res, err = off.Submit(context.Background(), job.Request{Workspace: "ws", Actor: "t", Spec: spec()})
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := st2.GetJobByID(context.Background(), res.Job.ID); err != nil || stored.TraceParent != "" || stored.TraceID != "" {
		t.Errorf("untraced submit stored traceparent %q, trace ID %q (%v); want none", stored.TraceParent, stored.TraceID, err)
	}
}
