package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// tracedFixture is a gateway with a tracer provider that records into an
// in-memory exporter, served over HTTP.
func tracedFixture(t *testing.T) (*httptest.Server, *tracetest.InMemoryExporter) {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	g, _ := newGateway(t, Config{AdminToken: systemToken, TracerProvider: tp}, control.Config{}, rdb, st, nil, nil)
	if err := st.EnsureWorkspace(t.Context(), api.Workspace{Name: DefaultWorkspace}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, g))
	t.Cleanup(ts.Close)
	return ts, exp
}

// TestServerSpansByRoute: with a tracer provider, every request but the
// probes has one server span named by method and echo route, which
// continues the client's W3C traceparent (same trace, the client's span as
// parent); a request no route matches is named by its method alone.
func TestServerSpansByRoute(t *testing.T) {
	ts, exp := tracedFixture(t)
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent  = "00f067aa0ba902b7"
	)
	for _, tc := range []struct {
		method, path, traceparent string
		code                      int
		// name is the span's; "" means no span.
		name, route string
	}{
		{method: "GET", path: "/v1/jobs/nosuchjob", traceparent: "00-" + traceID + "-" + parent + "-01", code: 404, name: "GET /v1/jobs/:id", route: "/v1/jobs/:id"},
		{method: "GET", path: "/v1/models/iris/versions/2", code: 404, name: "GET /v1/models/:name/versions/:v", route: "/v1/models/:name/versions/:v"},
		{method: "GET", path: "/v1/jobs", code: 200, name: "GET /v1/jobs", route: "/v1/jobs"},
		{method: "GET", path: "/v1/no/such/route", code: 404, name: "GET"},
		{method: "GET", path: "/healthz", code: 200},
		{method: "GET", path: "/readyz", code: 200},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			exp.Reset()
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+systemToken)
			if tc.traceparent != "" {
				req.Header.Set("traceparent", tc.traceparent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) // so the connection is reused (see below)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			// The span ends as the handler returns to the server, which may
			// be after the client has the answer. For a probe, a traced
			// request after it on the same connection (served once the
			// probe's handler has returned) says when to look.
			if tc.name == "" {
				resp, err := http.Get(ts.URL + "/v1/workers")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			testenv.Eventually(t, 5*time.Second, func() bool { return len(exp.GetSpans()) > 0 }, "no span for %s %s", tc.method, tc.path)
			spans := exp.GetSpans()
			if tc.name == "" {
				if len(spans) != 1 || spans[0].Name != "GET /v1/workers" {
					t.Fatalf("probe traced: spans %v; want only the next request's, GET /v1/workers", spanNames(spans))
				}
				return
			}
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != tc.name || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span %q kind %v, want %q server", s.Name, s.SpanKind, tc.name)
			}
			if got := attr(s.Attributes, semconv.HTTPRouteKey); got != tc.route {
				t.Errorf("http.route %q, want %q", got, tc.route)
			}
			if tc.traceparent != "" {
				if s.SpanContext.TraceID().String() != traceID || s.Parent.SpanID().String() != parent || !s.Parent.IsRemote() {
					t.Errorf("span trace %s parent %s (remote %v), want trace %s parent %s from the client's traceparent",
						s.SpanContext.TraceID(), s.Parent.SpanID(), s.Parent.IsRemote(), traceID, parent)
				}
			} else if s.Parent.IsValid() {
				t.Errorf("span has parent %s without a traceparent", s.Parent.SpanID())
			}
		})
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

func attr(kvs []attribute.KeyValue, key attribute.Key) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value.AsString()
		}
	}
	return ""
}

// TestNoTracerProviderIsEcho: without a provider the gateway's handler is
// echo itself, nothing wrapped around it (tracing off costs nothing).
func TestNoTracerProviderIsEcho(t *testing.T) {
	f := newFixture(t)
	if h, ok := f.g.Handler().(http.Handler); !ok || h != http.Handler(f.g.echo) {
		t.Fatalf("handler %T, want the echo instance itself", f.g.Handler())
	}
}

// BenchmarkTracingCost is the handler's cost per request with tracing off
// (no provider: echo alone) and on (every span sampled, exported to
// memory), on a request answered without Redis (401, no token).
func BenchmarkTracingCost(b *testing.B) {
	rdb := testenv.RedisClient(b, testenv.Redis(b))
	st := store.New(rdb, store.Config{})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	for _, bc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"off", nil}, {"on", tp}} {
		b.Run(bc.name, func(b *testing.B) {
			g, _ := newGateway(b, Config{AdminToken: systemToken, TracerProvider: bc.tp}, control.Config{}, rdb, st, nil, nil)
			h := g.Handler()
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/workers", nil))
				if w.Code != http.StatusUnauthorized {
					b.Fatalf("status %d", w.Code)
				}
				exp.Reset()
			}
		})
	}
}
