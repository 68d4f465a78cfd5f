package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// newTestSender returns a Sender that may reach loopback receivers and waits
// only microseconds between attempts.
func newTestSender(t *testing.T, cfg SenderConfig) *Sender {
	t.Helper()
	cfg.Policy.AllowLoopback = true
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = time.Microsecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 10 * time.Microsecond
	}
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// request is what a test receiver saw.
type request struct {
	header http.Header
	body   string
	verify error
}

// receiver is a loopback webhook receiver that verifies every request with
// VerifyStandard and answers with respond(n), n counting requests from 1.
type receiver struct {
	*httptest.Server
	secret string

	mu   sync.Mutex // mu guards the fields below.
	reqs []request
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{secret: NewSecret()}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		verr := VerifyStandard([]string{rc.secret}, r.Header, body, time.Now(), 0)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: string(body), verify: verr})
		n := len(rc.reqs)
		rc.mu.Unlock()
		if verr != nil {
			http.Error(w, verr.Error(), http.StatusUnauthorized)
			return
		}
		respond(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func statusSequence(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(n, len(codes))-1])
	}
}

func TestSenderSendSignsForTheReceiver(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, statusSequence(http.StatusNoContent))
	s := newTestSender(t, SenderConfig{})
	payload := []byte(`{"type":"job.succeeded","data":{"id":"01JABC"}}`)

	a, err := s.Send(t.Context(), rc.URL+"/cb", rc.secret, "msg_01JABC", payload)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if a.StatusCode != http.StatusNoContent || a.Error != "" || a.Number != 1 || a.At.IsZero() {
		t.Errorf("Attempt = %+v, want 204, no error, number 1, a start time", a)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver saw %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.verify != nil {
		t.Errorf("receiver could not verify the delivery: %v", got.verify)
	}
	if got.body != string(payload) {
		t.Errorf("body = %q, want %q", got.body, payload)
	}
	for key, want := range map[string]string{
		"Content-Type": "application/json",
		HeaderID:       "msg_01JABC",
		"User-Agent":   "jobgate-webhook/1",
	} {
		if v := got.header.Get(key); v != want {
			t.Errorf("header %s = %q, want %q", key, v, want)
		}
	}
}

func TestSenderRefusesLoopbackUnlessAllowed(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	s, err := NewSender(SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)

	// The URL check refuses the IP literal before any dial.
	_, err = s.Deliver(t.Context(), srv.URL, NewSecret(), "msg_1", []byte(`{}`), func(a Attempt) {
		t.Errorf("attempt made: %+v", a)
	})
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Deliver to %s = %v, want ErrForbiddenAddress", srv.URL, err)
	}

	// The dialer refuses it too, for URLs that got past the URL check (a host
	// name that resolves to loopback, say): call the Sender's client directly.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("Sender's client reached a loopback server")
	}
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("client.Do(%s) = %v, want ErrForbiddenAddress", srv.URL, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

// A private address is refused before connecting: by the URL check, and by
// the dialer's Control, which runs after the socket is made and before it
// connects. The guard below makes sure nothing is sent even if Control were
// broken.
func TestSenderRefusesPrivateBeforeConnecting(t *testing.T) {
	t.Parallel()
	s, err := NewSender(SenderConfig{Policy: AddressPolicy{AllowLoopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.CloseIdleConnections)
	_, err = s.Send(t.Context(), "http://10.0.0.1/cb", NewSecret(), "msg_1", []byte(`{}`))
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("Send to 10.0.0.1 = %v, want ErrForbiddenAddress", err)
	}

	var controlled atomic.Int32
	policy := AddressPolicy{AllowLoopback: true}
	guard := func(network, address string, c syscall.RawConn) error {
		controlled.Add(1)
		if err := policy.Control(network, address, c); err != nil {
			return err
		}
		t.Errorf("Control allowed %s", address)
		return errors.New("test guard: not connecting")
	}
	client := &http.Client{Transport: newTransport(guard)}
	t.Cleanup(client.CloseIdleConnections)
	for _, u := range []string{"http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("client.Do(%s) = %v, want ErrForbiddenAddress", u, err)
		}
	}
	if controlled.Load() == 0 {
		t.Error("Control was never called")
	}
}

func TestSenderDeliver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         SenderConfig
		respond     func(int, http.ResponseWriter, *http.Request)
		wantErr     bool
		wantCodes   []int
		checkErr    func(t *testing.T, err error)
		wantLastErr string
	}{
		{
			name:      "success first time",
			respond:   statusSequence(http.StatusOK),
			wantCodes: []int{200},
		},
		{
			name:      "retries 500 then succeeds",
			respond:   statusSequence(500, 502, 200),
			wantCodes: []int{500, 502, 200},
		},
		{
			name:      "retries 429",
			respond:   statusSequence(429, 202),
			wantCodes: []int{429, 202},
		},
		{
			name: "429 with a small Retry-After is honoured",
			respond: func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			},
			wantCodes: []int{429, 200},
		},
		{
			name: "503 with a long Retry-After ends the delivery",
			respond: func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			wantErr:   true,
			wantCodes: []int{503},
			checkErr: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.RetryAfter != time.Hour {
					t.Errorf("error = %v, want a StatusError with RetryAfter 1h", err)
				}
			},
		},
		{
			name:      "no retry on 400",
			respond:   statusSequence(400, 200),
			wantErr:   true,
			wantCodes: []int{400},
			checkErr: func(t *testing.T, err error) {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != 400 {
					t.Errorf("error = %v, want a StatusError 400", err)
				}
			},
		},
		{
			name:      "no retry on 410 Gone",
			respond:   statusSequence(410, 200),
			wantErr:   true,
			wantCodes: []int{410},
		},
		{
			name: "redirects are not followed",
			respond: func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
					return
				}
				t.Errorf("redirect followed to %s", r.URL)
			},
			wantErr:   true,
			wantCodes: []int{302},
		},
		{
			name:        "gives up after MaxAttempts",
			cfg:         SenderConfig{MaxAttempts: 3},
			respond:     statusSequence(500),
			wantErr:     true,
			wantCodes:   []int{500, 500, 500},
			wantLastErr: "500 Internal Server Error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tt.respond)
			s := newTestSender(t, tt.cfg)
			var attempts []Attempt
			last, err := s.Deliver(t.Context(), rc.URL, rc.secret, "msg_retry", []byte(`{"n":1}`), func(a Attempt) {
				attempts = append(attempts, a)
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Deliver error = %v, want error: %v", err, tt.wantErr)
			}
			if tt.checkErr != nil {
				tt.checkErr(t, err)
			}
			var codes []int
			for i, a := range attempts {
				codes = append(codes, a.StatusCode)
				if a.Number != i+1 {
					t.Errorf("attempt %d has Number %d", i+1, a.Number)
				}
				if ok := a.StatusCode >= 200 && a.StatusCode < 300; ok != (a.Error == "") {
					t.Errorf("attempt %+v: Error should be empty exactly for 2xx", a)
				}
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Fatalf("attempt status codes = %v, want %v", codes, tt.wantCodes)
			}
			if last != attempts[len(attempts)-1] {
				t.Errorf("Deliver returned %+v, want the last attempt %+v", last, attempts[len(attempts)-1])
			}
			if tt.wantLastErr != "" && !strings.Contains(last.Error, tt.wantLastErr) {
				t.Errorf("last Attempt.Error = %q, want it to mention %q", last.Error, tt.wantLastErr)
			}
			reqs := rc.requests()
			if len(reqs) != len(tt.wantCodes) {
				t.Fatalf("receiver saw %d requests, want %d", len(reqs), len(tt.wantCodes))
			}
			for i, r := range reqs {
				if r.verify != nil {
					t.Errorf("request %d did not verify: %v", i+1, r.verify)
				}
				if id := r.header.Get(HeaderID); id != "msg_retry" {
					t.Errorf("request %d webhook-id = %q, want the same id on every attempt", i+1, id)
				}
			}
		})
	}
}

func TestSenderDeliverRetriesTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			// Hang until the sender gives up on this attempt.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(func() { close(release) }) // runs before rc.Close
	s := newTestSender(t, SenderConfig{Timeout: 200 * time.Millisecond})

	var attempts []Attempt
	last, err := s.Deliver(t.Context(), rc.URL, rc.secret, "msg_slow", []byte(`{}`), func(a Attempt) {
		attempts = append(attempts, a)
	})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if last.StatusCode != http.StatusOK {
		t.Errorf("last attempt = %+v, want 200", last)
	}
	if len(attempts) < 2 {
		t.Fatalf("%d attempts, want a timed-out one and a successful one", len(attempts))
	}
	if first := attempts[0]; first.StatusCode != 0 || !strings.Contains(first.Error, "deadline exceeded") {
		t.Errorf("first attempt = %+v, want no status and a deadline error", first)
	}
	if strings.Contains(attempts[0].Error, rc.URL) {
		t.Errorf("attempt error %q repeats the URL", attempts[0].Error)
	}
}

func TestSenderDeliverStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, statusSequence(500))
	s := newTestSender(t, SenderConfig{BaseDelay: time.Hour, MaxDelay: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	n := 0
	_, err := s.Deliver(ctx, rc.URL, rc.secret, "msg_cancel", []byte(`{}`), func(Attempt) {
		n++
		cancel() // the caller shuts down while Deliver waits an hour
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver error = %v, want context.Canceled", err)
	}
	if n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestSenderRejectsBadInputWithoutAttempting(t *testing.T) {
	t.Parallel()
	s := newTestSender(t, SenderConfig{})
	tests := []struct {
		name, url, secret, id string
		wantErr               error
	}{
		{name: "bad URL", url: "ftp://example.com/", secret: NewSecret(), id: "msg_1", wantErr: ErrInvalidURL},
		{name: "bad secret", url: "http://127.0.0.1:1/", secret: "whsec_***", id: "msg_1", wantErr: ErrInvalidSecret},
		{name: "bad id", url: "http://127.0.0.1:1/", secret: NewSecret(), id: "msg.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Deliver(t.Context(), tt.url, tt.secret, tt.id, nil, func(a Attempt) {
				t.Errorf("attempt made: %+v", a)
			})
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("Deliver = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSenderConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  SenderConfig
		ok   bool
	}{
		{name: "zero", cfg: SenderConfig{}, ok: true},
		{name: "negative timeout", cfg: SenderConfig{Timeout: -1}},
		{name: "negative attempts", cfg: SenderConfig{MaxAttempts: -1}},
		{name: "negative delay", cfg: SenderConfig{BaseDelay: -1}},
		{name: "base above max", cfg: SenderConfig{BaseDelay: time.Minute, MaxDelay: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewSender(tt.cfg); (err == nil) != tt.ok {
				t.Errorf("NewSender(%+v) error = %v, want ok=%v", tt.cfg, err, tt.ok)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	s, err := NewSender(SenderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	server := &StatusError{StatusCode: 500}
	for _, tt := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{7, 30 * time.Second, time.Minute},
		{100, 30 * time.Second, time.Minute},
	} {
		for range 50 {
			d, ok := s.retryDelay(tt.attempt, server)
			if !ok || d < tt.min || d > tt.max {
				t.Fatalf("retryDelay(%d) = %s, %v; want in [%s, %s]", tt.attempt, d, ok, tt.min, tt.max)
			}
		}
	}
	if d, ok := s.retryDelay(1, &StatusError{StatusCode: 429, RetryAfter: 30 * time.Second}); !ok || d != 30*time.Second {
		t.Errorf("retryDelay with Retry-After 30s = %s, %v; want 30s, true", d, ok)
	}
	if _, ok := s.retryDelay(1, &StatusError{StatusCode: 429, RetryAfter: 2 * time.Minute}); ok {
		t.Error("retryDelay with Retry-After 2m (above MaxRetryAfter 1m) should give up")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{"Sun, 29 Mar 2026 12:01:30 GMT", 90 * time.Second},
		{"Sun, 29 Mar 2026 11:00:00 GMT", 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{&StatusError{StatusCode: 500}, true},
		{&StatusError{StatusCode: 503}, true},
		{&StatusError{StatusCode: 429}, true},
		{&StatusError{StatusCode: 400}, false},
		{&StatusError{StatusCode: 404}, false},
		{&StatusError{StatusCode: 301}, false},
		{ErrForbiddenAddress, false},
		{context.DeadlineExceeded, true},
		{syscall.ECONNREFUSED, true},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
