package gateway

import (
	"errors"
	"net/http"
	"testing"

	"github.com/jobgate/jobgate/api"
)

func TestArtifactPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		wildcard string
		escaped  bool
		want     string // "" means refused with a 400
	}{
		{name: "file", wildcard: "metrics.json", want: "metrics.json"},
		{name: "nested", wildcard: "model/weights.bin", want: "model/weights.bin"},
		{name: "dots in a name", wildcard: "a..b/.hidden", want: "a..b/.hidden"},
		{name: "escaped space", wildcard: "my%20file.txt", escaped: true, want: "my file.txt"},
		{name: "escaped slash is a separator", wildcard: "model%2Fweights.bin", escaped: true, want: "model/weights.bin"},
		{name: "empty", wildcard: ""},
		{name: "dot dot", wildcard: ".."},
		{name: "dot dot slash", wildcard: "../etc/passwd"},
		{name: "inner dot dot", wildcard: "a/../../b"},
		{name: "trailing dot dot", wildcard: "a/.."},
		{name: "dot", wildcard: "./a"},
		{name: "absolute", wildcard: "/etc/passwd"},
		{name: "empty segment", wildcard: "a//b"},
		{name: "trailing slash", wildcard: "a/"},
		{name: "backslash", wildcard: `..\..\x`},
		{name: "NUL", wildcard: "a\x00b"},
		{name: "encoded traversal", wildcard: "%2e%2e%2fetc%2fpasswd", escaped: true},
		{name: "encoded upper", wildcard: "%2E%2E/x", escaped: true},
		{name: "encoded backslash", wildcard: "..%5cx", escaped: true},
		{name: "encoded NUL", wildcard: "a%00b", escaped: true},
		{name: "encoded absolute", wildcard: "%2fetc%2fpasswd", escaped: true},
		{name: "bad escape", wildcard: "a%zz", escaped: true},
		{name: "invalid UTF-8", wildcard: "a\xffb"},
		{name: "double encoded stays literal", wildcard: "%252e%252e", escaped: true, want: "%2e%2e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := artifactPath(tt.wildcard, tt.escaped)
			if tt.want == "" {
				var e *api.Error
				if !errors.As(err, &e) || e.Code.Status() != http.StatusBadRequest {
					t.Fatalf("artifactPath(%q) = %q, %v; want a 400", tt.wildcard, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("artifactPath(%q) = %q, %v; want %q", tt.wildcard, got, err, tt.want)
			}
		})
	}
}
