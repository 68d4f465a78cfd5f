package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// maxBody caps an infer request's body.
const maxBody = 16 << 20

// server answers the V2 REST API for one model.
type server struct {
	model   *Model
	name    string // the name the model is served under
	version string // the registry version it reports
	tracer  trace.TracerProvider
	prop    propagation.TextMapPropagator
}

// handler routes the V2 API. Only infer is traced: otelhttp makes one server
// span per request, named by its route, in the trace of its traceparent.
func (s *server) handler() http.Handler {
	traced := func(h http.HandlerFunc) http.Handler {
		return otelhttp.NewHandler(h, "infer",
			otelhttp.WithTracerProvider(s.tracer),
			otelhttp.WithPropagators(s.prop),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Pattern }))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2", s.serverMetadata)
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	mux.HandleFunc("GET /v2/models/{name}", s.metadata)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}", s.metadata)
	mux.HandleFunc("GET /v2/models/{name}/ready", s.ready)
	mux.HandleFunc("GET /v2/models/{name}/versions/{version}/ready", s.ready)
	mux.Handle("POST /v2/models/{name}/infer", traced(s.infer))
	mux.Handle("POST /v2/models/{name}/versions/{version}/infer", traced(s.infer))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// tensor is one input or output tensor of the V2 JSON API.
type tensor struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int64         `json:"shape"`
	Data     json.RawMessage `json:"data,omitempty"`
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type inferRequest struct {
	ID      string   `json:"id,omitempty"`
	Inputs  []tensor `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs,omitempty"`
}

type outputTensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	Data     any     `json:"data"`
}

type inferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version"`
	ID           string         `json:"id,omitempty"`
	Outputs      []outputTensor `json:"outputs"`
}

func (s *server) serverMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"name": "jobgate-modelserver", "version": "1", "extensions": []string{}})
}

// found checks the request names the served model (and version, if any).
func (s *server) found(w http.ResponseWriter, r *http.Request) bool {
	if name := r.PathValue("name"); name != s.name {
		writeError(w, http.StatusNotFound, "model %q is not served here (this server serves %q)", name, s.name)
		return false
	}
	if v := r.PathValue("version"); v != "" && v != s.version {
		writeError(w, http.StatusNotFound, "model %q has no version %q here (this server serves version %q)", s.name, v, s.version)
		return false
	}
	return true
}

func (s *server) metadata(w http.ResponseWriter, r *http.Request) {
	if !s.found(w, r) {
		return
	}
	nf, nc := int64(len(s.model.Mean)), int64(len(s.model.Classes))
	writeJSON(w, http.StatusOK, map[string]any{
		"name":     s.name,
		"versions": []string{s.version},
		"platform": "jobgate_softmax_regression",
		"inputs":   []tensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, nf}}},
		"outputs": []tensorMetadata{
			{Name: "label", Datatype: "INT64", Shape: []int64{-1}},
			{Name: "probabilities", Datatype: "FP32", Shape: []int64{-1, nc}},
		},
		"parameters": map[string]any{"features": s.model.Features, "classes": s.model.Classes},
	})
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	if !s.found(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": s.name, "ready": true})
}

func (s *server) infer(w http.ResponseWriter, r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	span.SetAttributes(attribute.String("model.name", s.name), attribute.String("model.version", s.version))
	if !s.found(w, r) {
		return
	}
	if r.Header.Get("Inference-Header-Content-Length") != "" {
		writeError(w, http.StatusBadRequest, "the binary tensor data extension is not supported: send JSON")
		return
	}
	var req inferRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBody)
			return
		}
		writeError(w, http.StatusBadRequest, "request body is not a V2 inference request: %v", err)
		return
	}
	rows, err := s.rows(req.Inputs)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	want := map[string]bool{"label": true, "probabilities": true}
	if len(req.Outputs) > 0 {
		want = map[string]bool{}
		for _, o := range req.Outputs {
			if o.Name != "label" && o.Name != "probabilities" {
				writeError(w, http.StatusBadRequest, "unknown output %q: the outputs are label and probabilities", o.Name)
				return
			}
			want[o.Name] = true
		}
	}

	nc := len(s.model.Classes)
	labels := make([]int64, len(rows))
	probs := make([]float32, 0, len(rows)*nc)
	for i, x := range rows {
		p := s.model.predict(x)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
			probs = append(probs, float32(p[c]))
		}
		labels[i] = int64(best)
	}
	span.SetAttributes(attribute.Int("infer.rows", len(rows)))
	resp := inferResponse{ModelName: s.name, ModelVersion: s.version, ID: req.ID, Outputs: []outputTensor{}}
	n := int64(len(rows))
	if want["label"] {
		resp.Outputs = append(resp.Outputs, outputTensor{Name: "label", Datatype: "INT64", Shape: []int64{n}, Data: labels})
	}
	if want["probabilities"] {
		resp.Outputs = append(resp.Outputs, outputTensor{Name: "probabilities", Datatype: "FP32", Shape: []int64{n, int64(nc)}, Data: probs})
	}
	writeJSON(w, http.StatusOK, resp)
}

// rows checks the inputs: exactly one, "input", FP32, shape [n,features]
// with n at least 1, and n×features numbers in data, flat or nested.
func (s *server) rows(inputs []tensor) ([][]float64, error) {
	nf := len(s.model.Mean)
	if len(inputs) != 1 {
		return nil, fmt.Errorf("%d inputs, want one: input", len(inputs))
	}
	in := inputs[0]
	switch {
	case in.Name != "input":
		return nil, fmt.Errorf("input %q: the model's input is named input", in.Name)
	case in.Datatype != "FP32":
		return nil, fmt.Errorf("input datatype %q, want FP32", in.Datatype)
	case len(in.Shape) != 2 || in.Shape[0] < 1 || in.Shape[1] != int64(nf):
		return nil, fmt.Errorf("input shape %v, want [n,%d] with n at least 1", in.Shape, nf)
	case in.Shape[0] > maxBody/int64(nf):
		return nil, fmt.Errorf("input shape %v: too many rows", in.Shape)
	}
	if in.Data == nil {
		return nil, errors.New("input data: want an array of numbers, flat or nested")
	}
	// Room for what the data can hold (a number and its comma take two
	// bytes at least), not for what the shape claims.
	flat, err := numbers(in.Data, min(in.Shape[0]*int64(nf), int64(len(in.Data)/2+1)))
	if err != nil {
		return nil, fmt.Errorf("input data: %w", err)
	}
	if int64(len(flat)) != in.Shape[0]*int64(nf) {
		return nil, fmt.Errorf("input data has %d numbers, shape %v needs %d", len(flat), in.Shape, in.Shape[0]*int64(nf))
	}
	// The rows are slices of flat, each number made FP32, as declared.
	rows := make([][]float64, in.Shape[0])
	for i := range rows {
		rows[i] = flat[i*nf : (i+1)*nf : (i+1)*nf]
		for j, v := range rows[i] {
			f := float32(v)
			if math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("input data: %v is beyond FP32's range", v)
			}
			rows[i][j] = float64(f)
		}
	}
	return rows, nil
}

// numbers reads data, an array of numbers flat or nested, into one flat
// slice. The flat and the [n][features] forms decode straight into
// float64s (in room, what they can need); only another nesting goes through decoded tokens, one at a
// time (a generic decode into []any took some 50 bytes of heap a number).
func numbers(data json.RawMessage, room int64) ([]float64, error) {
	flat := make([]float64, 0, room)
	if json.Unmarshal(data, &flat) == nil {
		return flat, nil
	}
	var nested [][]float64
	if json.Unmarshal(data, &nested) == nil {
		flat = flat[:0] // the failed decode above may have left some numbers
		for _, row := range nested {
			flat = append(flat, row...)
		}
		return flat, nil
	}
	flat = flat[:0]
	dec := json.NewDecoder(bytes.NewReader(data))
	for depth := 0; ; {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return flat, nil
		}
		if err != nil {
			return nil, errors.New("want an array of numbers, flat or nested")
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				depth++
			case ']':
				depth--
			default:
				return nil, errors.New("an object is not a number")
			}
		case float64:
			if depth == 0 {
				return nil, errors.New("want an array of numbers, flat or nested")
			}
			flat = append(flat, v)
		case nil:
			return nil, errors.New("null is not a number")
		default:
			return nil, fmt.Errorf("%T is not a number", v)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in V2's error shape, {"error": "..."}.
func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}
