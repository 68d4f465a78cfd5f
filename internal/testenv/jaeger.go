package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/devenv"
)

// JaegerVersion is the Jaeger the harness runs: its cmd/jaeger, the
// OpenTelemetry-collector-based all-in-one, pinned by tools/jaeger/go.mod
// (a module of its own, so Jaeger's dependencies do not move jobgate's).
const JaegerVersion = "v1.76.0"

// JaegerBinary is where the built Jaeger is kept, outside the clone, and
// reused while it is there: $JOBGATE_TEST_CACHE, else
// $XDG_CACHE_HOME/jobgate-test, else ~/.cache/jobgate-test, then
// jaeger-v1.76.0. .ci/jaeger.sh builds it (make test runs it first).
func JaegerBinary() string {
	cache := os.Getenv("JOBGATE_TEST_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "jobgate-test")
	}
	return filepath.Join(cache, "jaeger-"+JaegerVersion)
}

var jaegerBuild struct {
	once sync.Once
	err  error
}

// JaegerService is a Jaeger started for one test (Jaeger).
type JaegerService struct {
	// OTLPEndpoint is its OTLP/HTTP receiver, http://127.0.0.1:PORT: what
	// OTEL_EXPORTER_OTLP_ENDPOINT is set to.
	OTLPEndpoint string
	// OTLPGRPCAddr is its OTLP/gRPC receiver, 127.0.0.1:PORT.
	OTLPGRPCAddr string
	// QueryURL is its query API and UI, http://127.0.0.1:PORT
	// (GET /api/traces/{id}).
	QueryURL string
}

// Jaeger starts Jaeger (memory storage, OTLP over HTTP and gRPC, the query
// API) on free loopback ports for this test, waits until it answers, and
// stops it by its PID when the test ends. When the binary is not built
// (JaegerBinary) the test is skipped, saying how to build it, except under
// JOBGATE_INTEGRATION=1, where it is built here (once per test binary)
// and a build that fails fails the test.
func Jaeger(t testing.TB) *JaegerService {
	t.Helper()
	bin := JaegerBinary()
	if _, err := os.Stat(bin); err != nil {
		if !Required() {
			skipOrFail(t, "jaeger %s not built at %s: run .ci/jaeger.sh (builds it once, a few minutes) or make test", JaegerVersion, bin)
		}
		jaegerBuild.once.Do(func() { jaegerBuild.err = buildJaeger() })
		if jaegerBuild.err != nil {
			t.Fatalf("build jaeger: %v", jaegerBuild.err)
		}
	}
	// A port picked free may be taken by another test before Jaeger binds
	// it: then start again, on other ports.
	for try := 1; ; try++ {
		if j := startJaeger(t, bin, try == 3); j != nil {
			return j
		}
	}
}

// startJaeger starts Jaeger on free ports and waits until it is ready; nil
// when it exited at start because a port was taken meanwhile (unless last).
func startJaeger(t testing.TB, bin string, last bool) *JaegerService {
	t.Helper()
	ports := make([]int, 4)
	for i := range ports {
		p, err := devenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	otlpHTTP, otlpGRPC, queryHTTP, queryGRPC := ports[0], ports[1], ports[2], ports[3]
	dir := t.TempDir()
	config := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(jaegerConfig, queryHTTP, queryGRPC, otlpGRPC, otlpHTTP)), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "jaeger.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, "--config", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	// done is received once, here; stop and the wait below use exited.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = <-done; close(exited) }()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	t.Cleanup(stop)
	j := &JaegerService{
		OTLPEndpoint: fmt.Sprintf("http://127.0.0.1:%d", otlpHTTP),
		OTLPGRPCAddr: fmt.Sprintf("127.0.0.1:%d", otlpGRPC),
		QueryURL:     fmt.Sprintf("http://127.0.0.1:%d", queryHTTP),
	}
	// Ready: the query API answers and the OTLP receivers accept
	// connections (the collector starts its receivers last).
	deadline := time.Now().Add(60 * time.Second)
	for !j.ready() {
		select {
		case <-exited:
			stop()
			if tail := logTail(); !last && strings.Contains(tail, "address already in use") {
				t.Logf("jaeger exited at start, a port taken meanwhile; starting it again on others")
				return nil
			}
			t.Fatalf("jaeger exited at start: %v\n%s", exitErr, logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("jaeger did not answer within 60s:\n%s", logTail())
		}
	}
	return j
}

func (j *JaegerService) ready() bool {
	resp, err := http.Get(j.QueryURL + "/api/services")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, addr := range []string{strings.TrimPrefix(j.OTLPEndpoint, "http://"), j.OTLPGRPCAddr} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// jaegerConfig is Jaeger's configuration (an OpenTelemetry collector's):
// memory storage, the OTLP receivers and the query API on the given ports
// (query HTTP, query gRPC, OTLP gRPC, OTLP HTTP), loopback only; no tracing
// of its own and no internal metrics server (their default ports, 4317 and
// 8888, would be shared between tests).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: []
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    # Jaeger traces its own query API to localhost:4317 otherwise, and
    # waits 10 s at stop to export that.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// buildJaeger runs .ci/jaeger.sh, which builds Jaeger from tools/jaeger
// into JaegerBinary.
func buildJaeger() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(RepoRoot(), ".ci", "jaeger.sh")).CombinedOutput()
	if err != nil {
		return fmt.Errorf(".ci/jaeger.sh: %v\n%s", err, out)
	}
	return nil
}

// JaegerTrace is a trace as Jaeger's query API gives it (GET
// /api/traces/{id}).
type JaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []JaegerSpan             `json:"spans"`
	Processes map[string]JaegerProcess `json:"processes"`
}

// JaegerSpan is one span of a JaegerTrace.
type JaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

// JaegerProcess is the service a span came from.
type JaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

// Service is the name of the service that sent span s.
func (tr *JaegerTrace) Service(s JaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// Span is the trace's span named name (its operation), or nil.
func (tr *JaegerTrace) Span(name string) *JaegerSpan {
	for i := range tr.Spans {
		if tr.Spans[i].OperationName == name {
			return &tr.Spans[i]
		}
	}
	return nil
}

// Tag is the value of the span's tag key, as text ("" when it has none).
func (s *JaegerSpan) Tag(key string) string {
	for _, tag := range s.Tags {
		if tag.Key == key {
			return fmt.Sprint(tag.Value)
		}
	}
	return ""
}

// Parent is the span ID of the span's parent (its CHILD_OF reference), ""
// for a root span.
func (s *JaegerSpan) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// WaitTrace reads trace traceID (32 hex digits) from Jaeger's query API
// until it holds a span named by each of names (at least one span when
// names is empty), and returns it; after 20 s it fails the test, saying
// what the trace held. Spans reach Jaeger when their process exports them
// (a batch, every few seconds, or at shutdown).
func (j *JaegerService) WaitTrace(t testing.TB, traceID string, names ...string) *JaegerTrace {
	t.Helper()
	var last *JaegerTrace
	var lastErr error
	complete := func() bool {
		last, lastErr = j.Trace(traceID)
		if lastErr != nil || last == nil || len(last.Spans) == 0 {
			return false
		}
		for _, name := range names {
			if last.Span(name) == nil {
				return false
			}
		}
		return true
	}
	held := stringer(func() string {
		var held []string
		if last != nil {
			for _, s := range last.Spans {
				held = append(held, last.Service(s)+": "+s.OperationName)
			}
		}
		return fmt.Sprintf("%q (last error: %v)", held, lastErr)
	})
	Eventually(t, 20*time.Second, complete, "jaeger: trace %s holds %s; want spans %q", traceID, held, names)
	return last
}

// stringer makes a failure message's part when it is printed, not before.
type stringer func() string

func (f stringer) String() string { return f() }

// errNoTrace is Trace's answer for a trace Jaeger does not hold (yet).
var errNoTrace = errors.New("no such trace")

// Trace reads trace traceID from the query API once: nil and an error when
// Jaeger does not hold it.
func (j *JaegerService) Trace(traceID string) (*JaegerTrace, error) {
	resp, err := http.Get(j.QueryURL + "/api/traces/" + traceID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNoTrace
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/traces/%s: %s", traceID, resp.Status)
	}
	var body struct {
		Data   []JaegerTrace `json:"data"`
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /api/traces/%s: %w", traceID, err)
	}
	if len(body.Data) == 0 {
		if len(body.Errors) > 0 {
			return nil, fmt.Errorf("GET /api/traces/%s: %s", traceID, body.Errors[0].Msg)
		}
		return nil, errNoTrace
	}
	return &body.Data[0], nil
}
