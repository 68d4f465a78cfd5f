package store

import (
	"strings"

	"github.com/jobgate/jobgate/api"
)

// A job's trace context (the W3C traceparent of its submit, and its
// tracestate) is one field of the job's hash, "trace": the traceparent,
// then a newline and the tracestate when there is one. A job stored
// without it (tracing off, or one made before jobs were traced) has none,
// and runs untraced.

// traceField is j's trace context as the job's "trace" field, "" for none.
func traceField(j *api.Job) string {
	if j.TraceParent == "" {
		return ""
	}
	if j.TraceState == "" {
		return j.TraceParent
	}
	return j.TraceParent + "\n" + j.TraceState
}

// decodeTrace sets j's trace context, and its TraceID, from the job's
// "trace" field v.
func decodeTrace(j *api.Job, v string) {
	if v == "" {
		return
	}
	j.TraceParent, j.TraceState, _ = strings.Cut(v, "\n")
	// version "-" trace-id "-" parent-id "-" flags: 00-<32 hex>-<16 hex>-01
	if parts := strings.Split(j.TraceParent, "-"); len(parts) >= 4 && len(parts[1]) == 32 {
		j.TraceID = parts[1]
	}
}
