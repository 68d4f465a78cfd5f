package scoring

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

func tracedEnv(t *testing.T, cfg Config) (*env, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	cfg.TracerProvider, cfg.Propagator = tp, propagation.TraceContext{}
	return newEnv(t, cfg), exp
}

func spanNamed(spans tracetest.SpanStubs, name string, kind trace.SpanKind) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name && spans[i].SpanKind == kind {
			return &spans[i]
		}
	}
	return nil
}

func hasEvent(s *tracetest.SpanStub, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

// TestTraceSpans: an infer request makes a server span named by its route
// in the client's trace, and a client span for the upstream call under
// it, whose traceparent the replica receives; health is not traced.
func TestTraceSpans(t *testing.T) {
	e, exp := tracedEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	var mu sync.Mutex
	var got string
	e.addReplica("default", "iris", "iris", 1, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("traceparent")
		mu.Unlock()
		answer("a")(w, r)
	})
	e.waitReady("default", "iris", 1)
	for _, p := range []string{"/v2/health/live", "/v2/health/ready"} {
		resp, err := http.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, b := e.infer(adminToken, inferPath, []byte("{}"), http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	// The server span ends just after the answer is written.
	testenv.Eventually(t, 5*time.Second, func() bool { return len(exp.GetSpans()) >= 2 }, "spans: %v", names(exp.GetSpans()))
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans %v; want 2 (server, client; none for health)", len(spans), names(spans))
	}
	srv := spanNamed(spans, "POST /v2/models/{name}/infer", trace.SpanKindServer)
	cli := spanNamed(spans, "POST /v2/models/{name}/infer", trace.SpanKindClient)
	if srv == nil || cli == nil {
		t.Fatalf("spans %v; want a server and a client span named POST /v2/models/{name}/infer", names(spans))
	}
	if srv.SpanContext.TraceID().String() != traceID || srv.Parent.SpanID().String() != parentID {
		t.Fatalf("server span in trace %s under %s; want %s under %s", srv.SpanContext.TraceID(), srv.Parent.SpanID(), traceID, parentID)
	}
	if cli.SpanContext.TraceID() != srv.SpanContext.TraceID() || cli.Parent.SpanID() != srv.SpanContext.SpanID() {
		t.Fatalf("client span %s under %s; want under the server span %s", cli.SpanContext.SpanID(), cli.Parent.SpanID(), srv.SpanContext.SpanID())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "00-" + traceID + "-" + cli.SpanContext.SpanID().String() + "-01"; got != want {
		t.Fatalf("replica got traceparent %q; want %q (the client span's)", got, want)
	}
}

// TestTraceEvents: a retry and an activator hold are events of the
// request's server span.
func TestTraceEvents(t *testing.T) {
	t.Run("retry", func(t *testing.T) {
		e, exp := tracedEnv(t, Config{})
		e.deploy("default", "iris", nil, tgt("iris", 1, 100))
		dead := e.addReplica("default", "iris", "iris", 1, answer("dead"))
		e.addReplica("default", "iris", "iris", 1, answer("good"))
		e.waitReady("default", "iris", 2)
		dead.srv.Close()
		for i := 0; e.r.retried.Load() == 0; i++ {
			if i == 50 {
				t.Fatal("50 requests and no retry")
			}
			if resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil); resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		}
		testenv.Eventually(t, 5*time.Second, func() bool {
			for _, s := range exp.GetSpans() {
				if s.SpanKind == trace.SpanKindServer && hasEvent(&s, "retry") {
					return true
				}
			}
			return false
		}, "no server span with a retry event: %v", names(exp.GetSpans()))
	})
	t.Run("hold", func(t *testing.T) {
		e, exp := tracedEnv(t, Config{})
		e.deploy("default", "iris", &api.Autoscale{Min: 0, Max: 1}, tgt("iris", 1, 100))
		e.waitReady("default", "iris", 0)
		done := make(chan int, 1)
		go func() {
			resp, _ := e.infer(adminToken, inferPath, []byte("{}"), nil)
			done <- resp.StatusCode
		}()
		testenv.Eventually(t, 5*time.Second, func() bool {
			s := e.r.table.Load().deps[depKey{"default", "iris"}].stats
			return s.waiting.Load() == 1
		}, "the request was not held")
		e.addReplica("default", "iris", "iris", 1, answer("cold"))
		if code := <-done; code != 200 {
			t.Fatalf("held request: %d", code)
		}
		testenv.Eventually(t, 5*time.Second, func() bool {
			return spanNamed(exp.GetSpans(), "POST /v2/models/{name}/infer", trace.SpanKindServer) != nil
		}, "no server span")
		srv := spanNamed(exp.GetSpans(), "POST /v2/models/{name}/infer", trace.SpanKindServer)
		if !hasEvent(srv, "activator.hold") || !hasEvent(srv, "activator.release") {
			t.Fatalf("server span %+v; want activator.hold and activator.release events", srv)
		}
	})
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind.String()+" "+s.Name)
	}
	return strings.Join(out, ", ")
}
