package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestJobTraceInJaeger is issue 14's "the job path traced as one trace": a
// client posts a job with its traceparent; the gateway and a `jobgate
// worker` process export to a real Jaeger. The job view shows the client's
// trace ID; the container (host network) finds TRACEPARENT in its
// environment, in that trace, naming the worker's attempt span; and the
// trace holds the API's server span (the client's span its parent), the
// job service's job.submit under it, the scheduler's job.place under that
// and the worker's job.attempt under the placement. A job fired by a
// schedule has a trace too, which begins at the tick (schedule.tick).
func TestJobTraceInJaeger(t *testing.T) {
	jaeger := tracedToJaeger(t)
	c := newCluster(t)
	c.startWorkerProcess("traced", t.TempDir(), t.TempDir())

	const (
		clientTrace = "5a1b2c3d4e5f60718293a4b5c6d7e8f9"
		clientSpan  = "0123456789abcdef"
	)
	spec, _ := json.Marshal(api.JobSpec{Image: testenv.ExampleImage, Command: toolbox("env", "TRACEPARENT")})
	req, err := http.NewRequest(http.MethodPost, c.gwURL+"/v1/jobs", bytes.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Decoded by name: the test reads the field as a client would.
	var submitted struct {
		ID      string `json:"id"`
		TraceID string `json:"trace_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &submitted) != nil {
		t.Fatalf("POST /v1/jobs: %d %s", resp.StatusCode, body)
	}
	if submitted.TraceID != clientTrace {
		t.Errorf("submit answered trace_id %q, want the client's %s", submitted.TraceID, clientTrace)
	}
	j := c.waitEnded(submitted.ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job %s (%s), want succeeded", j.Status, j.Reason)
	}
	var view map[string]any
	if code := c.do("GET", "/v1/jobs/"+j.ID, "", &view); code != http.StatusOK || view["trace_id"] != clientTrace {
		t.Errorf("GET /v1/jobs/%s: %d, trace_id %v; want %s", j.ID, code, view["trace_id"], clientTrace)
	}
	log := c.logs(j.ID)
	m := regexp.MustCompile(`00-` + clientTrace + `-([0-9a-f]{16})-01`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("job log %q: no TRACEPARENT in the client's trace %s", log, clientTrace)
	}
	attemptSpan := m[1]

	tr := jaeger.WaitTrace(t, clientTrace, "POST /v1/jobs", "job.submit", "job.place", "job.attempt")
	post, submit, place, attempt := tr.Span("POST /v1/jobs"), tr.Span("job.submit"), tr.Span("job.place"), tr.Span("job.attempt")
	for _, s := range []struct {
		span            *testenv.JaegerSpan
		parent, service string
	}{
		{post, clientSpan, "jobgate-gateway"},
		{submit, post.SpanID, "jobgate-gateway"},
		{place, submit.SpanID, "jobgate-gateway"},
		{attempt, place.SpanID, "jobgate-worker"},
	} {
		if s.span.Parent() != s.parent || tr.Service(*s.span) != s.service {
			t.Errorf("span %s: parent %s, service %s; want parent %s, service %s", s.span.OperationName, s.span.Parent(), tr.Service(*s.span), s.parent, s.service)
		}
	}
	if attempt.SpanID != attemptSpan || attempt.Tag("job.id") != j.ID || attempt.Tag("job.attempt") != "1" || attempt.Tag("worker.id") != "traced" {
		t.Errorf("job.attempt span %s (job.id %s, job.attempt %s, worker.id %s); want the span TRACEPARENT named, %s, job %s attempt 1 on traced",
			attempt.SpanID, attempt.Tag("job.id"), attempt.Tag("job.attempt"), attempt.Tag("worker.id"), attemptSpan, j.ID)
	}
	if submit.Tag("job.id") != j.ID || place.Tag("worker.id") != "traced" {
		t.Errorf("job.submit job.id %q, job.place worker.id %q; want %s, traced", submit.Tag("job.id"), place.Tag("worker.id"), j.ID)
	}

	// A retry is another attempt span in the job's one trace, under a
	// placement of its own.
	retried := c.submit(api.JobSpec{Command: toolbox("exit", "1"), MaxRetries: 1})
	if j := c.waitEnded(retried.ID); j.Status != api.StatusFailed || j.Attempt != 2 || retried.TraceID == "" {
		t.Fatalf("job %s attempt %d, trace_id %q; want failed on attempt 2, traced", j.Status, j.Attempt, retried.TraceID)
	}
	attempts := map[string]string{} // job.attempt → its parent
	testenv.Eventually(t, 20*time.Second, func() bool {
		tr, err := jaeger.Trace(retried.TraceID)
		if err != nil {
			return false
		}
		places := map[string]bool{}
		for _, s := range tr.Spans {
			if s.OperationName == "job.place" {
				places[s.SpanID] = true
			}
		}
		for _, s := range tr.Spans {
			if s.OperationName == "job.attempt" && places[s.Parent()] {
				attempts[s.Tag("job.attempt")] = s.Parent()
			}
		}
		return len(attempts) == 2
	}, "trace %s: attempts under a placement %v, want 1 and 2", retried.TraceID, lazy(func() string { return fmt.Sprint(attempts) }))
	if attempts["1"] == attempts["2"] || attempts["1"] == "" {
		t.Errorf("attempt spans' placements %v, want one placement each", attempts)
	}

	// A schedule's job: its trace begins at the tick.
	sched, _ := json.Marshal(map[string]any{"name": "traced", "cron": "*/1 * * * * *",
		"job": api.JobSpec{Image: testenv.ExampleImage, Command: toolbox("echo", "scheduled")}})
	if code := c.do("POST", "/v1/schedules", string(sched), nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/schedules: %d", code)
	}
	var sv api.Schedule
	testenv.Eventually(t, 20*time.Second, func() bool {
		return c.do("GET", "/v1/schedules/traced", "", &sv) == http.StatusOK && sv.LastJobID != ""
	}, "the schedule fired no job")
	if code := c.do("DELETE", "/v1/schedules/traced", "", nil); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("DELETE /v1/schedules/traced: %d", code)
	}
	c.waitEnded(sv.LastJobID)
	var sj struct {
		TraceID string `json:"trace_id"`
	}
	if c.do("GET", "/v1/jobs/"+sv.LastJobID, "", &sj); sj.TraceID == "" {
		t.Fatalf("scheduled job %s has no trace_id", sv.LastJobID)
	}
	tr = jaeger.WaitTrace(t, sj.TraceID, "schedule.tick", "job.submit", "job.place", "job.attempt")
	if tick := tr.Span("schedule.tick"); tick.Parent() != "" || tr.Span("job.submit").Parent() != tick.SpanID || tick.Tag("schedule.name") != "traced" {
		t.Errorf("schedule.tick: parent %q, schedule.name %q; job.submit's parent %s; want a root span named for the schedule, the submit's parent",
			tick.Parent(), tick.Tag("schedule.name"), tr.Span("job.submit").Parent())
	}
}
