package worker

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A replica's port is picked by the worker, closed, and bound by the
// replica a moment later. With host networking any program on the host
// (another job's, of another workspace) may bind it in between, or after
// the replica died, and answer the readiness probe: the routers would then
// send the deployment's requests, and its data, there. So before a replica
// is ready, and on every later probe, the worker checks in /proc that the
// socket listening on the port is held by one of the replica's own
// processes.

// portOwnership is what portOwner.check found on a port.
type portOwnership int

const (
	// portFree: nothing listens on the port where the probe connects.
	portFree portOwnership = iota
	// portOwned: every socket listening there is held by the workload.
	portOwned
	// portForeign: a socket listening there is held by no process of the
	// workload (or the workload has no process to hold it).
	portForeign
)

func (o portOwnership) String() string {
	return [...]string{"free", "owned", "foreign"}[o]
}

// tcpListener is one listening TCP socket of /proc/net/tcp or tcp6.
type tcpListener struct {
	addr  netip.Addr
	port  int
	inode uint64
}

// tcpListen is the state of a listening socket in /proc/net/tcp (TCP_LISTEN).
const tcpListen = "0A"

// parseProcNetTCP reads the listening sockets of a /proc/net/tcp or
// /proc/net/tcp6 file: "sl local_address rem_address st ... uid timeout
// inode ...", addresses as hex words in host byte order and a hex port.
func parseProcNetTCP(r io.Reader) ([]tcpListener, error) {
	var out []tcpListener
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("local address %q: no port", f[1])
		}
		addr, err := parseProcAddr(hexAddr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("local address %q: port: %w", f[1], err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("inode %q: %w", f[9], err)
		}
		out = append(out, tcpListener{addr: addr, port: int(port), inode: inode})
	}
	return out, sc.Err()
}

// parseProcAddr decodes an address of /proc/net/tcp{,6}: 8 (IPv4) or 32
// (IPv6) hex digits, 32-bit words each printed in host byte order.
func parseProcAddr(s string) (netip.Addr, error) {
	raw, err := hex.DecodeString(s)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, fmt.Errorf("address %q: want 8 or 32 hex digits", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}

// listens reports whether a connection to ip:port may reach l: same port,
// and l's address is ip, a wildcard, or ip mapped into IPv6. An invalid ip
// (the advertise host is a name) takes every address of the port.
func (l tcpListener) listens(ip netip.Addr, port int) bool {
	if l.port != port {
		return false
	}
	a := l.addr.Unmap()
	return !ip.IsValid() || a.IsUnspecified() || a == ip.Unmap()
}

// parseStat reads ppid and pgrp from a /proc/PID/stat line,
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and parens.
func parseStat(b []byte) (ppid, pgrp int, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, 0, errors.New("stat: too few fields")
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("stat: ppid: %w", err)
	}
	if pgrp, err = strconv.Atoi(f[2]); err != nil {
		return 0, 0, fmt.Errorf("stat: pgrp: %w", err)
	}
	return ppid, pgrp, nil
}

// portOwner checks ports against the processes of a workload, in a proc
// file system mounted at root ("/proc" when empty).
type portOwner struct {
	root string
}

func (p portOwner) dir() string { return cmp.Or(p.root, "/proc") }

func (p portOwner) path(elem ...string) string {
	return filepath.Join(append([]string{p.dir()}, elem...)...)
}

// netFile is the path of /proc's net file name as the calling thread
// sees it. /proc/net is the thread group leader's view, which need not be
// the namespace the worker's probes connect from: a thread moved into
// another network namespace that cannot end (the process's main thread,
// wedged by the Go runtime when its goroutine exits locked) stays there,
// and /proc/net with it. /proc/thread-self/net is the view of the thread
// that opens it, one the Go scheduler runs goroutines on.
func (p portOwner) netFile(name string) string {
	if p.root == "" {
		if _, err := os.Stat("/proc/thread-self/net"); err == nil {
			return "/proc/thread-self/net/" + name
		}
	}
	return p.path("net", name)
}

// listeners are the sockets where a connection to ip:port may arrive,
// from the worker's network namespace (the host's, with host networking).
func (p portOwner) listeners(ip netip.Addr, port int) ([]tcpListener, error) {
	var out []tcpListener
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(p.netFile(name))
		if errors.Is(err, os.ErrNotExist) && name == "tcp6" {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			return nil, err
		}
		ls, err := parseProcNetTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.netFile(name), err)
		}
		for _, l := range ls {
			if l.listens(ip, port) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// sockets adds the inodes of the sockets pid holds to held.
func (p portOwner) sockets(pid int, held map[uint64]bool) {
	dir := p.path(strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // gone, or not ours to read: holds nothing we can see
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				held[n] = true
			}
		}
	}
}

// workload is the processes of the workload rooted at root: root, its
// descendants (in a container with a PID namespace of its own, orphans
// are re-parented to its first process, so this is the whole container),
// and the members of root's process group (a process workload's group,
// which holds its double-forked children too). root itself comes first.
func (p portOwner) workload(root int) []int {
	entries, err := os.ReadDir(p.dir())
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	var group []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		b, err := os.ReadFile(p.path(e.Name(), "stat"))
		if err != nil {
			continue
		}
		ppid, pgrp, err := parseStat(b)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		if pgrp == root {
			group = append(group, pid)
		}
	}
	out := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(out); i++ {
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	for _, g := range group {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// check says who holds the sockets listening where a connection to
// ip:port arrives: the workload rooted at root (0: it has no process yet,
// so a listener is foreign), nobody, or someone else. inode names a
// foreign socket.
func (p portOwner) check(root int, ip netip.Addr, port int) (own portOwnership, inode uint64, err error) {
	ls, err := p.listeners(ip, port)
	if err != nil {
		return portForeign, 0, fmt.Errorf("read the listening sockets: %w", err)
	}
	if len(ls) == 0 {
		return portFree, 0, nil
	}
	if root <= 0 {
		return portForeign, ls[0].inode, nil
	}
	held := map[uint64]bool{}
	// The common case, cheap: the workload's first process listens itself.
	p.sockets(root, held)
	if foreign := missing(ls, held); foreign == 0 {
		return portOwned, 0, nil
	}
	for _, pid := range p.workload(root)[1:] {
		p.sockets(pid, held)
	}
	if foreign := missing(ls, held); foreign != 0 {
		return portForeign, foreign, nil
	}
	return portOwned, 0, nil
}

// missing is the inode of a listener of ls not in held, or 0.
func missing(ls []tcpListener, held map[uint64]bool) uint64 {
	for _, l := range ls {
		if !held[l.inode] {
			return l.inode
		}
	}
	return 0
}
