package webhook

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"testing"
)

// fakeDNS answers A queries on a loopback UDP port: addrs[name] when the
// name is known, NXDOMAIN otherwise. It never forwards anything.
func fakeDNS(t *testing.T, addrs map[string]net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// The question: labels up to a zero byte, then type and class.
			i, labels := 12, []string{}
			for i < len(q) && q[i] != 0 {
				l := int(q[i])
				if i+1+l > len(q) {
					break
				}
				labels = append(labels, string(q[i+1:i+1+l]))
				i += 1 + l
			}
			end := i + 5
			if end > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[i+1:])
			name := strings.ToLower(strings.Join(labels, "."))
			resp := append([]byte{}, q[:end]...)
			binary.BigEndian.PutUint16(resp[2:], 0x8180) // response, recursion desired and available
			binary.BigEndian.PutUint16(resp[6:], 0)      // answers
			binary.BigEndian.PutUint16(resp[8:], 0)      // authority
			binary.BigEndian.PutUint16(resp[10:], 0)     // additional (the query's EDNS record is dropped)
			ip, ok := addrs[name]
			switch {
			case !ok:
				resp[3] |= 3 // NXDOMAIN
			case qtype == 1: // A
				binary.BigEndian.PutUint16(resp[6:], 1)
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
				resp = append(resp, ip.To4()...)
			}
			pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String()
}

// TestAttemptErrorsAreSafe: what an attempt records (and the API shows the
// job's submitter in its notifications) names neither the sender's DNS
// resolver nor the address a host name resolved to.
func TestAttemptErrorsAreSafe(t *testing.T) {
	t.Parallel()
	dns := fakeDNS(t, map[string]net.IP{"internal.test": net.ParseIP("198.18.0.7")})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/cb"
	closed.Close()

	tests := []struct {
		name, url string
		loopback  bool
		want      string
	}{
		{"host that does not resolve", "http://nosuch.test/cb", false, "cannot resolve host nosuch.test"},
		{"host that resolves to a refused address", "http://internal.test/cb", false, "host internal.test resolves to an address the callback policy does not allow"},
		{"nothing listening", closedURL, true, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSender(SenderConfig{MaxAttempts: 1, Policy: AddressPolicy{AllowLoopback: tt.loopback}})
			if err != nil {
				t.Fatal(err)
			}
			tr := s.client.Transport.(*http.Transport)
			dialer := &net.Dialer{Control: s.cfg.Policy.Control, Resolver: &net.Resolver{PreferGo: true,
				Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "udp", dns)
				}}}
			tr.DialContext = dialer.DialContext
			a, err := s.Send(t.Context(), tt.url, NewSecret(), "msg_x", []byte(`{}`))
			if err == nil {
				t.Fatal("send succeeded")
			}
			if a.Error != tt.want {
				t.Errorf("Attempt.Error = %q, want %q (the error: %v)", a.Error, tt.want, err)
			}
			for _, leak := range []string{dns, "198.18.0.7", "127.0.0.1:"} {
				if strings.Contains(a.Error, leak) {
					t.Errorf("Attempt.Error %q names %s", a.Error, leak)
				}
			}
		})
	}
}
