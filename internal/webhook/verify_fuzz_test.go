package webhook

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyGitHub: no header panics the check; a header is accepted only
// when it is exactly the signature of the body under the secret; the
// signature SignGitHub makes is always accepted.
func FuzzVerifyGitHub(f *testing.F) {
	f.Add([]byte("s3cret"), []byte(`{"ref":"refs/heads/main"}`), "sha256=00")
	f.Add([]byte("k"), []byte{}, "")
	f.Add([]byte{}, []byte("x"), "sha1=abc")
	f.Add([]byte("k"), []byte("x"), "sha256=zz"+string(make([]byte, 62)))
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		err := VerifyGitHub(secret, body, header)
		if len(secret) == 0 {
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("empty secret: got %v, want ErrInvalidSecret", err)
			}
			return
		}
		if err == nil && header != SignGitHub(secret, body) {
			t.Fatalf("header %q accepted for body %q, but the signature is %q", header, body, SignGitHub(secret, body))
		}
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("refusal %v does not wrap ErrBadSignature", err)
		}
		if err := VerifyGitHub(secret, body, SignGitHub(secret, body)); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
	})
}

// FuzzVerifyStandard: arbitrary Standard Webhooks headers never panic the
// check and are accepted only when they carry the body's signature; a
// signed delivery is accepted and the same headers on another body are not.
func FuzzVerifyStandard(f *testing.F) {
	secret := NewSecret()
	now := time.Unix(1_760_000_000, 0)
	sig, err := SignStandard(secret, "msg_1", now, []byte("{}"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("msg_1", strconv.FormatInt(now.Unix(), 10), sig, []byte("{}"))
	f.Add("msg_1", strconv.FormatInt(now.Unix(), 10), "v1,AAAA v1a,BBBB", []byte("{}"))
	f.Add("", "x", "", []byte{})
	f.Add("id", "-9223372036854775808", "v1,", []byte("b"))
	f.Add("id", "9223372036854775807", "v1,x", []byte("b"))
	f.Fuzz(func(t *testing.T, id, ts, sigHeader string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sigHeader)
		err := VerifyStandard([]string{secret}, h, body, now, 0)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) {
				t.Fatalf("refusal %v wraps neither ErrBadSignature nor ErrStale", err)
			}
		} else {
			unix, perr := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
			if perr != nil {
				t.Fatalf("accepted an unparsable timestamp %q", ts)
			}
			key, _ := ParseSecret(secret)
			want := signatureVersion + "," + standardMAC(key, h.Get(HeaderID), unix, body)
			if !slices.Contains(strings.Fields(h.Get(HeaderSignature)), want) {
				t.Fatalf("headers %v accepted, but %q is not among the signatures", h, want)
			}
		}
		if checkMessageID(id) != nil {
			return
		}
		good, err := SignStandard(secret, id, now, body)
		if err != nil {
			t.Fatalf("sign with a valid id %q: %v", id, err)
		}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(HeaderSignature, good)
		if err := VerifyStandard([]string{secret}, h, body, now, 0); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := VerifyStandard([]string{secret}, h, append(body, 'x'), now, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("signature accepted for another body: %v", err)
		}
	})
}
