package worker

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A /proc/net/tcp and tcp6 as a little-endian kernel writes them.
const (
	procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 20 4 30 10 -1
`
	procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6161 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000001000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7171 1 0000000000000000 100 0 0 10 0
`
)

func TestParseProcNetTCP(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []tcpListener
	}{
		{"tcp", procNetTCP, []tcpListener{
			{netip.MustParseAddr("127.0.0.1"), 8080, 4242},
			{netip.MustParseAddr("0.0.0.0"), 22, 17},
			// the established connection (state 01) is no listener
		}},
		{"tcp6", procNetTCP6, []tcpListener{
			{netip.MustParseAddr("::"), 8081, 5151},
			{netip.MustParseAddr("::ffff:127.0.0.1"), 8082, 6161},
			{netip.MustParseAddr("::1"), 8083, 7171},
		}},
		{"header only", "  sl  local_address rem_address   st\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcNetTCP(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := parseProcNetTCP(strings.NewReader("h\n 0: 0100007:1F90 0:0 0A a b c d e 1\n")); err == nil {
		t.Fatal("an odd address parsed")
	}
}

func TestListenerListens(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		addr string
		port int
		ip   netip.Addr
		want bool
	}{
		{"127.0.0.1", 80, lo, true},
		{"0.0.0.0", 80, lo, true},
		{"::", 80, lo, true},
		{"::ffff:127.0.0.1", 80, lo, true},
		{"127.0.0.2", 80, lo, false},
		{"127.0.0.1", 81, lo, false},
		{"10.1.2.3", 80, netip.Addr{}, true}, // a host name: every address of the port
	} {
		l := tcpListener{addr: netip.MustParseAddr(tc.addr), port: tc.port}
		if got := l.listens(tc.ip, 80); got != tc.want {
			t.Errorf("%s:%d listens for %v:80 = %v, want %v", tc.addr, tc.port, tc.ip, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line       string
		ppid, pgrp int
	}{
		{"42 (modelserver) S 7 42 42 0 -1 4194560", 7, 42},
		{"43 (a b) (c)) R 42 40 40 0", 42, 40},
	} {
		ppid, pgrp, err := parseStat([]byte(tc.line))
		if err != nil || ppid != tc.ppid || pgrp != tc.pgrp {
			t.Errorf("parseStat(%q) = %d, %d, %v; want %d, %d", tc.line, ppid, pgrp, err, tc.ppid, tc.pgrp)
		}
	}
	if _, _, err := parseStat([]byte("44 (x")); err == nil {
		t.Error("a stat line without ')' parsed")
	}
}

// fakeProc writes a proc tree: net/tcp, net/tcp6, and per process a stat
// line (ppid, pgrp) and fd links to sockets.
func fakeProc(t *testing.T, procs map[int][3]int, socks map[int][]int) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "net"), 0o755))
	must(os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(procNetTCP), 0o644))
	must(os.WriteFile(filepath.Join(root, "net", "tcp6"), []byte(procNetTCP6), 0o644))
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		must(os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
		must(os.WriteFile(filepath.Join(dir, "stat"), []byte(strconv.Itoa(pid)+" (x) S "+strconv.Itoa(p[0])+" "+strconv.Itoa(p[1])+" 0"), 0o644))
		must(os.Symlink("/dev/null", filepath.Join(dir, "fd", "0")))
		for i, inode := range socks[pid] {
			must(os.Symlink("socket:["+strconv.Itoa(inode)+"]", filepath.Join(dir, "fd", strconv.Itoa(3+i))))
		}
	}
	return root
}

func TestPortOwnerCheck(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	// 100 is the workload's first process, 101 its child, 102 a
	// double-forked member of its group (parent 1), 200 someone else.
	procs := map[int][3]int{100: {1, 100}, 101: {100, 100}, 102: {1, 100}, 200: {1, 200}}
	for _, tc := range []struct {
		name  string
		socks map[int][]int
		root  int
		port  int
		want  portOwnership
		inode uint64
	}{
		{"first process listens", map[int][]int{100: {4242}}, 100, 8080, portOwned, 0},
		{"its child listens", map[int][]int{101: {4242}}, 100, 8080, portOwned, 0},
		{"its group listens", map[int][]int{102: {4242}}, 100, 8080, portOwned, 0},
		{"someone else listens", map[int][]int{200: {4242}}, 100, 8080, portForeign, 4242},
		{"no workload process yet", map[int][]int{200: {4242}}, 0, 8080, portForeign, 4242},
		{"nothing listens", nil, 100, 9999, portFree, 0},
		{"wildcard tcp6 listener is someone else's", map[int][]int{100: {4242}, 200: {5151}}, 100, 8081, portForeign, 5151},
	} {
		t.Run(tc.name, func(t *testing.T) {
			po := portOwner{root: fakeProc(t, procs, tc.socks)}
			got, inode, err := po.check(tc.root, lo, tc.port)
			if err != nil || got != tc.want || inode != tc.inode {
				t.Fatalf("check = %s, inode %d, %v; want %s, inode %d", got, inode, err, tc.want, tc.inode)
			}
		})
	}
}

// TestPortOwnerCheckReal checks against the real /proc: this process's
// listener is its own, and not a child's.
func TestPortOwnerCheckReal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	lo := netip.MustParseAddr("127.0.0.1")
	var po portOwner
	if got, _, err := po.check(os.Getpid(), lo, port); err != nil || got != portOwned {
		t.Fatalf("own listener: %s, %v; want owned", got, err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if got, inode, err := po.check(child.Process.Pid, lo, port); err != nil || got != portForeign || inode == 0 {
		t.Fatalf("a child's view of its parent's listener: %s (inode %d), %v; want foreign", got, inode, err)
	}
	ln.Close()
	if got, _, err := po.check(os.Getpid(), lo, port); err != nil || got != portFree {
		t.Fatalf("closed listener: %s, %v; want free", got, err)
	}
}
