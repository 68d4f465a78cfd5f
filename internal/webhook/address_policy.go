package webhook

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// AddressPolicy decides which IP addresses outbound webhooks may connect to.
// The zero value allows public unicast addresses only.
//
// Always refused, whatever the policy: unspecified (0.0.0.0, ::), "this
// network" 0.0.0.0/8, link-local (169.254.0.0/16 with the cloud metadata
// address 169.254.169.254, fe80::/10), multicast, reserved and broadcast
// (240.0.0.0/4), and IPv4-compatible ::/96. Loopback (127.0.0.0/8, ::1) needs
// AllowLoopback; private ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
// fc00::/7, fec0::/10, CGNAT 100.64.0.0/10, benchmarking 198.18.0.0/15) need
// AllowPrivate. IPv4-mapped IPv6 (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and
// 6to4 (2002::/16) addresses are judged by the IPv4 address they carry.
type AddressPolicy struct {
	// AllowLoopback lets webhooks reach this host: for `jobgate dev` and tests.
	AllowLoopback bool
	// AllowPrivate lets webhooks reach private networks: for a gateway whose
	// receivers live on the same private network.
	AllowPrivate bool
}

var (
	prefixThisNetwork  = netip.MustParsePrefix("0.0.0.0/8")
	prefixCGNAT        = netip.MustParsePrefix("100.64.0.0/10")
	prefixBenchmarking = netip.MustParsePrefix("198.18.0.0/15")
	prefixReserved     = netip.MustParsePrefix("240.0.0.0/4")
	prefixSiteLocal    = netip.MustParsePrefix("fec0::/10")
	prefixV4Compatible = netip.MustParsePrefix("::/96")
	prefixNAT64        = netip.MustParsePrefix("64:ff9b::/96")
	prefix6to4         = netip.MustParsePrefix("2002::/16")
)

// CheckAddr returns nil when ip may be dialled, and otherwise an error
// wrapping ErrForbiddenAddress that names the kind of address.
func (p AddressPolicy) CheckAddr(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid IP address", ErrForbiddenAddress)
	}
	ip = ip.WithZone("").Unmap()
	if reason := p.refuse(ip); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
	}
	return nil
}

// refuse returns why ip is refused, or "" when it is allowed.
func (p AddressPolicy) refuse(ip netip.Addr) string {
	if ip.Is6() {
		// Addresses that carry an IPv4 address reach that address.
		b := ip.As16()
		switch {
		case prefixNAT64.Contains(ip):
			if r := p.refuse(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
				return "a NAT64 address for one that is " + r
			}
		case prefix6to4.Contains(ip):
			if r := p.refuse(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
				return "a 6to4 address for one that is " + r
			}
		}
	}
	switch {
	case ip.IsUnspecified() || prefixThisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsLoopback():
		if p.AllowLoopback {
			return ""
		}
		return "loopback"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	case prefixReserved.Contains(ip):
		return "reserved"
	case prefixV4Compatible.Contains(ip):
		return "an IPv4-compatible IPv6 address"
	case ip.IsPrivate() || prefixCGNAT.Contains(ip) || prefixBenchmarking.Contains(ip) || prefixSiteLocal.Contains(ip):
		if p.AllowPrivate {
			return ""
		}
		return "private"
	}
	return ""
}

// Control is a net.Dialer Control function: it runs after the socket is
// created and before it connects, with the address a host name resolved to,
// and refuses addresses the policy does not allow. Checking there, rather than
// when a URL is submitted, defeats DNS rebinding: the address checked is the
// address connected to. Errors wrap ErrForbiddenAddress.
func (p AddressPolicy) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s address %q: %v", ErrForbiddenAddress, network, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s address %q is not an IP address", ErrForbiddenAddress, network, address)
	}
	return p.CheckAddr(ip)
}

// ValidateURL checks a callback URL when it is submitted: an absolute http or
// https URL with a host and no user:password. A host given as an IP literal is
// checked against the policy now; a host name is checked when it is dialled
// (see Control), except that "localhost" is refused here unless loopback is
// allowed, and so are numeric host names that are not plain IP addresses
// ("2130706433", "0x7f.1"), which some resolvers read as addresses.
//
// Errors wrap ErrInvalidURL or ErrForbiddenAddress.
func ValidateURL(raw string, p AddressPolicy) error {
	const maxURL = 2048
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	if len(raw) > maxURL {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https, not %q", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: not an absolute URL with a host", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: must not hold a user name or password", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: bad port %q", ErrInvalidURL, port)
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(ip)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if endsInNumber(name) {
		return fmt.Errorf("%w: numeric host %q is not a plain IP address", ErrInvalidURL, host)
	}
	if !p.AllowLoopback && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		return fmt.Errorf("%w: %s is loopback", ErrForbiddenAddress, host)
	}
	return nil
}

// endsInNumber reports whether a host name's last label is a number, decimal
// or 0x-hex: the WHATWG URL rule for "this host is an IPv4 address".
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	digits := last
	isHex := false
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		digits, isHex = rest, true
	}
	for _, c := range digits {
		switch {
		case '0' <= c && c <= '9':
		case isHex && ('a' <= c && c <= 'f'):
		default:
			return false
		}
	}
	return true
}
