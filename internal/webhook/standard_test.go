package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fixed vector from the Standard Webhooks reference Go library,
// libraries/go/webhook_test.go, TestWebhookSign, in
// github.com/standard-webhooks/standard-webhooks.
const (
	refSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	refMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	refTimestamp = 1614265330
	refPayload   = `{"test": 2432232314}`
	refSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignStandardReferenceVector(t *testing.T) {
	t.Parallel()
	// The reference library accepts the secret with and without its prefix.
	for _, secret := range []string{refSecret, strings.TrimPrefix(refSecret, SecretPrefix)} {
		got, err := SignStandard(secret, refMsgID, time.Unix(refTimestamp, 0), []byte(refPayload))
		if err != nil {
			t.Fatalf("SignStandard(%q): %v", secret, err)
		}
		if got != refSignature {
			t.Errorf("SignStandard(%q) = %q, want %q", secret, got, refSignature)
		}
	}
	h := http.Header{}
	h.Set(HeaderID, refMsgID)
	h.Set(HeaderTimestamp, strconv.Itoa(refTimestamp))
	h.Set(HeaderSignature, refSignature)
	if err := VerifyStandard([]string{refSecret}, h, []byte(refPayload), time.Unix(refTimestamp, 0), 0); err != nil {
		t.Errorf("VerifyStandard(reference vector): %v", err)
	}
}

func TestSignStandardRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret, id string
		wantErr          error
	}{
		{name: "empty id", secret: refSecret, id: ""},
		{name: "dot in id", secret: refSecret, id: "msg.1"},
		{name: "space in id", secret: refSecret, id: "msg 1"},
		{name: "newline in id", secret: refSecret, id: "msg\n1"},
		{name: "not base64", secret: "whsec_not base64!", id: "msg_1", wantErr: ErrInvalidSecret},
		{name: "empty key", secret: "whsec_", id: "msg_1", wantErr: ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := SignStandard(tt.secret, tt.id, time.Unix(refTimestamp, 0), nil)
			if err == nil {
				t.Fatal("SignStandard succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("SignStandard error = %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "not base64!") {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatalf("two NewSecret calls returned %q", a)
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Fatalf("NewSecret = %q, want prefix %q", a, SecretPrefix)
	}
	key, err := ParseSecret(a)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()): %v", err)
	}
	if len(key) != 24 {
		t.Errorf("key length = %d, want 24", len(key))
	}
}

func TestVerifyStandard(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC)
	oldSecret, newSecret, otherSecret := NewSecret(), NewSecret(), NewSecret()
	body := []byte(`{"type":"job.succeeded","data":{"id":"01J"}}`)

	// signed returns headers for body signed at ts with secrets, one
	// webhook-signature entry each.
	signed := func(ts time.Time, secrets ...string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, "msg_1")
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		var sigs []string
		for _, s := range secrets {
			sig, err := SignStandard(s, "msg_1", ts, body)
			if err != nil {
				t.Fatalf("SignStandard: %v", err)
			}
			sigs = append(sigs, sig)
		}
		h.Set(HeaderSignature, strings.Join(sigs, " "))
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	valid := signed(now, newSecret)
	validSig := valid.Get(HeaderSignature)
	bogus := "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))

	tests := []struct {
		name      string
		secrets   []string
		headers   http.Header
		body      []byte
		tolerance time.Duration
		wantErr   error
		wantMsg   string
	}{
		{name: "valid", secrets: []string{newSecret}, headers: valid},
		{name: "rotation: signed with old, both accepted", secrets: []string{newSecret, oldSecret}, headers: signed(now, oldSecret)},
		{name: "rotation: signed with new, both accepted", secrets: []string{newSecret, oldSecret}, headers: signed(now, newSecret)},
		{name: "rotation: sender signs with both", secrets: []string{newSecret}, headers: signed(now, oldSecret, newSecret)},
		{name: "old secret retired", secrets: []string{newSecret}, headers: signed(now, oldSecret),
			wantErr: ErrBadSignature, wantMsg: "no webhook-signature entry matches"},
		{name: "valid among bogus and other versions", secrets: []string{newSecret},
			headers: with(valid, HeaderSignature, bogus+"  v1a,"+strings.TrimPrefix(validSig, "v1,")+" garbage "+validSig+" "+bogus)},
		{name: "only v1a", secrets: []string{newSecret},
			headers: with(valid, HeaderSignature, "v1a,"+strings.TrimPrefix(validSig, "v1,")),
			wantErr: ErrBadSignature, wantMsg: `no "v1" entry`},
		{name: "entry without comma", secrets: []string{newSecret},
			headers: with(valid, HeaderSignature, strings.TrimPrefix(validSig, "v1,")),
			wantErr: ErrBadSignature, wantMsg: `no "v1" entry`},
		{name: "wrong secret", secrets: []string{otherSecret}, headers: valid,
			wantErr: ErrBadSignature, wantMsg: "matches"},
		{name: "tampered body", secrets: []string{newSecret}, headers: valid, body: []byte(`{"type":"job.failed"}`),
			wantErr: ErrBadSignature},
		{name: "tampered id", secrets: []string{newSecret}, headers: with(valid, HeaderID, "msg_2"),
			wantErr: ErrBadSignature},
		{name: "missing id", secrets: []string{newSecret}, headers: with(valid, HeaderID, ""),
			wantErr: ErrBadSignature, wantMsg: "missing webhook-id"},
		{name: "missing timestamp", secrets: []string{newSecret}, headers: with(valid, HeaderTimestamp, ""),
			wantErr: ErrBadSignature, wantMsg: "missing webhook-timestamp"},
		{name: "missing signature", secrets: []string{newSecret}, headers: with(valid, HeaderSignature, ""),
			wantErr: ErrBadSignature, wantMsg: "missing webhook-signature"},
		{name: "timestamp not a number", secrets: []string{newSecret}, headers: with(valid, HeaderTimestamp, "2026-03-29T02:30:00Z"),
			wantErr: ErrBadSignature, wantMsg: "malformed webhook-timestamp"},
		{name: "timestamp in milliseconds", secrets: []string{newSecret},
			headers: with(valid, HeaderTimestamp, strconv.FormatInt(now.UnixMilli(), 10)), wantErr: ErrStale},
		{name: "largest timestamp", secrets: []string{newSecret},
			headers: with(valid, HeaderTimestamp, "9223372036854775807"), wantErr: ErrStale, wantMsg: "future"},
		{name: "smallest timestamp", secrets: []string{newSecret},
			headers: with(valid, HeaderTimestamp, "-9223372036854775808"), wantErr: ErrStale, wantMsg: "old"},
		{name: "at the tolerance in the past", secrets: []string{newSecret}, headers: signed(now.Add(-DefaultTolerance), newSecret)},
		{name: "at the tolerance in the future", secrets: []string{newSecret}, headers: signed(now.Add(DefaultTolerance), newSecret)},
		{name: "stale", secrets: []string{newSecret}, headers: signed(now.Add(-DefaultTolerance-time.Second), newSecret),
			wantErr: ErrStale, wantMsg: "old"},
		{name: "future", secrets: []string{newSecret}, headers: signed(now.Add(DefaultTolerance+time.Second), newSecret),
			wantErr: ErrStale, wantMsg: "future"},
		{name: "custom tolerance", secrets: []string{newSecret}, headers: signed(now.Add(-time.Minute), newSecret),
			tolerance: 30 * time.Second, wantErr: ErrStale},
		{name: "stale even when signature is bad", secrets: []string{otherSecret},
			headers: signed(now.Add(-time.Hour), newSecret), wantErr: ErrStale},
		{name: "no secrets", secrets: nil, headers: valid, wantErr: ErrInvalidSecret},
		{name: "a secret is not base64", secrets: []string{newSecret, "whsec_%%%"}, headers: valid,
			wantErr: ErrInvalidSecret, wantMsg: "secret 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := body
			if tt.body != nil {
				b = tt.body
			}
			err := VerifyStandard(tt.secrets, tt.headers, b, now, tt.tolerance)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyStandard: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyStandard error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("VerifyStandard error = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}
