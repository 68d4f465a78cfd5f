package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// brokenArtifacts is an artifact store whose every call fails with err.
type brokenArtifacts struct{ err error }

func (b brokenArtifacts) Put(context.Context, string, io.Reader) error { return b.err }
func (b brokenArtifacts) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, b.err
}
func (b brokenArtifacts) List(context.Context, string) ([]string, error) { return nil, b.err }
func (b brokenArtifacts) Stat(context.Context, string) (artifact.Info, error) {
	return artifact.Info{}, b.err
}

var _ artifact.Store = brokenArtifacts{}

// TestOnlyAnUnreachableRedisIs503: a request that fails because Redis does
// not answer gets 503 with Retry-After; one that fails on a network error,
// a cut-off read or a timeout of anything else (here the artifact store) is
// our fault: 500, and no promise that a retry helps.
func TestOnlyAnUnreachableRedisIs503(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &j)
	tests := []struct {
		name       string
		artErr     error
		want       int
		retryAfter bool
	}{
		{name: "artifact store refuses the connection", artErr: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, want: 500},
		{name: "artifact store read cut off", artErr: io.EOF, want: 500},
		{name: "artifact store unexpected EOF", artErr: fmt.Errorf("read listing: %w", io.ErrUnexpectedEOF), want: 500},
		{name: "artifact store times out", artErr: fmt.Errorf("list: %w", context.DeadlineExceeded), want: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.g.artifacts = brokenArtifacts{err: tt.artErr}
			req, _ := http.NewRequest("GET", f.ts.URL+"/v1/jobs/"+j.ID+"/artifacts", nil)
			req.Header.Set("Authorization", "Bearer "+systemToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body api.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.want || body.Error.Code != api.CodeInternal || resp.Header.Get("Retry-After") != "" {
				t.Errorf("got %d %+v, Retry-After %q; want %d internal without Retry-After", resp.StatusCode, body.Error, resp.Header.Get("Retry-After"), tt.want)
			}
		})
	}

	t.Run("redis stopped", func(t *testing.T) {
		svc := testenv.RedisIn(t, t.TempDir())
		opts, err := redis.ParseURL(svc.URL)
		if err != nil {
			t.Fatal(err)
		}
		opts.MaxRetries = -1
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		g, _ := newGateway(t, Config{AdminToken: systemToken}, control.Config{}, rdb, store.New(rdb, store.Config{}), nil, nil)
		ts := httptest.NewServer(checked(t, g))
		t.Cleanup(ts.Close)
		svc.Stop()
		req, _ := http.NewRequest("POST", ts.URL+"/v1/jobs", strings.NewReader(jobBody))
		req.Header.Set("Authorization", "Bearer "+systemToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != api.CodeUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("got %d %+v, Retry-After %q; want 503 unavailable with Retry-After", resp.StatusCode, body.Error, resp.Header.Get("Retry-After"))
		}
	})
}

// TestErrorHandlerStatus maps errors to status codes in the one place that
// does: only what the store marked as Redis being away is a 503.
func TestErrorHandlerStatus(t *testing.T) {
	t.Parallel()
	g := &Gateway{logger: slog.New(slog.DiscardHandler)}
	e := echo.New()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "store: redis away", err: fmt.Errorf("get job: %w", fmt.Errorf("%w: %w", store.ErrUnavailable, io.EOF)), want: 503},
		{name: "bare net error", err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, want: 500},
		{name: "bare EOF", err: io.EOF, want: 500},
		{name: "bare deadline", err: context.DeadlineExceeded, want: 500},
		{name: "not found", err: store.ErrNotFound, want: 404},
		{name: "conflict", err: fmt.Errorf("finish: %w", store.ErrConflict), want: 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest("GET", "/v1/jobs/x", nil), rec)
			g.errorHandler(tt.err, c)
			if rec.Code != tt.want {
				t.Errorf("%v: %d, want %d", tt.err, rec.Code, tt.want)
			}
		})
	}
}
