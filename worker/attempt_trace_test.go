package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
	"github.com/jobgate/jobgate/worker"
)

// TestAttemptContinuesTraceFromTaskHeaders: the worker continues the trace
// a run-job task's headers carry with a job.attempt span (job, attempt,
// worker, exit code, an error status for a failed attempt), and the
// workload finds that span's context in TRACEPARENT and TRACESTATE. A
// task without headers (from a scheduler that does not trace) continues
// the submit's context stored with the job. A worker without a
// TracerProvider gives the workload neither.
func TestAttemptContinuesTraceFromTaskHeaders(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "default", AllowHostProcess: true}); err != nil {
		t.Fatal(err)
	}
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		place   = "00f067aa0ba902b7"
	)
	headers := map[string]string{"traceparent": "00-" + traceID + "-" + place + "-01", "tracestate": "vendor=abc"}
	// run places a job that prints its trace variables and exits 3 on
	// worker id, stored with traceparent, its task with headers, and
	// returns its log.
	run := func(w *worker.Worker, id, traceparent string, headers map[string]string) (*api.Job, string) {
		t.Helper()
		stop := runWorker(t, ctx, w, st)
		defer stop()
		j := &api.Job{ID: strings.ToLower(ulid.Make().String()), Workspace: "default", Name: "t", Experiment: "default",
			Status: api.StatusQueued, Attempt: 1, CreatedAt: time.Now().UTC(), Spec: api.JobSpec{Mode: api.ModeProcess, TimeoutSeconds: 30,
				Command: []string{"/bin/sh", "-c", `echo "TRACEPARENT=$TRACEPARENT TRACESTATE=$TRACESTATE"; exit 3`}}, TraceParent: traceparent}
		if err := st.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		_, n, err := st.Reserve(ctx, j.ID, 1, id, "")
		if err != nil {
			t.Fatal(err)
		}
		task, err := queue.NewRunJobTaskWithHeaders(queue.RunJobPayload{JobID: j.ID, Attempt: 1, Placement: n}, time.Minute, headers)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, task, asynq.Queue(queue.WorkerQueue(id))); err != nil {
			t.Fatal(err)
		}
		if err := st.Placed(ctx, j.Workspace, j.ID, 1, id); err != nil {
			t.Fatal(err)
		}
		_ = queue.Notify(ctx, rdb, queue.WorkerChannel(id))
		var got *api.Job
		testenv.Eventually(t, 20*time.Second, func() bool {
			got, _ = st.GetJobByID(ctx, j.ID)
			return got != nil && got.Status.Terminal()
		}, "job %s did not end", j.ID)
		var log strings.Builder
		entries, err := st.ReadLogs(ctx, j.ID, "0", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			log.WriteString(e.Line)
		}
		return got, log.String()
	}

	rec := tracetest.NewSpanRecorder()
	traced := processWorker(t, worker.Config{ID: "traced", Slots: 1, TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))}, rdb, st)
	j, log := run(traced, "traced", "", headers)
	if j.Status != api.StatusFailed {
		t.Fatalf("job %s (%s), want failed (exit 3)", j.Status, j.Reason)
	}
	var attempt sdktrace.ReadOnlySpan
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "job.attempt" {
				attempt = s
			}
		}
		return attempt != nil
	}, "no job.attempt span ended")
	sc := attempt.SpanContext()
	if sc.TraceID().String() != traceID || attempt.Parent().SpanID().String() != place || sc.TraceState().String() != "vendor=abc" {
		t.Errorf("job.attempt: trace %s, parent %s, tracestate %q; want trace %s, parent %s (the task's), vendor=abc",
			sc.TraceID(), attempt.Parent().SpanID(), sc.TraceState(), traceID, place)
	}
	attrs := attribute.NewSet(attempt.Attributes()...)
	for k, want := range map[attribute.Key]string{"job.id": j.ID, "job.attempt": "1", "worker.id": "traced", "process.exit.code": "3", "job.status": "failed"} {
		if v, _ := attrs.Value(k); v.Emit() != want {
			t.Errorf("job.attempt %s = %q, want %q", k, v.Emit(), want)
		}
	}
	if attempt.Status().Code != codes.Error {
		t.Errorf("job.attempt of a failed attempt: status %v, want Error", attempt.Status())
	}
	if want := "TRACEPARENT=00-" + traceID + "-" + sc.SpanID().String() + "-01 TRACESTATE=vendor=abc"; !strings.Contains(log, want) {
		t.Errorf("job log %q, want %q (the attempt span's context)", log, want)
	}

	// A task without headers, of a job whose submit was traced.
	const submit = "1111111111111111"
	j, log = run(traced, "traced", "00-"+traceID+"-"+submit+"-01", nil)
	var fromJob sdktrace.ReadOnlySpan
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, s := range rec.Ended() {
			set := attribute.NewSet(s.Attributes()...)
			if v, _ := set.Value("job.id"); s.Name() == "job.attempt" && v.AsString() == j.ID {
				fromJob = s
			}
		}
		return fromJob != nil
	}, "no job.attempt span of job %s ended", j.ID)
	if fromJob.SpanContext().TraceID().String() != traceID || fromJob.Parent().SpanID().String() != submit ||
		!strings.Contains(log, "TRACEPARENT=00-"+traceID+"-"+fromJob.SpanContext().SpanID().String()+"-01") {
		t.Errorf("task without headers: attempt span in trace %s under %s, log %q; want trace %s under the stored submit %s",
			fromJob.SpanContext().TraceID(), fromJob.Parent().SpanID(), log, traceID, submit)
	}

	untraced := processWorker(t, worker.Config{ID: "untraced", Slots: 1}, rdb, st)
	if _, log := run(untraced, "untraced", "", headers); strings.TrimSpace(log) != "TRACEPARENT= TRACESTATE=" {
		t.Errorf("job log on a worker that does not trace: %q, want no trace variables", log)
	}
}
