package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"syscall"
	"time"
)

// SenderConfig configures a Sender. The zero value works: public addresses
// only, 15 s per attempt, 5 attempts, backoff from 1 s to 1 min.
type SenderConfig struct {
	// Policy decides which addresses may be dialled; the zero value allows
	// public addresses only.
	Policy AddressPolicy
	// Timeout bounds one attempt: connect, send, and read the response.
	// Default 15 s (the Standard Webhooks recommendation is 15 to 30 s).
	Timeout time.Duration
	// MaxAttempts bounds Deliver's attempts, the first included. Default 5.
	MaxAttempts int
	// BaseDelay is the wait before the second attempt; each later wait
	// doubles, up to MaxDelay, and is jittered to between half and all of
	// that. Default 1 s.
	BaseDelay time.Duration
	// MaxDelay caps the wait between attempts. Default 1 min.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After that Deliver waits for; a
	// receiver asking for longer ends the delivery, and the StatusError
	// carries its Retry-After so the caller may try again later. Default
	// MaxDelay.
	MaxRetryAfter time.Duration
	// UserAgent is sent with every request. Default "jobgate-webhook/1".
	UserAgent string
}

// Validate reports a setting that cannot work.
func (c SenderConfig) Validate() error {
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("webhook sender: timeout %s is negative", c.Timeout)
	case c.MaxAttempts < 0:
		return fmt.Errorf("webhook sender: max attempts %d is negative", c.MaxAttempts)
	case c.BaseDelay < 0 || c.MaxDelay < 0 || c.MaxRetryAfter < 0:
		return fmt.Errorf("webhook sender: delays must not be negative")
	case c.MaxDelay > 0 && c.BaseDelay > c.MaxDelay:
		return fmt.Errorf("webhook sender: base delay %s exceeds max delay %s", c.BaseDelay, c.MaxDelay)
	}
	return nil
}

func (c SenderConfig) withDefaults() SenderConfig {
	c.Timeout = cmp.Or(c.Timeout, 15*time.Second)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 5)
	c.BaseDelay = cmp.Or(c.BaseDelay, time.Second)
	c.MaxDelay = cmp.Or(c.MaxDelay, max(time.Minute, c.BaseDelay))
	c.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, c.MaxDelay)
	c.UserAgent = cmp.Or(c.UserAgent, "jobgate-webhook/1")
	return c
}

// Attempt records one try at delivering a webhook.
type Attempt struct {
	// Number counts attempts from 1.
	Number int
	// At is when the attempt started; it is also the signed timestamp.
	At time.Time
	// StatusCode is the receiver's HTTP status, 0 when none came back.
	StatusCode int
	// Error says why the attempt failed, "" when it succeeded (2xx).
	Error string
	// Duration is how long the attempt took.
	Duration time.Duration
}

// StatusError is the error for a response outside 2xx.
type StatusError struct {
	StatusCode int
	// RetryAfter is the wait the receiver asked for in a Retry-After header,
	// 0 when it asked for none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("webhook receiver answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Sender posts signed webhooks. It is safe for concurrent use. Make one with
// NewSender and share it: it keeps a pool of connections.
type Sender struct {
	cfg    SenderConfig
	client *http.Client
}

// NewSender returns a Sender for cfg, or cfg.Validate's error.
//
// Its HTTP client dials through cfg.Policy's Control (so the policy applies to
// the resolved address of every connection, redirects and DNS rebinding
// included), ignores proxy settings in the environment (a proxy would make the
// policy judge the proxy's address instead of the receiver's), and follows no
// redirects: a 3xx is a failed attempt, as the Standard Webhooks spec advises.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Sender{
		cfg: cfg,
		client: &http.Client{
			Transport: newTransport(cfg.Policy.Control),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

func newTransport(control func(network, address string, c syscall.RawConn) error) *http.Transport {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second, Control: control}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// CloseIdleConnections closes the connections the Sender keeps for reuse.
func (s *Sender) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Send makes one attempt to POST payload (JSON) to url, signed for secret with
// Standard Webhooks headers: webhook-id msgID, webhook-timestamp now, and
// webhook-signature. It returns the Attempt, and an error when it failed: a
// *StatusError for a status outside 2xx, an error wrapping ErrInvalidURL,
// ErrForbiddenAddress or ErrInvalidSecret (then no request was made), or the
// transport's error (connection refused, timeout, ...).
func (s *Sender) Send(ctx context.Context, url, secret, msgID string, payload []byte) (Attempt, error) {
	key, err := s.check(url, secret, msgID)
	if err != nil {
		return Attempt{}, err
	}
	return s.send(ctx, url, key, msgID, payload, 1)
}

// Deliver sends like Send and retries with exponential backoff and jitter
// after network errors, timeouts, 5xx and 429 responses, at most MaxAttempts
// times; it does not retry other statuses, refused addresses or certificate
// errors. It waits at least as long as a Retry-After header asks, and gives up
// at once when that is longer than MaxRetryAfter. Every attempt keeps msgID
// and is signed afresh with its own timestamp.
//
// onAttempt, when not nil, is called after each attempt, from Deliver's
// goroutine, so that the caller can record it. Deliver returns the last
// Attempt, and nil or the last attempt's error; when ctx ends it returns
// ctx's error at once.
func (s *Sender) Deliver(ctx context.Context, url, secret, msgID string, payload []byte, onAttempt func(Attempt)) (Attempt, error) {
	key, err := s.check(url, secret, msgID)
	if err != nil {
		return Attempt{}, err
	}
	for n := 1; ; n++ {
		a, err := s.send(ctx, url, key, msgID, payload, n)
		if onAttempt != nil {
			onAttempt(a)
		}
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return a, fmt.Errorf("deliver webhook: %w", context.Cause(ctx))
		}
		if n >= s.cfg.MaxAttempts {
			return a, fmt.Errorf("deliver webhook: gave up after %d attempts: %w", n, err)
		}
		if !retryable(err) {
			return a, fmt.Errorf("deliver webhook: %w", err)
		}
		wait, ok := s.retryDelay(n, err)
		if !ok {
			return a, fmt.Errorf("deliver webhook: receiver asked to wait longer than %s: %w", s.cfg.MaxRetryAfter, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return a, fmt.Errorf("deliver webhook: %w", context.Cause(ctx))
		case <-timer.C:
		}
	}
}

func (s *Sender) check(url, secret, msgID string) ([]byte, error) {
	if err := ValidateURL(url, s.cfg.Policy); err != nil {
		return nil, err
	}
	if err := checkMessageID(msgID); err != nil {
		return nil, err
	}
	return ParseSecret(secret)
}

// send makes attempt number n.
func (s *Sender) send(ctx context.Context, url string, key []byte, msgID string, payload []byte, n int) (Attempt, error) {
	a := Attempt{Number: n, At: time.Now()}
	fail := func(err error) (Attempt, error) {
		a.Duration = time.Since(a.At)
		a.Error = s.describe(url, err)
		return a, err
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrInvalidURL, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	req.Header.Set(HeaderID, msgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(a.At.Unix(), 10))
	req.Header.Set(HeaderSignature, signatureVersion+","+standardMAC(key, msgID, a.At.Unix(), payload))

	resp, err := s.client.Do(req)
	if err != nil {
		// Drop the *url.Error wrapper: it repeats the URL, whose query may
		// hold a token, into logs and attempt records.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(fmt.Errorf("post webhook: %w", err))
	}
	// Drain a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.StatusCode = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		a.Duration = time.Since(a.At)
		return a, nil
	}
	return fail(&StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	})
}

// describe is what Attempt.Error says about err: a short message that is
// safe to show whoever set the callback URL, in words of its own rather
// than the error's, which may name the sender's DNS resolver, the address a
// host name resolved to, or the local address of the connection.
func (s *Sender) describe(rawURL string, err error) string {
	host := rawURL
	if u, perr := neturl.Parse(rawURL); perr == nil {
		host = u.Hostname()
	}
	var (
		se       *StatusError
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, ErrForbiddenAddress):
		return fmt.Sprintf("host %s resolves to an address the callback policy does not allow", host)
	case errors.Is(err, ErrInvalidURL):
		return "invalid callback URL"
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return fmt.Sprintf("cannot resolve host %s: timeout", host)
		}
		return fmt.Sprintf("cannot resolve host %s", host)
	case errors.As(err, &certErr):
		return "TLS error: the receiver's certificate is not trusted"
	case errors.As(err, &recErr), errors.As(err, &alertErr):
		return "TLS error: handshake failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timeout: no response within %s (deadline exceeded)", s.cfg.Timeout)
	case errors.Is(err, context.Canceled):
		return "canceled: the sender stopped"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver before it answered"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	return "connection failed"
}

// retryable reports whether an attempt that failed with err is worth repeating.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 500 || se.StatusCode == http.StatusTooManyRequests
	}
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrForbiddenAddress), errors.Is(err, ErrInvalidURL), errors.As(err, &certErr):
		return false
	}
	return true // network errors and timeouts
}

// retryDelay returns the wait after attempt n failed with err, and false when
// the receiver asked for a longer wait than MaxRetryAfter.
func (s *Sender) retryDelay(n int, err error) (time.Duration, bool) {
	backoff := s.cfg.BaseDelay
	for i := 1; i < n && backoff < s.cfg.MaxDelay; i++ {
		backoff *= 2
	}
	backoff = min(backoff, s.cfg.MaxDelay)
	wait := backoff/2 + rand.N(backoff/2+1)

	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		if se.RetryAfter > s.cfg.MaxRetryAfter {
			return 0, false
		}
		wait = max(wait, se.RetryAfter)
	}
	return wait, true
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 for an absent, malformed or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
