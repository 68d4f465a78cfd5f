package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// HeaderGitHubSignature is the header in which GitHub sends the HMAC-SHA256
// signature of a delivery's body.
const HeaderGitHubSignature = "X-Hub-Signature-256"

const githubPrefix = "sha256="

// VerifyGitHub checks a GitHub webhook delivery: signatureHeader is the value
// of the X-Hub-Signature-256 header, "sha256=" followed by the hex HMAC-SHA256
// of the raw body under secret. body must be the bytes as received, not
// re-encoded JSON.
//
// It returns nil when the signature matches, an error wrapping ErrBadSignature
// when the header is missing, malformed or does not match, and one wrapping
// ErrInvalidSecret when secret is empty. The comparison is constant-time.
//
// GitHub signs no timestamp, so a captured delivery can be replayed; use the
// X-GitHub-Delivery header as an idempotency key to drop repeats.
func VerifyGitHub(secret, body []byte, signatureHeader string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: empty secret", ErrInvalidSecret)
	}
	if signatureHeader == "" {
		return fmt.Errorf("%w: missing %s header", ErrBadSignature, HeaderGitHubSignature)
	}
	hexSig, ok := strings.CutPrefix(signatureHeader, githubPrefix)
	if !ok {
		return fmt.Errorf("%w: malformed %s header: want %q followed by a hex digest",
			ErrBadSignature, HeaderGitHubSignature, githubPrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed %s header: want %d hex digits after %q",
			ErrBadSignature, HeaderGitHubSignature, 2*sha256.Size, githubPrefix)
	}
	if !hmac.Equal(got, githubMAC(secret, body)) {
		return fmt.Errorf("%w: %s does not match the body", ErrBadSignature, HeaderGitHubSignature)
	}
	return nil
}

// SignGitHub returns the X-Hub-Signature-256 value GitHub would send for body
// under secret: "sha256=" and the hex HMAC-SHA256. It is for tests and for
// replaying captured deliveries.
func SignGitHub(secret, body []byte) string {
	return githubPrefix + hex.EncodeToString(githubMAC(secret, body))
}

func githubMAC(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
