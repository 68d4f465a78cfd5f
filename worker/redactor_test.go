package worker

import (
	"strings"
	"testing"
)

// TestRedactorMasksMultiLineSecrets: logs go a line at a time, so each line
// of a multi-line secret (a PEM key, JSON credentials) is masked on its own;
// lines shorter than minMaskedLine are left, or "}" would vanish from every
// log line.
func TestRedactorMasksMultiLineSecrets(t *testing.T) {
	pem := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\nZg==\n-----END PRIVATE KEY-----\n"
	creds := "{\r\n  \"type\": \"service_account\",\r\n  \"private_key_id\": \"b7c1e0f2a9\"\r\n}"
	redact := redactor(map[string]string{"KEY": pem, "CREDS": creds, "PASS": "pw\n", "TOKEN": "jgj_abc"})
	tests := []struct{ in, want string }{
		{"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "***"},
		{"key line: BKcwggSjAgEAAoIBAQC7 (read)", "key line: *** (read)"},
		{"-----BEGIN PRIVATE KEY-----", "***"},
		{"Zg==", "***"},
		{`    "private_key_id": "b7c1e0f2a9"`, "    ***"},
		{`{"private_key_id": "b7c1e0f2a9"}`, `{***}`},
		{"}", "}"},
		{"{ ok }", "{ ok }"},
		// A one-line value is masked whole, however short, trailing newline or not.
		{"password=pw", "password=***"},
		{"token jgj_abc", "token ***"},
	}
	for _, tt := range tests {
		if got := string(redact.mask([]byte(tt.in))); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if redactor(map[string]string{"X": "\n\n", "Y": ""}) != nil {
		t.Error("a redactor for values with nothing to mask should be nil")
	}
	// Every line of the key, printed as the job would, is masked.
	for _, line := range strings.Split(strings.TrimSpace(pem), "\n") {
		if got := string(redact.mask([]byte(line))); got != "***" {
			t.Errorf("PEM line %q logged as %q", line, got)
		}
	}
}
