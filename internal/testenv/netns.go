package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/devenv"
)

// Network is a set of "hosts" on one machine for a test: each host a network
// namespace of its own with one interface, eth0, cabled by a veth pair to a
// bridge in a separate "switch" namespace. The hosts share one /24 out of
// 198.18.0.0/15 (the benchmarking range, routed nowhere): host i (from 1) is
// PREFIX.i. The test process, in the machine's own namespace, gets one more
// veth into the switch, PREFIX.254, so it reaches the hosts; only that /24 is
// routed to it, and no host has a default route, so nothing on a host can
// reach the machine's real network, nor the loopback services of other tests.
//
// Everything is removed when the test ends: the processes started with
// Host.Start are stopped by PID first, then the namespaces are deleted (which
// deletes their veths). Namespace names are global, so each Network's carry a
// random suffix; a run killed before its cleanup leaves namespaces behind,
// and the next Hosts call removes those whose test process is gone.
type Network struct {
	// Prefix is the hosts' /24 without its last byte, e.g. "198.18.7".
	Prefix string
	// RootIP is the test process's own address on the hosts' network.
	RootIP string
	// Hosts are the hosts, Hosts[0] at Prefix.1.
	Hosts []*Host

	t      testing.TB
	base   string // the namespaces' common name prefix
	sw     string // the switch namespace
	rootIf string // the test process's veth, in the machine's namespace
}

// Host is one network namespace of a Network.
type Host struct {
	// Name is the host's short name, h1, h2, ...
	Name string
	// NS is its network namespace (ip netns list), /run/netns/NS.
	NS string
	// IP is its address, e.g. 198.18.7.1.
	IP string

	net  *Network
	port string // its veth end in the switch namespace

	// mu guards the fields below.
	mu    sync.Mutex
	procs []*hostProc
}

type hostProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// netnsPrefix starts the name of every namespace Hosts makes; the test
// process's PID follows it, so a later run can tell stale ones.
const netnsPrefix = "jobgate-"

var netnsSweep sync.Once

// Hosts makes n hosts (at most 250) and a switch between them, and returns
// them; they are removed when the test ends. Where namespaces cannot be made
// (not root, no CAP_SYS_ADMIN and CAP_NET_ADMIN, no iproute2 or nsenter, no
// veth or bridge support in the kernel) the test is skipped, or fails under
// JOBGATE_INTEGRATION=1, with a message saying what is needed.
func Hosts(t testing.TB, n int) *Network {
	t.Helper()
	if n < 1 || n > 250 {
		t.Fatalf("testenv.Hosts: %d hosts; want 1 to 250", n)
	}
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not found: the multi-host test makes its hosts with network namespaces: apt-get install -y iproute2 util-linux, and run it as root (or run make test)", bin)
		}
	}
	netnsSweep.Do(sweepStaleNetns)

	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b[:])
	nw := &Network{t: t, base: fmt.Sprintf("%s%d-%s-", netnsPrefix, os.Getpid(), suffix), rootIf: "jg" + suffix}
	nw.sw = nw.base + "sw"
	nw.Prefix = freePrefix()
	nw.RootIP = nw.Prefix + ".254"
	t.Cleanup(nw.remove)

	// The first namespace tells whether this process may make them at all.
	if out, err := exec.Command("ip", "netns", "add", nw.sw).CombinedOutput(); err != nil {
		skipOrFail(t, "cannot make a network namespace (ip netns add: %v: %s): the multi-host test needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN (CI runs it as root)",
			err, strings.TrimSpace(string(out)))
	}
	nw.ip(true, "-n", nw.sw, "link", "set", "lo", "up")
	if err := nw.try("-n", nw.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		skipOrFail(t, "cannot make a bridge in a network namespace (%v): the multi-host test needs the kernel's bridge support (modprobe bridge)", err)
	}
	nw.ip(true, "-n", nw.sw, "link", "set", "br0", "up")

	// The test process's own cable: jgSUFFIX here, "root" in the switch.
	if err := nw.try("link", "add", nw.rootIf, "type", "veth", "peer", "name", "root", "netns", nw.sw); err != nil {
		skipOrFail(t, "cannot make a veth pair (%v): the multi-host test needs the kernel's veth support (modprobe veth)", err)
	}
	nw.ip(true, "-n", nw.sw, "link", "set", "root", "master", "br0", "up")
	nw.ip(true, "addr", "add", nw.RootIP+"/24", "dev", nw.rootIf)
	nw.ip(true, "link", "set", nw.rootIf, "up")

	for i := 1; i <= n; i++ {
		h := &Host{Name: "h" + strconv.Itoa(i), IP: fmt.Sprintf("%s.%d", nw.Prefix, i), net: nw}
		h.NS, h.port = nw.base+h.Name, h.Name
		nw.Hosts = append(nw.Hosts, h)
		nw.ip(true, "netns", "add", h.NS)
		nw.ip(true, "-n", h.NS, "link", "set", "lo", "up")
		// Made in place: eth0 in the host, hN in the switch, so no name is
		// ever taken in the machine's own namespace.
		nw.ip(true, "-n", h.NS, "link", "add", "eth0", "type", "veth", "peer", "name", h.port, "netns", nw.sw)
		nw.ip(true, "-n", nw.sw, "link", "set", h.port, "master", "br0", "up")
		nw.ip(true, "-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
		nw.ip(true, "-n", h.NS, "link", "set", "eth0", "up")
	}
	// The bridge forwards at once (no STP); wait until each host answers
	// the test process (a refused connection is an answer).
	for _, h := range nw.Hosts {
		Eventually(t, 10*time.Second, func() bool { return reachable(h.Addr(9)) },
			"host %s (%s) does not answer the test process", h.Name, h.IP)
	}
	return nw
}

// reachable says whether something answers at addr, if only to refuse.
func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// freePrefix picks a /24 of 198.18.0.0/15 that no interface of this machine
// is on, so that two tests (or a stale run) never share a route.
func freePrefix() string {
	taken := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ip := ipn.IP.To4()
				taken[fmt.Sprintf("%d.%d.%d", ip[0], ip[1], ip[2])] = true
			}
		}
	}
	for {
		n := mrand.IntN(512)
		p := fmt.Sprintf("198.%d.%d", 18+n/256, n%256)
		if !taken[p] {
			return p
		}
	}
}

// ip runs ip(8) with args and fails the test when it fails (must) or logs it.
func (nw *Network) ip(must bool, args ...string) {
	nw.t.Helper()
	if err := nw.try(args...); err != nil {
		if must {
			nw.t.Fatal(err)
		}
		nw.t.Log(err)
	}
}

func (nw *Network) try(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// remove stops what runs on the hosts and deletes the namespaces.
func (nw *Network) remove() {
	for _, h := range nw.Hosts {
		h.stopAll()
	}
	for _, h := range nw.Hosts {
		killNetnsPids(nw.t, h.NS)
		_ = nw.try("netns", "del", h.NS)
	}
	// The switch's veths go with it, the test process's own included.
	_ = nw.try("netns", "del", nw.sw)
	_ = nw.try("link", "del", nw.rootIf)
}

// killNetnsPids kills what still runs in the namespace ns: what the
// processes started there left (a container's conmon, say). They hold the
// namespace, and its veth, alive after its name is deleted.
func killNetnsPids(t testing.TB, ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if t != nil {
			t.Logf("testenv: killing process %d left in network namespace %s", pid, ns)
		} else {
			log.Printf("testenv: killing process %d left in network namespace %s", pid, ns)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// sweepStaleNetns deletes the namespaces of earlier runs whose test process
// is gone (killed before its cleanup ran), with what still runs in them.
func sweepStaleNetns() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pid, ok := netnsOwner(rest)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		log.Printf("testenv: deleting network namespace %s: its test process %d is gone", e.Name(), pid)
		killNetnsPids(nil, e.Name())
		_ = exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// netnsOwner reads the test process's PID from the rest of a name Hosts
// made (netnsPrefix, then "PID-suffix-host"); ok is false for any other
// shape, which this harness did not make and so leaves alone.
func netnsOwner(rest string) (pid int, ok bool) {
	pidText, tail, found := strings.Cut(rest, "-")
	if !found || tail == "" || pidText == "" || strings.TrimLeft(pidText, "0123456789") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Addr is host:port on this host.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// Command is exec.Command(name, args...) run inside the host's network
// namespace, and only that: it is nsenter --net, not ip netns exec, since
// the latter also remounts /sys, which hides the cgroup mounts runc needs
// (podman on a host fails with "no cgroup mount found"). Start it with
// Start so that it is stopped when the test ends.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	w := h.Wrap()
	return exec.Command(w[0], append(append(w[1:], name), args...)...)
}

// Wrap is the command line Command puts before a program's, for a harness
// that makes its own exec.Cmd (S3Options.Wrap): it execs the program, so
// the PID is the program's.
func (h *Host) Wrap() []string { return []string{"nsenter", "--net=/run/netns/" + h.NS, "--"} }

// Start starts cmd (made by Command) in a process group of its own and
// returns a channel closed when it has exited. When the test ends it gets
// SIGTERM, and SIGKILL 10 s later, by PID, before the namespaces go.
// nsenter execs the command, so the PID is the command's own. What it
// leaves running in the namespace (a container's conmon, say) is killed by
// killNetnsPids before the namespace is deleted.
func (h *Host) Start(cmd *exec.Cmd) <-chan struct{} {
	t := h.net.t
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	exited, err := devenv.StartTied(cmd)
	if err != nil {
		t.Fatalf("start %s on %s: %v", strings.Join(cmd.Args, " "), h.Name, err)
	}
	done := make(chan struct{})
	// Ends when the process does; its exit status is in cmd.ProcessState.
	go func() { <-exited; close(done) }()
	p := &hostProc{cmd: cmd, done: done}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	t.Cleanup(func() { p.stop(10 * time.Second) })
	return done
}

// stop sends SIGTERM to the process (by PID, not its group), then SIGKILL
// after grace.
func (p *hostProc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll kills what was started on this host that still runs, and waits.
func (h *Host) stopAll() {
	h.mu.Lock()
	procs := h.procs
	h.mu.Unlock()
	for _, p := range procs {
		p.stop(0)
	}
}

// LinkDown cuts the host off: its cable's end in the switch goes down, as if
// pulled from the switch. The host keeps its address; packets to and from
// it are dropped (no reset reaches anyone), until LinkUp.
func (h *Host) LinkDown() {
	h.net.t.Helper()
	h.net.ip(true, "-n", h.net.sw, "link", "set", h.port, "down")
}

// LinkUp plugs the host back in.
func (h *Host) LinkUp() {
	h.net.t.Helper()
	h.net.ip(true, "-n", h.net.sw, "link", "set", h.port, "up")
}
