package webhook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestAddressPolicyCheckAddr(t *testing.T) {
	t.Parallel()
	var (
		strict   = AddressPolicy{}
		loopback = AddressPolicy{AllowLoopback: true}
		private  = AddressPolicy{AllowPrivate: true}
		both     = AddressPolicy{AllowLoopback: true, AllowPrivate: true}
	)
	tests := []struct {
		addr    string
		policy  AddressPolicy
		allowed bool
		reason  string
	}{
		{addr: "93.184.215.14", policy: strict, allowed: true},
		{addr: "2606:4700::6810:84e5", policy: strict, allowed: true},
		{addr: "8.8.8.8", policy: strict, allowed: true},

		{addr: "127.0.0.1", policy: strict, reason: "loopback"},
		{addr: "127.1.2.3", policy: strict, reason: "loopback"},
		{addr: "::1", policy: strict, reason: "loopback"},
		{addr: "::ffff:127.0.0.1", policy: strict, reason: "loopback"},
		{addr: "127.0.0.1", policy: loopback, allowed: true},
		{addr: "::1", policy: loopback, allowed: true},
		{addr: "127.0.0.1", policy: private, reason: "loopback"},

		{addr: "10.0.0.1", policy: strict, reason: "private"},
		{addr: "10.88.0.2", policy: loopback, reason: "private"},
		{addr: "172.16.0.1", policy: strict, reason: "private"},
		{addr: "172.31.255.255", policy: strict, reason: "private"},
		{addr: "172.32.0.1", policy: strict, allowed: true},
		{addr: "192.168.1.1", policy: strict, reason: "private"},
		{addr: "100.64.0.1", policy: strict, reason: "private"},
		{addr: "100.127.255.254", policy: strict, reason: "private"},
		{addr: "198.18.0.1", policy: strict, reason: "private"},
		{addr: "fd00::1", policy: strict, reason: "private"},
		{addr: "fec0::1", policy: strict, reason: "private"},
		{addr: "::ffff:10.0.0.1", policy: strict, reason: "private"},
		{addr: "64:ff9b::a00:1", policy: strict, reason: "NAT64"},
		{addr: "64:ff9b::7f00:1", policy: strict, reason: "loopback"},
		{addr: "2002:a00:1::1", policy: strict, reason: "6to4"},
		{addr: "2002:5db8:d70e::1", policy: strict, allowed: true},
		{addr: "10.0.0.1", policy: private, allowed: true},
		{addr: "fd00::1", policy: private, allowed: true},
		{addr: "100.64.0.1", policy: private, allowed: true},

		// Never allowed, whatever the policy.
		{addr: "169.254.169.254", policy: both, reason: "link-local"},
		{addr: "fe80::1", policy: both, reason: "link-local"},
		{addr: "fe80::1%eth0", policy: both, reason: "link-local"},
		{addr: "0.0.0.0", policy: both, reason: "unspecified"},
		{addr: "0.1.2.3", policy: both, reason: "unspecified"},
		{addr: "::", policy: both, reason: "unspecified"},
		{addr: "224.0.0.1", policy: both, reason: "link-local"},
		{addr: "239.1.1.1", policy: both, reason: "multicast"},
		{addr: "ff02::1", policy: both, reason: "link-local"},
		{addr: "ff05::1", policy: both, reason: "multicast"},
		{addr: "255.255.255.255", policy: both, reason: "reserved"},
		{addr: "240.0.0.1", policy: both, reason: "reserved"},
		{addr: "::7f00:1", policy: both, reason: "IPv4-compatible"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := tt.policy.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.allowed {
				if err != nil {
					t.Fatalf("CheckAddr(%s) with %+v: %v", tt.addr, tt.policy, err)
				}
				return
			}
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("CheckAddr(%s) with %+v = %v, want ErrForbiddenAddress", tt.addr, tt.policy, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("CheckAddr(%s) = %q, want reason %q", tt.addr, err, tt.reason)
			}
		})
	}
	if err := strict.CheckAddr(netip.Addr{}); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("CheckAddr(zero Addr) = %v, want ErrForbiddenAddress", err)
	}
}

// The dialer calls Control with the resolved address before it connects;
// these calls are what it passes. Nothing is dialled here.
func TestAddressPolicyControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		network, address string
		allowed          bool
	}{
		{network: "tcp4", address: "93.184.215.14:443", allowed: true},
		{network: "tcp6", address: "[2606:4700::6810:84e5]:443", allowed: true},
		{network: "tcp4", address: "10.0.0.1:80"},
		{network: "tcp4", address: "169.254.169.254:80"},
		{network: "tcp4", address: "127.0.0.1:8080"},
		{network: "tcp6", address: "[::1]:8080"},
		{network: "tcp6", address: "[fe80::1%eth0]:80"},
		{network: "tcp", address: "not-an-address"},
		{network: "tcp", address: "example.com:80"},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			t.Parallel()
			err := AddressPolicy{}.Control(tt.network, tt.address, nil)
			if tt.allowed != (err == nil) {
				t.Fatalf("Control(%s, %s) = %v, want allowed=%v", tt.network, tt.address, err, tt.allowed)
			}
			if err != nil && !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("Control error = %v, want ErrForbiddenAddress", err)
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		policy  AddressPolicy
		wantErr error
	}{
		{name: "https host", url: "https://hooks.example.com/jobgate?token=x"},
		{name: "http host and port", url: "http://hooks.example.com:8080/cb"},
		{name: "public IP literal", url: "http://93.184.215.14/cb"},
		{name: "public IPv6 literal", url: "http://[2606:4700::6810:84e5]:8443/cb"},
		{name: "upper-case scheme", url: "HTTPS://hooks.example.com/"},
		{name: "loopback allowed", url: "http://127.0.0.1:9000/", policy: AddressPolicy{AllowLoopback: true}},
		{name: "localhost allowed", url: "http://localhost:9000/", policy: AddressPolicy{AllowLoopback: true}},
		{name: "private allowed", url: "http://10.1.2.3/", policy: AddressPolicy{AllowPrivate: true}},

		{name: "empty", url: "", wantErr: ErrInvalidURL},
		{name: "relative", url: "/hooks/x", wantErr: ErrInvalidURL},
		{name: "no scheme", url: "hooks.example.com/x", wantErr: ErrInvalidURL},
		{name: "ftp", url: "ftp://hooks.example.com/", wantErr: ErrInvalidURL},
		{name: "file", url: "file:///etc/passwd", wantErr: ErrInvalidURL},
		{name: "gopher", url: "gopher://127.0.0.1:6379/_FLUSHALL", wantErr: ErrInvalidURL},
		{name: "opaque", url: "http:hooks.example.com", wantErr: ErrInvalidURL},
		{name: "userinfo", url: "https://user:pass@hooks.example.com/", wantErr: ErrInvalidURL},
		{name: "user only", url: "https://user@hooks.example.com/", wantErr: ErrInvalidURL},
		{name: "no host", url: "http:///path", wantErr: ErrInvalidURL},
		{name: "port zero", url: "http://hooks.example.com:0/", wantErr: ErrInvalidURL},
		{name: "port too big", url: "http://hooks.example.com:70000/", wantErr: ErrInvalidURL},
		{name: "bad escape", url: "http://hooks.example.com/%zz", wantErr: ErrInvalidURL},
		{name: "too long", url: "https://hooks.example.com/" + strings.Repeat("a", 2048), wantErr: ErrInvalidURL},
		{name: "decimal IPv4", url: "http://2130706433/", wantErr: ErrInvalidURL},
		{name: "hex IPv4", url: "http://0x7f000001/", wantErr: ErrInvalidURL},
		{name: "short IPv4", url: "http://127.1/", wantErr: ErrInvalidURL},
		{name: "trailing dot IPv4", url: "http://127.0.0.1./", wantErr: ErrInvalidURL},

		{name: "loopback", url: "http://127.0.0.1:8080/", wantErr: ErrForbiddenAddress},
		{name: "loopback IPv6", url: "http://[::1]:8080/", wantErr: ErrForbiddenAddress},
		{name: "mapped loopback", url: "http://[::ffff:127.0.0.1]/", wantErr: ErrForbiddenAddress},
		{name: "localhost", url: "http://localhost:8080/", wantErr: ErrForbiddenAddress},
		{name: "LOCALHOST.", url: "http://LOCALHOST./", wantErr: ErrForbiddenAddress},
		{name: "sub.localhost", url: "http://api.localhost/", wantErr: ErrForbiddenAddress},
		{name: "private", url: "http://10.0.0.1/", wantErr: ErrForbiddenAddress},
		{name: "podman bridge", url: "http://10.88.0.5:8080/", policy: AddressPolicy{AllowLoopback: true}, wantErr: ErrForbiddenAddress},
		{name: "metadata", url: "http://169.254.169.254/latest/meta-data/", policy: AddressPolicy{AllowLoopback: true, AllowPrivate: true}, wantErr: ErrForbiddenAddress},
		{name: "link-local with zone", url: "http://[fe80::1%25eth0]/", wantErr: ErrForbiddenAddress},
		{name: "unspecified", url: "http://0.0.0.0:8080/", policy: AddressPolicy{AllowLoopback: true}, wantErr: ErrForbiddenAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateURL(tt.url, tt.policy)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateURL(%q): %v", tt.url, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateURL(%q) = %v, want %v", tt.url, err, tt.wantErr)
			}
		})
	}
}
