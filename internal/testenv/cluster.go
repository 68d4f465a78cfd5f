package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/devenv"
)

// ClusterService is a three-master Redis Cluster on loopback.
type ClusterService struct {
	// URL is the redis+cluster:// URL of the cluster.
	URL string
	// Addrs are the masters, host:port.
	Addrs []string
}

// clusterMasters is how many masters Cluster starts: the fewest that
// redis-cli --cluster create accepts, and enough that keys on different
// hash tags land on different nodes.
const clusterMasters = 3

// Cluster starts a Redis Cluster for this test (three masters, no
// replicas, slots split by redis-cli --cluster create), stopped when it ends.
// Each test gets its own: jobgate's keys have fixed names, and a Cluster has
// only database 0, so two tests could not share one.
func Cluster(t testing.TB) *ClusterService {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not found: apt-get install -y redis-server redis-tools (or run make test)", bin)
		}
	}
	start := time.Now()
	dir := t.TempDir()
	svc := &ClusterService{}
	for i := 0; i < clusterMasters; i++ {
		addr, err := startClusterNode(t, filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("testenv.Cluster: %v", err)
		}
		svc.Addrs = append(svc.Addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, svc.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv.Cluster: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// redis-cli returns once the nodes agree on the configuration; each
	// node must also see every slot served before a client may start.
	for _, addr := range svc.Addrs {
		if err := waitClusterOK(ctx, addr); err != nil {
			t.Fatalf("testenv.Cluster: node %s: %v (logs in %s)", addr, err, dir)
		}
	}
	svc.URL = "redis+cluster://" + strings.Join(svc.Addrs, ",")
	t.Logf("testenv.Cluster: %d masters ready in %s", clusterMasters, time.Since(start).Round(time.Millisecond))
	return svc
}

// startClusterNode runs one cluster-enabled redis-server with its files in
// dir, stopped by PID when the test ends, and returns its address once it
// answers PING.
func startClusterNode(t testing.TB, dir string) (string, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return "", err
	}
	// The cluster bus listens on a port of its own; picking it keeps it off
	// port+10000, which may be taken (or past 65535).
	busPort, err := devenv.FreePort()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cmd := exec.Command("redis-server",
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(busPort),
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-node-timeout", "5000",
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec",
		"--save", "", "--protected-mode", "yes", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Plain dials first: go-redis would log every refused one.
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			err := rdb.Ping(context.Background()).Err()
			rdb.Close()
			if err == nil {
				return addr, nil
			}
		}
		select {
		case err := <-done:
			return "", fmt.Errorf("redis-server %s exited at start (see %s): %v", addr, filepath.Join(dir, "redis.log"), err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server %s did not answer PING within 10s", addr)
		}
	}
}

// waitClusterOK polls CLUSTER INFO on addr until the node says the cluster
// is up with all 16384 slots assigned and served.
func waitClusterOK(ctx context.Context, addr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var last string
	for {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil {
			last = info
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_ok:16384") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok: %v; last CLUSTER INFO:\n%s", ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
