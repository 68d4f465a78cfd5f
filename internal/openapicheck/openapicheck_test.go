package openapicheck

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is a Sink that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestWrap: what the document describes passes, what it does not is
// reported with the method, path and status, and the handler still reads
// the whole body.
func TestWrap(t *testing.T) {
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		answerType, answer              string
		mentions                        string // "" when it must pass
	}{
		{name: "a described answer", method: "GET", path: "/v1/jobs/j1", status: 200, answerType: "application/json", answer: `{"id":"j1","status":"queued"}`},
		{name: "an error answer", method: "GET", path: "/v1/jobs/j1", status: 404, answerType: "application/json", answer: `{"error":{"code":"not_found","message":"no job"}}`},
		{name: "a field the type lacks", method: "GET", path: "/v1/jobs/j1", status: 200, answerType: "application/json", answer: `{"id":"j1","colour":"red"}`, mentions: "GET /v1/jobs/j1 -> 200: the answer does not match"},
		{name: "a status not documented", method: "GET", path: "/v1/jobs/j1", status: 418, answerType: "application/json", answer: `{}`, mentions: "status is not supported"},
		{name: "an unknown route", method: "GET", path: "/v1/nothing-here", status: 200, answerType: "application/json", answer: `{}`, mentions: "not in the OpenAPI document"},
		{name: "an unknown route answered 404", method: "GET", path: "/v1/nothing-here", status: 404, answerType: "application/json", answer: `{"error":{"code":"not_found","message":"no route"}}`},
		{name: "a refused request the gateway took", method: "POST", path: "/v1/secrets", ctype: "application/json", body: `{"name":"a","value":1}`, status: 201, answerType: "application/json", answer: `{"name":"a"}`, mentions: "accepted a request the document refuses"},
		{name: "a refused request the gateway refused", method: "POST", path: "/v1/secrets", ctype: "application/json", body: `{"name":"a","value":1}`, status: 422, answerType: "application/json", answer: `{"error":{"code":"invalid_request","message":"value must be a string"}}`},
		{name: "a log stream", method: "GET", path: "/v1/jobs/j1/logs?follow=1", status: 200, answerType: "text/plain; charset=utf-8", answer: "line 1\nline 2\n"},
		{name: "a stream of a type not documented", method: "GET", path: "/v1/jobs/j1/logs", status: 200, answerType: "text/event-stream", answer: "data: x\n\n", mentions: `Content-Type "text/event-stream"`},
		{name: "an artifact path with slashes", method: "GET", path: "/v1/jobs/j1/artifacts/a/b/c.txt", status: 200, answerType: "text/plain", answer: "bytes"},
		{name: "an upload of rows", method: "POST", path: "/v1/deployments/d/batch", ctype: "application/x-ndjson", body: "{}\n{}\n", status: 202, answerType: "application/json", answer: `{"id":"b1","status":"queued"}`},
		{name: "outside the API", method: "GET", path: "/v2/models/x", status: 418, answerType: "text/plain", answer: "tea"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			chk, err := New(rec)
			if err != nil {
				t.Fatal(err)
			}
			var read string
			h := chk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				read = string(b)
				w.Header().Set("Content-Type", tt.answerType)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if read != tt.body {
				t.Errorf("the handler read %q, want the body sent, %q", read, tt.body)
			}
			if w.Code != tt.status || w.Body.String() != tt.answer {
				t.Errorf("the client got %d %q, want %d %q", w.Code, w.Body.String(), tt.status, tt.answer)
			}
			got := strings.Join(rec.errs, "\n")
			switch {
			case tt.mentions == "" && got != "":
				t.Errorf("reported %s; want nothing", got)
			case tt.mentions != "" && !strings.Contains(got, tt.mentions):
				t.Errorf("reported %q; want a report mentioning %q", got, tt.mentions)
			}
		})
	}
}
