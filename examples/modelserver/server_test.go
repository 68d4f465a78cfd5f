package main

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// testServer serves testdata/model.json (made by examples/iris-train) as
// iris version 2, its spans recorded in memory.
func testServer(t *testing.T) (*httptest.Server, *tracetest.SpanRecorder) {
	t.Helper()
	m, err := loadModel("testdata")
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := &server{model: m, name: "iris", version: "2", tracer: tp, prop: propagation.TraceContext{}}
	srv := httptest.NewServer(s.handler())
	t.Cleanup(srv.Close)
	return srv, rec
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, v
}

// Rows 1, 51 and 101 of Fisher's table: one of each class.
const knownRows = `[[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]`

func TestInfer(t *testing.T) {
	srv, _ := testServer(t)
	tests := []struct {
		name, path, body string
	}{
		{"nested", "/v2/models/iris/infer", `{"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": ` + knownRows + `}]}`},
		{"flat", "/v2/models/iris/infer", `{"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": [5.1, 3.5, 1.4, 0.2, 7.0, 3.2, 4.7, 1.4, 6.3, 3.3, 6.0, 2.5]}]}`},
		{"version", "/v2/models/iris/versions/2/infer", `{"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": ` + knownRows + `}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := do(t, srv, "POST", tt.path, tt.body, nil)
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, got)
			}
			outputs := got["outputs"].([]any)
			probs := outputs[1].(map[string]any)
			delete(probs, "data")
			want := map[string]any{
				"model_name": "iris", "model_version": "2", "id": "r1",
				"outputs": []any{
					map[string]any{"name": "label", "datatype": "INT64", "shape": []any{3.0}, "data": []any{0.0, 1.0, 2.0}},
					map[string]any{"name": "probabilities", "datatype": "FP32", "shape": []any{3.0, 3.0}},
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInferProbabilities(t *testing.T) {
	srv, _ := testServer(t)
	status, got := do(t, srv, "POST", "/v2/models/iris/infer",
		`{"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": `+knownRows+`}], "outputs": [{"name": "probabilities"}]}`, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, got)
	}
	outputs := got["outputs"].([]any)
	if len(outputs) != 1 {
		t.Fatalf("outputs %v, want probabilities alone", outputs)
	}
	data := outputs[0].(map[string]any)["data"].([]any)
	if len(data) != 9 {
		t.Fatalf("%d probabilities, want 9", len(data))
	}
	for i := range 3 {
		sum, best := 0.0, 0
		for c := range 3 {
			p := data[3*i+c].(float64)
			sum += p
			if p > data[3*i+best].(float64) {
				best = c
			}
		}
		if math.Abs(sum-1) > 1e-5 || best != i {
			t.Errorf("row %d: probabilities %v sum to %v, most likely class %d; want 1 and %d", i, data[3*i:3*i+3], sum, best, i)
		}
	}
}

func TestInferRefusesBadRequests(t *testing.T) {
	srv, _ := testServer(t)
	input := func(name, datatype, shape, data string) string {
		return `{"inputs": [{"name": "` + name + `", "datatype": "` + datatype + `", "shape": ` + shape + `, "data": ` + data + `}]}`
	}
	tests := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"not JSON", "/v2/models/iris/infer", `{"inputs": `, 400, "not a V2 inference request"},
		{"no inputs", "/v2/models/iris/infer", `{"inputs": []}`, 400, "0 inputs, want one"},
		{"wrong name", "/v2/models/iris/infer", input("x", "FP32", "[1, 4]", "[1, 2, 3, 4]"), 400, `input "x"`},
		{"wrong datatype", "/v2/models/iris/infer", input("input", "FP64", "[1, 4]", "[1, 2, 3, 4]"), 400, `datatype "FP64", want FP32`},
		{"wrong shape", "/v2/models/iris/infer", input("input", "FP32", "[4]", "[1, 2, 3, 4]"), 400, "input shape [4], want [n,4]"},
		{"three features", "/v2/models/iris/infer", input("input", "FP32", "[1, 3]", "[1, 2, 3]"), 400, "want [n,4]"},
		{"no rows", "/v2/models/iris/infer", input("input", "FP32", "[0, 4]", "[]"), 400, "n at least 1"},
		{"short data", "/v2/models/iris/infer", input("input", "FP32", "[2, 4]", "[1, 2, 3, 4]"), 400, "has 4 numbers, shape [2 4] needs 8"},
		{"strings", "/v2/models/iris/infer", input("input", "FP32", "[1, 4]", `["a", 2, 3, 4]`), 400, "string is not a number"},
		{"no data", "/v2/models/iris/infer", `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4]}]}`, 400, "want an array of numbers"},
		{"unknown output", "/v2/models/iris/infer", `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}], "outputs": [{"name": "logits"}]}`, 400, `unknown output "logits"`},
		{"other model", "/v2/models/wine/infer", input("input", "FP32", "[1, 4]", "[1, 2, 3, 4]"), 404, `model "wine" is not served here`},
		{"other version", "/v2/models/iris/versions/1/infer", input("input", "FP32", "[1, 4]", "[1, 2, 3, 4]"), 404, `no version "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := do(t, srv, "POST", tt.path, tt.body, nil)
			msg, _ := got["error"].(string)
			if status != tt.status || !strings.Contains(msg, tt.want) || len(got) != 1 {
				t.Errorf("%d %v, want %d and {\"error\": \"...%s...\"}", status, got, tt.status, tt.want)
			}
		})
	}
}

func TestMetadataAndHealth(t *testing.T) {
	srv, _ := testServer(t)
	tests := []struct {
		path   string
		status int
		want   map[string]any
	}{
		{"/v2/health/live", 200, map[string]any{"live": true}},
		{"/v2/health/ready", 200, map[string]any{"ready": true}},
		{"/v2/models/iris/ready", 200, map[string]any{"name": "iris", "ready": true}},
		{"/v2/models/iris/versions/2/ready", 200, map[string]any{"name": "iris", "ready": true}},
		{"/v2", 200, map[string]any{"name": "jobgate-modelserver", "version": "1", "extensions": []any{}}},
		{"/v2/models/iris", 200, map[string]any{
			"name": "iris", "versions": []any{"2"}, "platform": "jobgate_softmax_regression",
			"inputs": []any{map[string]any{"name": "input", "datatype": "FP32", "shape": []any{-1.0, 4.0}}},
			"outputs": []any{
				map[string]any{"name": "label", "datatype": "INT64", "shape": []any{-1.0}},
				map[string]any{"name": "probabilities", "datatype": "FP32", "shape": []any{-1.0, 3.0}},
			},
			"parameters": map[string]any{
				"features": []any{"sepal_length", "sepal_width", "petal_length", "petal_width"},
				"classes":  []any{"setosa", "versicolor", "virginica"},
			},
		}},
		{"/v2/models/wine", 404, map[string]any{"error": `model "wine" is not served here (this server serves "iris")`}},
		{"/v2/nothing", 404, map[string]any{"error": "no such endpoint: GET /v2/nothing"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, got := do(t, srv, "GET", tt.path, "", nil)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInferIsTraced: an infer with a traceparent makes one server span, a
// child of the caller's span in its trace; health probes and metadata make
// none.
func TestInferIsTraced(t *testing.T) {
	srv, rec := testServer(t)
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/v2/models/iris", "/v2"} {
		do(t, srv, "GET", path, "", nil)
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Fatalf("%d spans for health and metadata, want none: %v", len(spans), spans[0].Name())
	}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	status, got := do(t, srv, "POST", "/v2/models/iris/infer",
		`{"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": `+knownRows+`}]}`,
		http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, got)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans for one infer, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID || !s.Parent().IsRemote() {
		t.Errorf("span in trace %s under %s, want trace %s under the caller's span %s", s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, parentID)
	}
	if s.Name() != "POST /v2/models/{name}/infer" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want a server span named POST /v2/models/{name}/infer", s.Name(), s.SpanKind())
	}
	attrs := map[string]string{}
	for _, a := range s.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["model.name"] != "iris" || attrs["model.version"] != "2" || attrs["infer.rows"] != "3" {
		t.Errorf("span attributes %v, want model.name iris, model.version 2, infer.rows 3", attrs)
	}
}

func TestLoadModelRefusesBadModels(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", `{`, "decode model"},
		{"other kind", `{"kind": "tree"}`, `kind "tree", want softmax_regression`},
		{"short weights", strings.Replace(string(good), `"biases": [`, `"biases": [0, `, 1), "do not fit together"},
		{"zero std", `{"kind": "softmax_regression", "classes": ["a"], "mean": [0], "std": [0], "weights": [[1]], "biases": [0]}`, "standard deviation 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.json")
			if err := os.WriteFile(path, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadModel(path); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadModel: %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := loadModel(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "read model") {
		t.Errorf("loadModel of a missing file: %v", err)
	}
}
