package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestGatewayTraceInJaeger runs `jobgate gateway` as a real process with
// OTEL_TRACES_EXPORTER=otlp aimed at a real Jaeger, sends it a request with
// a client's traceparent, and reads the trace back from Jaeger's query API:
// the gateway's server span, named by route, is in the client's trace with
// the client's span as parent, from the service jobgate-gateway; a probe
// sent before it with a traceparent of its own left no trace.
func TestGatewayTraceInJaeger(t *testing.T) {
	jaeger := testenv.Jaeger(t)
	redisURL := testenv.Redis(t)
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(os.Args[0], "gateway", "--addr", addr, "--redis-url", redisURL,
		"--artifacts-dir", t.TempDir(), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken,
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+jaeger.OTLPEndpoint,
		"OTEL_BSP_SCHEDULE_DELAY=100") // export every 100 ms, not every 5 s
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	gw := "http://" + addr
	get := func(path, traceparent string) int {
		req, err := http.NewRequest(http.MethodGet, gw+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("traceparent", traceparent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const (
		probeTrace  = "0af7651916cd43dd8448eb211c80319c"
		clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSpan  = "00f067aa0ba902b7"
	)
	testenv.Eventually(t, 20*time.Second, func() bool {
		return get("/readyz", "00-"+probeTrace+"-b7ad6b7169203331-01") == http.StatusOK
	}, "gateway did not become ready")
	if code := get("/v1/jobs/nosuchjob", "00-"+clientTrace+"-"+clientSpan+"-01"); code != http.StatusNotFound {
		t.Fatalf("GET /v1/jobs/nosuchjob: %d, want 404", code)
	}

	tr := jaeger.WaitTrace(t, clientTrace, "GET /v1/jobs/:id")
	s := tr.Span("GET /v1/jobs/:id")
	if s.Parent() != clientSpan || tr.Service(*s) != "jobgate-gateway" || s.Tag("http.route") != "/v1/jobs/:id" || s.Tag("span.kind") != "server" {
		t.Errorf("span %s: parent %q, service %q, http.route %q, kind %q; want parent %s (the client's), jobgate-gateway, /v1/jobs/:id, server",
			s.OperationName, s.Parent(), tr.Service(*s), s.Tag("http.route"), s.Tag("span.kind"), clientSpan)
	}
	if len(tr.Spans) != 1 {
		t.Errorf("trace holds %d spans, want the gateway's one", len(tr.Spans))
	}
	// The probes ended before the request above began, so they would have
	// been exported with it or before it.
	if probe, err := jaeger.Trace(probeTrace); probe != nil {
		t.Errorf("a readiness probe was traced: %d spans, first %q", len(probe.Spans), probe.Spans[0].OperationName)
	} else {
		t.Logf("probe trace: %v (as it should be)", err)
	}
}
