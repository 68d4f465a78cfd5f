package webhook

import (
	"errors"
	"strings"
	"testing"
)

// GitHub's published test values, from "Validating webhook deliveries",
// section "Testing the webhook payload validation":
// https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
const (
	githubTestSecret    = "It's a Secret to Everybody"
	githubTestPayload   = "Hello, World!"
	githubTestSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestSignGitHubDocumentedVector(t *testing.T) {
	t.Parallel()
	if got := SignGitHub([]byte(githubTestSecret), []byte(githubTestPayload)); got != githubTestSignature {
		t.Errorf("SignGitHub = %q, want %q", got, githubTestSignature)
	}
}

func TestVerifyGitHub(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secret  string
		body    string
		header  string
		wantErr error
		wantMsg string
	}{
		{name: "documented vector", secret: githubTestSecret, body: githubTestPayload, header: githubTestSignature},
		{name: "upper-case hex", secret: githubTestSecret, body: githubTestPayload,
			header: "sha256=" + strings.ToUpper(strings.TrimPrefix(githubTestSignature, "sha256="))},
		{name: "missing header", secret: githubTestSecret, body: githubTestPayload, header: "",
			wantErr: ErrBadSignature, wantMsg: "missing X-Hub-Signature-256"},
		{name: "sha1 header", secret: githubTestSecret, body: githubTestPayload,
			header: "sha1=0123456789abcdef0123456789abcdef01234567", wantErr: ErrBadSignature, wantMsg: "malformed"},
		{name: "no prefix", secret: githubTestSecret, body: githubTestPayload,
			header: strings.TrimPrefix(githubTestSignature, "sha256="), wantErr: ErrBadSignature, wantMsg: "malformed"},
		{name: "not hex", secret: githubTestSecret, body: githubTestPayload,
			header: "sha256=" + strings.Repeat("zz", 32), wantErr: ErrBadSignature, wantMsg: "malformed"},
		{name: "short digest", secret: githubTestSecret, body: githubTestPayload,
			header: githubTestSignature[:len(githubTestSignature)-2], wantErr: ErrBadSignature, wantMsg: "malformed"},
		{name: "tampered body", secret: githubTestSecret, body: "Hello, World?", header: githubTestSignature,
			wantErr: ErrBadSignature, wantMsg: "does not match"},
		{name: "wrong secret", secret: "It's a Secret to Nobody", body: githubTestPayload, header: githubTestSignature,
			wantErr: ErrBadSignature, wantMsg: "does not match"},
		{name: "empty secret", secret: "", body: githubTestPayload, header: githubTestSignature,
			wantErr: ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyGitHub([]byte(tt.secret), []byte(tt.body), tt.header)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyGitHub: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyGitHub error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("VerifyGitHub error = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}
