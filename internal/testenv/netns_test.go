package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestHosts checks the namespaces Hosts makes: the hosts reach each other
// and the test process reaches them, by their 198.18 addresses, nothing else
// is routed, a host cut off reaches no one until plugged back in, and
// nothing is left when the test ends.
func TestHosts(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not found: apt-get install -y redis-server (or run make test)")
	}
	var nw *Network
	t.Run("hosts", func(t *testing.T) {
		nw = Hosts(t, 2)
		h1, h2 := nw.Hosts[0], nw.Hosts[1]
		if !strings.HasPrefix(h1.IP, "198.1") || h2.IP != nw.Prefix+".2" || nw.RootIP != nw.Prefix+".254" {
			t.Fatalf("addresses: h1 %s, h2 %s, root %s", h1.IP, h2.IP, nw.RootIP)
		}
		h1.Start(h1.Command("redis-server", "--bind", h1.IP, "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"))
		rdb := redis.NewClient(&redis.Options{Addr: h1.Addr(6379), MaxRetries: -1, DialTimeout: time.Second})
		defer rdb.Close()
		Eventually(t, 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil }, "the test process does not reach redis-server on h1")

		// From h2, by h1's address; 127.0.0.1 on h2 is h2's own loopback.
		cli := func(h *Host, args ...string) (string, error) {
			out, err := h.Command("timeout", append([]string{"2", "redis-cli"}, args...)...).CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		if out, err := cli(h2, "-h", h1.IP, "-p", "6379", "ping"); err != nil || out != "PONG" {
			t.Fatalf("h2 → h1: %q, %v; want PONG", out, err)
		}
		if out, err := cli(h2, "-h", "127.0.0.1", "-p", "6379", "ping"); err == nil {
			t.Fatalf("h2 → its own 127.0.0.1:6379 answered %q; h1's Redis must not be on h2's loopback", out)
		}
		// Nothing but the hosts' /24 is routed: not the machine's own
		// addresses, not its loopback.
		if out, err := h2.Command("ip", "-4", "route", "show").Output(); err != nil || strings.TrimSpace(string(out)) != nw.Prefix+".0/24 dev eth0 proto kernel scope link src "+h2.IP {
			t.Fatalf("h2's routes: %q, %v; want only the hosts' /24", out, err)
		}

		// Cut off, h1 answers neither h2 nor the test process.
		h1.LinkDown()
		if out, err := cli(h2, "-h", h1.IP, "-p", "6379", "ping"); err == nil {
			t.Fatalf("h2 → h1 with h1's link down: %q; want no answer", out)
		}
		if c, err := net.DialTimeout("tcp", h1.Addr(6379), 300*time.Millisecond); err == nil {
			c.Close()
			t.Fatal("the test process reached h1 with h1's link down")
		}
		h1.LinkUp()
		Eventually(t, 10*time.Second, func() bool {
			out, err := cli(h2, "-h", h1.IP, "-p", "6379", "ping")
			return err == nil && out == "PONG"
		},
			"h2 does not reach h1 again after its link came back")
	})
	if nw == nil {
		return
	}
	// The subtest's cleanup has run: no namespace, veth or process is left.
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), nw.base) {
			t.Errorf("namespace %s is left after the test", e.Name())
		}
	}
	if _, err := net.InterfaceByName(nw.rootIf); err == nil {
		t.Errorf("the test process's veth %s is left after the test", nw.rootIf)
	}
	for _, h := range nw.Hosts {
		for _, p := range h.procs {
			if p.cmd.ProcessState == nil {
				t.Errorf("%s on %s still runs after the test", p.cmd.Args, h.Name)
			}
		}
	}
}

// The sweep touches only names Hosts makes: netnsPrefix, a PID, the rest.
func TestHostsNetnsOwner(t *testing.T) {
	for _, tc := range []struct {
		rest string
		pid  int
		ok   bool
	}{
		{"1234-ab12-sw", 1234, true},
		{"99-x-h0", 99, true},
		{"1234", 0, false},
		{"1234-", 0, false},
		{"-ab-sw", 0, false},
		{"+12-ab-sw", 0, false},
		{"x12-ab-sw", 0, false},
		{"1-ab-sw", 0, false},
		{"0-ab-sw", 0, false},
		{"mine", 0, false},
	} {
		pid, ok := netnsOwner(tc.rest)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("netnsOwner(%q) = %d, %v; want %d, %v", tc.rest, pid, ok, tc.pid, tc.ok)
		}
	}
}
