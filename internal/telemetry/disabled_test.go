package telemetry

import (
	"bytes"
	"testing"

	"go.opentelemetry.io/otel"
)

// TestSetupSDKDisabledIsNoop: OTEL_SDK_DISABLED=true, the standard switch
// that turns the SDK off whatever else is set, makes no provider; before,
// an exporter set beside it still traced every request.
func TestSetupSDKDisabledIsNoop(t *testing.T) {
	reset(t)
	var out bytes.Buffer
	shutdown, err := setup(t.Context(), "svc", env(map[string]string{
		"OTEL_SDK_DISABLED":    "true",
		"OTEL_TRACES_EXPORTER": "console",
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("t").Start(t.Context(), "op")
	recording := span.IsRecording()
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if recording || out.Len() > 0 {
		t.Fatalf("OTEL_SDK_DISABLED=true: span recording %v, console got %q; want no tracing", recording, out.String())
	}
}
