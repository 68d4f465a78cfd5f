package telemetry

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// reset puts OpenTelemetry's globals back after a test changed them.
func reset(t *testing.T) {
	t.Helper()
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
	})
	otel.SetTracerProvider(noop.NewTracerProvider())
}

func TestSetupNoneIsNoop(t *testing.T) {
	for _, name := range []string{"", "none", "NONE"} {
		t.Run("exporter="+name, func(t *testing.T) {
			reset(t)
			shutdown, err := setup(t.Context(), "svc", env(map[string]string{"OTEL_TRACES_EXPORTER": name}), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			_, span := otel.Tracer("t").Start(t.Context(), "op")
			if span.IsRecording() || span.SpanContext().IsValid() {
				t.Errorf("span with tracing off: recording %v, valid %v; want a no-op span", span.IsRecording(), span.SpanContext().IsValid())
			}
			span.End()
			if _, ok := otel.GetTextMapPropagator().(propagation.TraceContext); !ok {
				t.Errorf("propagator %T, want propagation.TraceContext", otel.GetTextMapPropagator())
			}
			if err := shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSetupConsoleWritesSpans(t *testing.T) {
	reset(t)
	var out bytes.Buffer
	shutdown, err := setup(t.Context(), "svc", env(map[string]string{
		"OTEL_TRACES_EXPORTER": "console",
		"OTEL_SERVICE_NAME":    "from-env",
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("t").Start(t.Context(), "console-op")
	if !span.IsRecording() {
		t.Error("span is not recording with the console exporter")
	}
	span.End()
	if err := shutdown(context.Background()); err != nil { // flushes the batcher
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"console-op"`, `"Value":"from-env"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %s:\n%s", want, out.String())
		}
	}
}

func TestSetupOTLPStarts(t *testing.T) {
	reset(t)
	shutdown, err := setup(t.Context(), "svc", env(map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", // nothing is exported in this test
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSetupRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"exporter", map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, `OTEL_TRACES_EXPORTER="jaeger": want otlp, console or none`},
		{"sampler", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, `OTEL_TRACES_SAMPLER="sometimes"`},
		{"sampler arg", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, `OTEL_TRACES_SAMPLER_ARG="2": want a ratio from 0 to 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset(t)
			_, err := setup(t.Context(), "svc", env(tt.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("setup: %v, want an error with %s", err, tt.want)
			}
		})
	}
}

func TestSamplerFrom(t *testing.T) {
	tests := []struct {
		sampler, arg, want string
	}{
		{"", "", "ParentBased{root:AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"parentbased_traceidratio", "0.5", "ParentBased{root:TraceIDRatioBased{0.5}"},
	}
	for _, tt := range tests {
		t.Run(tt.sampler, func(t *testing.T) {
			s, err := samplerFrom(env(map[string]string{"OTEL_TRACES_SAMPLER": tt.sampler, "OTEL_TRACES_SAMPLER_ARG": tt.arg}))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Description(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("sampler %q: %s, want %s...", tt.sampler, got, tt.want)
			}
		})
	}
}
