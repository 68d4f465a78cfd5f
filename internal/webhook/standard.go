package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com) header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const (
	// SecretPrefix marks a Standard Webhooks signing secret: the prefix, then
	// the base64 (standard alphabet, padded) of the key bytes.
	SecretPrefix = "whsec_"
	// DefaultTolerance is how far a delivery's timestamp may lie from now, in
	// either direction, when VerifyStandard is given no tolerance.
	DefaultTolerance = 5 * time.Minute
	// secretBytes is the key length NewSecret generates: the spec's minimum.
	secretBytes = 24
	// signatureVersion marks an HMAC-SHA256 signature in webhook-signature.
	signatureVersion = "v1"
)

// NewSecret returns a fresh signing secret: "whsec_" followed by the base64 of
// 24 random bytes (192 bits, the Standard Webhooks minimum).
func NewSecret() string {
	key := make([]byte, secretBytes)
	rand.Read(key) // never returns an error; it crashes the program instead
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret returns the HMAC key a secret stands for: the base64-decoded
// text after the optional "whsec_" prefix, as the reference libraries do. It
// returns an error wrapping ErrInvalidSecret when the text is not base64 or
// the key is empty; the error does not quote the secret.
func ParseSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after the %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidSecret)
	}
	return key, nil
}

// SignStandard returns the webhook-signature value for a message: "v1," and
// the base64 HMAC-SHA256, under secret's key, of "{id}.{unix seconds}.{body}".
//
// id must be non-empty and hold no '.', ' ' or control characters (the spec
// forbids '.' so that id and timestamp cannot be shifted into each other).
// Errors wrap ErrInvalidSecret, or describe the bad id.
func SignStandard(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	if err := checkMessageID(id); err != nil {
		return "", err
	}
	return signatureVersion + "," + standardMAC(key, id, ts.Unix(), body), nil
}

// VerifyStandard checks a Standard Webhooks delivery: the webhook-id,
// webhook-timestamp and webhook-signature headers and the raw body.
//
// The timestamp (unix seconds) must lie within tolerance of now, before or
// after; tolerance <= 0 means DefaultTolerance. webhook-signature is a
// space-separated list of "version,base64" entries; the delivery passes when
// any "v1" entry matches the HMAC under any of secrets, so that a secret can be
// rotated by accepting the old and the new one for a while. Entries of other
// versions (v1a, asymmetric) are skipped. The comparison is constant-time.
//
// It returns nil on success; an error wrapping ErrInvalidSecret when secrets
// is empty or one of them cannot be parsed (see ParseSecret); ErrStale when
// the timestamp is out of tolerance; ErrBadSignature when a header is missing
// or malformed or no signature matches. Callers should also drop repeated
// webhook-id values within the tolerance window to stop replays.
func VerifyStandard(secrets []string, headers http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret configured", ErrInvalidSecret)
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		key, err := ParseSecret(s)
		if err != nil {
			return fmt.Errorf("secret %d: %w", i, err)
		}
		keys = append(keys, key)
	}

	id := headers.Get(HeaderID)
	tsText := headers.Get(HeaderTimestamp)
	sigText := headers.Get(HeaderSignature)
	for _, h := range []struct{ name, value string }{
		{HeaderID, id}, {HeaderTimestamp, tsText}, {HeaderSignature, sigText},
	} {
		if h.value == "" {
			return fmt.Errorf("%w: missing %s header", ErrBadSignature, h.name)
		}
	}

	unix, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed %s header: want unix seconds", ErrBadSignature, HeaderTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare whole seconds first: time.Unix overflows for absurd values.
	nowUnix, slack := now.Unix(), int64(tolerance/time.Second)+1
	age := time.Duration(0)
	if unix >= nowUnix-slack && unix <= nowUnix+slack {
		age = now.Sub(time.Unix(unix, 0))
	}
	switch {
	case unix < nowUnix-slack || age > tolerance:
		return fmt.Errorf("%w: timestamp is more than %s old", ErrStale, tolerance)
	case unix > nowUnix+slack || age < -tolerance:
		return fmt.Errorf("%w: timestamp is more than %s in the future", ErrStale, tolerance)
	}

	expected := make([][]byte, len(keys))
	for i, key := range keys {
		expected[i] = []byte(standardMAC(key, id, unix, body))
	}
	sawV1 := false
	for _, entry := range strings.Fields(sigText) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != signatureVersion {
			continue
		}
		sawV1 = true
		for _, want := range expected {
			if hmac.Equal([]byte(sig), want) {
				return nil
			}
		}
	}
	if !sawV1 {
		return fmt.Errorf("%w: no %q entry in %s header", ErrBadSignature, signatureVersion, HeaderSignature)
	}
	return fmt.Errorf("%w: no %s entry matches the body", ErrBadSignature, HeaderSignature)
}

// standardMAC returns the base64 HMAC-SHA256 of "{id}.{unix}.{body}".
func standardMAC(key []byte, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, unix, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func checkMessageID(id string) error {
	if id == "" {
		return fmt.Errorf("webhook message id is empty")
	}
	for _, r := range id {
		if r == '.' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("webhook message id %q holds %q: dots, spaces and control characters are not allowed", id, r)
		}
	}
	return nil
}
