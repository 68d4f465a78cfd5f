package job_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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

// TestSubmitDropsOversizedTraceState: a client's tracestate is kept with the
// job, sent in each task and put in the workload's environment, so one past
// 512 bytes is dropped (the traceparent stays); a small one is kept.
func TestSubmitDropsOversizedTraceState(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, job.Config{})
	for _, tc := range []struct {
		state string
		keep  bool
	}{
		{"vendor=abc", true},
		{longTraceState(31), false},
	} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2},
			TraceFlags: trace.FlagsSampled, Remote: true})
		ts, err := trace.ParseTraceState(tc.state)
		if err != nil {
			t.Fatalf("tracestate %q: %v", tc.state, err)
		}
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc.WithTraceState(ts))
		res, err := svc.Submit(ctx, job.Request{Workspace: "ws", Actor: "t", Spec: spec()})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := st.GetJobByID(context.Background(), res.Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.TraceParent == "" || (stored.TraceState != "") != tc.keep {
			t.Errorf("tracestate of %d bytes: stored traceparent %q, tracestate of %d bytes; want the traceparent and keep=%v",
				len(tc.state), stored.TraceParent, len(stored.TraceState), tc.keep)
		}
	}
}

// longTraceState is a valid tracestate of n distinct members of 24 bytes.
func longTraceState(n int) string {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("k%02d%s=v", i, strings.Repeat("x", 19))
	}
	return strings.Join(members, ",")
}
