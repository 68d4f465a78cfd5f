package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

const testToken = "s3cret"

// newServer serves h on a loopback httptest server and returns a Client for
// it that polls quickly, so Wait tests do not dawdle.
func newServer(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return client.New(srv.URL, testToken, client.WithPollInterval(time.Millisecond, 5*time.Millisecond))
}

// writeJSON answers like the gateway does.
func writeJSON(t *testing.T, w http.ResponseWriter, status int, v any) {
	t.Helper()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Errorf("encode response: %v", err)
	}
}

func testJob(id string, status api.Status) api.Job {
	return api.Job{
		ID:         id,
		Workspace:  "default",
		Name:       "train",
		Experiment: "mnist",
		Status:     status,
		Attempt:    1,
		CreatedAt:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Spec:       api.JobSpec{Name: "train", Image: "localhost/x:latest", Command: []string{"train", "--lr", "0.1"}},
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	spec := api.JobSpec{
		Name:           "train",
		Experiment:     "mnist",
		Image:          "localhost/x:latest",
		Command:        []string{"train", "--epochs", "3"},
		Env:            map[string]string{"SEED": "1"},
		Resources:      api.Resources{CPUs: 0.5, MemoryMB: 512, GPUs: 1},
		TimeoutSeconds: 60,
		Priority:       api.PriorityHigh,
	}
	tests := []struct {
		name    string
		key     string
		wantKey []string
	}{
		{name: "with idempotency key", key: "k-123", wantKey: []string{"k-123"}},
		{name: "without idempotency key", key: "", wantKey: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/jobs" {
					t.Errorf("request = %s %s, want POST /v1/jobs", r.Method, r.URL.Path)
				}
				if got, want := r.Header.Get("Authorization"), "Bearer "+testToken; got != want {
					t.Errorf("Authorization = %q, want %q", got, want)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", got)
				}
				if diff := cmp.Diff(tt.wantKey, r.Header.Values("Idempotency-Key")); diff != "" {
					t.Errorf("Idempotency-Key (-want +got):\n%s", diff)
				}
				dec := json.NewDecoder(r.Body)
				dec.DisallowUnknownFields()
				var got api.JobSpec
				if err := dec.Decode(&got); err != nil {
					t.Errorf("decode body: %v", err)
				}
				if diff := cmp.Diff(spec, got); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				job := testJob("j1", api.StatusQueued)
				job.Spec = got
				writeJSON(t, w, http.StatusCreated, job)
			})
			job, err := c.Submit(context.Background(), spec, tt.key)
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			if job.ID != "j1" || job.Status != api.StatusQueued {
				t.Errorf("job = %s %s, want j1 queued", job.ID, job.Status)
			}
			if diff := cmp.Diff(spec, job.Spec); diff != "" {
				t.Errorf("returned spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGetAndCancelPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		call        func(*client.Client) (*api.Job, error)
		wantMethod  string
		wantRawPath string
	}{
		{
			name:        "get",
			call:        func(c *client.Client) (*api.Job, error) { return c.Get(context.Background(), "01J0ABC") },
			wantMethod:  http.MethodGet,
			wantRawPath: "/v1/jobs/01J0ABC",
		},
		{
			name:        "get escapes the id into one segment",
			call:        func(c *client.Client) (*api.Job, error) { return c.Get(context.Background(), "a/b c?") },
			wantMethod:  http.MethodGet,
			wantRawPath: "/v1/jobs/a%2Fb%20c%3F",
		},
		{
			name:        "cancel",
			call:        func(c *client.Client) (*api.Job, error) { return c.Cancel(context.Background(), "01J0ABC") },
			wantMethod:  http.MethodPost,
			wantRawPath: "/v1/jobs/01J0ABC/cancel",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := testJob("01J0ABC", api.StatusRunning)
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != tt.wantMethod || r.URL.EscapedPath() != tt.wantRawPath {
					t.Errorf("request = %s %s, want %s %s", r.Method, r.URL.EscapedPath(), tt.wantMethod, tt.wantRawPath)
				}
				if r.URL.RawQuery != "" {
					t.Errorf("query = %q, want none", r.URL.RawQuery)
				}
				if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
					t.Errorf("Authorization = %q", got)
				}
				writeJSON(t, w, http.StatusOK, want)
			})
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("job (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEmptyIDIsLocalError(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	})
	if _, err := c.Get(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "job id is empty") {
		t.Errorf("Get(\"\") error = %v, want job id is empty", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      client.ListOptions
		wantQuery string
	}{
		{name: "no options", opts: client.ListOptions{}, wantQuery: ""},
		{
			name:      "all options, encoded",
			opts:      client.ListOptions{Status: api.StatusFailed, Experiment: "a&b c", Limit: 20, Cursor: "x/y=="},
			wantQuery: "cursor=x%2Fy%3D%3D&experiment=a%26b+c&limit=20&status=failed",
		},
		{name: "limit only", opts: client.ListOptions{Limit: 5}, wantQuery: "limit=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := api.JobList{
				Jobs:       []api.Job{testJob("j2", api.StatusFailed), testJob("j1", api.StatusFailed)},
				NextCursor: "next",
			}
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/v1/jobs" {
					t.Errorf("request = %s %s, want GET /v1/jobs", r.Method, r.URL.Path)
				}
				if r.URL.RawQuery != tt.wantQuery {
					t.Errorf("query = %q, want %q", r.URL.RawQuery, tt.wantQuery)
				}
				writeJSON(t, w, http.StatusOK, want)
			})
			got, err := c.List(context.Background(), tt.opts)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        client.Error
		wantString  string
	}{
		{
			name:        "jobgate error body",
			status:      http.StatusUnprocessableEntity,
			contentType: "application/json",
			body:        `{"error":{"code":"invalid_spec","message":"timeout_seconds must be > 0"}}`,
			want:        client.Error{StatusCode: 422, Code: "invalid_spec", Message: "timeout_seconds must be > 0"},
			wantString:  "invalid_spec: timeout_seconds must be > 0 (HTTP 422)",
		},
		{
			name:        "proxy html page",
			status:      http.StatusBadGateway,
			contentType: "text/html",
			body:        "<html>\n  <body>upstream   down</body>\n</html>\n",
			want:        client.Error{StatusCode: 502, Message: "Bad Gateway: <html> <body>upstream down</body> </html>"},
			wantString:  "Bad Gateway: <html> <body>upstream down</body> </html> (HTTP 502)",
		},
		{
			name:       "empty body",
			status:     http.StatusServiceUnavailable,
			want:       client.Error{StatusCode: 503, Message: "Service Unavailable"},
			wantString: "Service Unavailable (HTTP 503)",
		},
		{
			name:        "json that is not an error body",
			status:      http.StatusNotFound,
			contentType: "application/json",
			body:        `{"message":"no route"}`,
			want:        client.Error{StatusCode: 404, Message: `Not Found: {"message":"no route"}`},
			wantString:  `Not Found: {"message":"no route"} (HTTP 404)`,
		},
		{
			name:        "long body is cut",
			status:      http.StatusInternalServerError,
			contentType: "text/plain",
			body:        strings.Repeat("x", 1000),
			want:        client.Error{StatusCode: 500, Message: "Internal Server Error: " + strings.Repeat("x", 200) + "..."},
			wantString:  "Internal Server Error: " + strings.Repeat("x", 200) + "... (HTTP 500)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := c.Get(context.Background(), "j1")
			var got *client.Error
			if !errors.As(err, &got) {
				t.Fatalf("error = %v (%T), want *client.Error", err, err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("Error (-want +got):\n%s", diff)
			}
			if got := err.Error(); got != tt.wantString {
				t.Errorf("Error() = %q, want %q", got, tt.wantString)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  client.Error
		want string
	}{
		{name: "code and message", err: client.Error{StatusCode: 409, Code: "conflict", Message: "job ended"}, want: "conflict: job ended (HTTP 409)"},
		{name: "code only", err: client.Error{StatusCode: 401, Code: "unauthorized"}, want: "unauthorized (HTTP 401)"},
		{name: "nothing but a status", err: client.Error{StatusCode: 500}, want: "(HTTP 500)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoTokenSendsNoAuthorization(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := r.Header["Authorization"]; ok {
			t.Errorf("Authorization = %q, want none", v)
		}
		writeJSON(t, w, http.StatusOK, testJob("j1", api.StatusQueued))
	}))
	t.Cleanup(srv.Close)
	if _, err := client.New(srv.URL, "").Get(context.Background(), "j1"); err != nil {
		t.Fatalf("Get: %v", err)
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		writeJSON(t, w, http.StatusOK, testJob("j1", api.StatusQueued))
	}))
	t.Cleanup(srv.Close)

	// A path prefix (a gateway behind a reverse proxy) and a trailing slash are kept and trimmed.
	if _, err := client.New(srv.URL+"/jobgate/", testToken).Get(context.Background(), "j1"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := "/jobgate/v1/jobs/j1"; gotPath != want {
		t.Errorf("path = %q, want %q", gotPath, want)
	}

	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://host/?x=1"} {
		_, err := client.New(bad, testToken).Get(context.Background(), "j1")
		if err == nil || !strings.Contains(err.Error(), "invalid gateway URL") {
			t.Errorf("New(%q).Get error = %v, want invalid gateway URL", bad, err)
		}
	}
}

func TestWithHTTPClient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Test"); got != "yes" {
			t.Errorf("X-Test = %q, want yes (the custom transport was not used)", got)
		}
		writeJSON(t, w, http.StatusOK, testJob("j1", api.StatusQueued))
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("X-Test", "yes")
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := client.New(srv.URL, testToken, client.WithHTTPClient(hc)).Get(context.Background(), "j1"); err != nil {
		t.Fatalf("Get: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestLogs(t *testing.T) {
	t.Parallel()
	const log = "epoch 1 loss=0.9\nepoch 2 loss=0.5\n"
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/jobs/j1/logs" || r.URL.RawQuery != "" {
			t.Errorf("request = %s %s, want GET /v1/jobs/j1/logs with no query", r.Method, r.URL)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("Authorization = %q", got)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, log)
	})
	rc, err := c.Logs(context.Background(), "j1", false)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read logs: %v", err)
	}
	if string(got) != log {
		t.Errorf("logs = %q, want %q", got, log)
	}
}

// TestLogsFollowStreams checks that lines arrive while the response is still
// open: the server writes the second line only after the client has read the
// first, which would deadlock if the client buffered the whole response.
func TestLogsFollowStreams(t *testing.T) {
	t.Parallel()
	gotFirst := make(chan struct{})
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/jobs/j1/logs" || r.URL.Query().Get("follow") != "true" {
			t.Errorf("request = %s, want /v1/jobs/j1/logs?follow=true", r.URL)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "line 1\n")
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "line 2\n")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx, "j1", true)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			lines = append(lines, line)
			if len(lines) == 1 {
				close(gotFirst)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if diff := cmp.Diff([]string{"line 1\n", "line 2\n"}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestLogsError(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, http.StatusNotFound, api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "job j9 not found"}})
	})
	_, err := c.Logs(context.Background(), "j9", true)
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Code != "not_found" {
		t.Fatalf("Logs error = %v, want a 404 not_found *client.Error", err)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	states := []api.Status{api.StatusQueued, api.StatusRunning, api.StatusRunning, api.StatusFailed}
	polls := 0
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/jobs/j1" {
			t.Errorf("request = %s %s, want GET /v1/jobs/j1", r.Method, r.URL.Path)
		}
		mu.Lock()
		st := states[min(polls, len(states)-1)]
		polls++
		mu.Unlock()
		job := testJob("j1", st)
		if st == api.StatusFailed {
			code := 3
			job.ExitCode, job.Reason = &code, api.ReasonExitCode
		}
		writeJSON(t, w, http.StatusOK, job)
	})
	job, err := c.Wait(context.Background(), "j1")
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if job.Status != api.StatusFailed || job.ExitCode == nil || *job.ExitCode != 3 {
		t.Errorf("job = %+v, want failed with exit code 3", job)
	}
	mu.Lock()
	defer mu.Unlock()
	if polls != len(states) {
		t.Errorf("polls = %d, want %d (Wait must stop at the first terminal state)", polls, len(states))
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		// The job never ends; the caller gives up after seeing it once.
		cancel()
		writeJSON(t, w, http.StatusOK, testJob("j1", api.StatusRunning))
	})
	job, err := c.Wait(ctx, "j1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, %v; want context.Canceled", job, err)
	}
}

func TestWaitReturnsGetError(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, http.StatusUnauthorized, api.ErrorBody{Error: api.ErrorDetail{Code: "unauthorized", Message: "bad token"}})
	})
	_, err := c.Wait(context.Background(), "j1")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Wait error = %v, want a 401 *client.Error", err)
	}
}

func TestTransportError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := client.New(url, testToken).Get(context.Background(), "j1")
	if err == nil {
		t.Fatal("Get succeeded against a closed server")
	}
	var e *client.Error
	if errors.As(err, &e) {
		t.Errorf("error = %v, want a transport error, not *client.Error", err)
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name the URL %q", err, url)
	}
}
