// Package webhook verifies inbound webhook deliveries and signs and sends
// outbound ones.
//
// Inbound, it checks GitHub's X-Hub-Signature-256 header (VerifyGitHub) and
// the Standard Webhooks scheme (VerifyStandard), the one jobgate also uses for
// the callbacks it sends. Outbound, a Sender posts a JSON payload signed with
// Standard Webhooks headers and retries with backoff (Sender.Deliver), dialling
// only addresses that its AddressPolicy allows, so that a user-supplied
// callback URL cannot reach the gateway's own network (SSRF).
//
// Errors are sentinel values to test with errors.Is: ErrBadSignature and
// ErrStale for deliveries to reject (HTTP 401), ErrInvalidSecret for a secret
// that is misconfigured, ErrInvalidURL and ErrForbiddenAddress for a callback
// URL that may not be used (HTTP 422).
//
// This package knows nothing of the gateway or the worker; it imports neither.
package webhook

import "errors"

// Errors returned by this package. Each is wrapped with a reason; test with
// errors.Is.
var (
	// ErrBadSignature means an inbound delivery's signature headers are
	// missing, malformed, or do not match the body.
	ErrBadSignature = errors.New("bad webhook signature")
	// ErrStale means a Standard Webhooks delivery's timestamp lies outside the
	// tolerance, in the past or the future: a replay, or a badly wrong clock.
	ErrStale = errors.New("webhook timestamp outside tolerance")
	// ErrInvalidSecret means a configured secret cannot be used: empty, or
	// not base64 after the whsec_ prefix.
	ErrInvalidSecret = errors.New("invalid webhook secret")
	// ErrInvalidURL means a callback URL is not an absolute http or https URL
	// without credentials.
	ErrInvalidURL = errors.New("invalid webhook URL")
	// ErrForbiddenAddress means a callback URL names, or resolves to, an
	// address the AddressPolicy refuses (loopback, private, link-local, ...).
	ErrForbiddenAddress = errors.New("webhook address not allowed")
)
