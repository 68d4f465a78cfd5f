package telemetry

import (
	"bytes"
	"testing"
)

// TestProviderFollowsSetup: Provider is nil while tracing is off (so a
// component adds no instrumentation) and the installed provider once Setup
// made one.
func TestProviderFollowsSetup(t *testing.T) {
	reset(t)
	t.Cleanup(func() { installed.Store(nil) })
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{env: map[string]string{}, want: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, want: false},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, want: false},
	} {
		shutdown, err := setup(t.Context(), "svc", env(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := Provider() != nil; got != tc.want {
			t.Errorf("env %v: Provider() set %v, want %v", tc.env, got, tc.want)
		}
		if err := shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
