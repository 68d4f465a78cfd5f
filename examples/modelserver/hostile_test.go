package main

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
)

// TestInferRefusesHostileRequests: what an untrusted caller sends is a 4xx
// in V2's error shape, never a 200 with an empty body.
func TestInferRefusesHostileRequests(t *testing.T) {
	srv, _ := testServer(t)
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		// 1e39 is a JSON number but no FP32: as float32 it is +Inf, which
		// made the probabilities NaN and the answer a 200 without a body.
		{"beyond FP32", `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1e39, 2, 3, 4]}]}`, 400, "FP32"},
		{"body over the cap", `{"id": "` + strings.Repeat("x", maxBody) + `"}`, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := do(t, srv, "POST", "/v2/models/iris/infer", tt.body, nil)
			msg, _ := got["error"].(string)
			if status != tt.status || !strings.Contains(msg, tt.want) || len(got) != 1 {
				t.Errorf("%d %v, want %d and {\"error\": \"...%s...\"}", status, got, tt.status, tt.want)
			}
		})
	}
}

// TestInferMemoryIsBoundedByTheBody: a small request claiming a huge shape
// allocates in proportion to what it sends, not to what it claims (it
// allocated 128 MiB for the numbers of shape [4194304, 4] it never sent).
func TestInferMemoryIsBoundedByTheBody(t *testing.T) {
	m, err := loadModel("testdata")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{model: m, name: "iris", version: "2", tracer: noop.NewTracerProvider(), prop: propagation.TraceContext{}}
	h := s.handler()
	body := `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [4194304, 4], "data": [1, 2, 3, 4]}]}`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v2/models/iris/infer", strings.NewReader(body)))
	runtime.ReadMemStats(&after)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("infer: %d %s, want 400", rec.Code, rec.Body)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Fatalf("a %d-byte request allocated %d MiB", len(body), got>>20)
	}
}

// discard is a ResponseWriter that keeps nothing of the answer.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// TestInferMemoryOfALargeRequest: a request near the body cap allocates at
// most 40 times its size (35 now, half of it the JSON encoding of the
// answer). Its data decoded as []any allocated some 90 times the body (1.4
// GiB for 15 MiB), so a few such requests at once from an untrusted caller
// exhausted a replica's memory.
func TestInferMemoryOfALargeRequest(t *testing.T) {
	m, err := loadModel("testdata")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{model: m, name: "iris", version: "2", tracer: noop.NewTracerProvider(), prop: propagation.TraceContext{}}
	n := (maxBody - 200) / 2 / 4 * 4 // numbers of "0," that fit
	body := `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [` + strconv.Itoa(n/4) + `, 4], "data": [` + strings.Repeat("0,", n-1) + `0]}]}`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s.handler().ServeHTTP(&discard{h: http.Header{}}, httptest.NewRequest(http.MethodPost, "/v2/models/iris/infer", strings.NewReader(body)))
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 40*uint64(len(body)) {
		t.Fatalf("a %d MiB request allocated %d MiB, more than 40 times its size", len(body)>>20, got>>20)
	}
}
