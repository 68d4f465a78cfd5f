package store_test

import (
	"context"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestJobKeepsTraceContext: the submit's trace context stored with a job
// (traceparent, with and without tracestate) comes back with it, and with
// it the trace ID the job view shows; a job stored without one (tracing
// off, or stored before jobs kept one) has none.
func TestJobKeepsTraceContext(t *testing.T) {
	s := newStore(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name, parent, state, wantTrace string
	}{
		{name: "traceparent and tracestate", parent: tp, state: "vendor=abc, other=x", wantTrace: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{name: "traceparent alone", parent: tp, wantTrace: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{name: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJob(t, s, func(j *api.Job) { j.TraceParent, j.TraceState = tc.parent, tc.state })
			got, err := s.GetJobByID(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.TraceParent != tc.parent || got.TraceState != tc.state || got.TraceID != tc.wantTrace {
				t.Errorf("job read back: traceparent %q, tracestate %q, trace ID %q; want %q, %q, %q",
					got.TraceParent, got.TraceState, got.TraceID, tc.parent, tc.state, tc.wantTrace)
			}
		})
	}
}
