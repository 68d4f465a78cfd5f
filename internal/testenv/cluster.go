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
	"sync"
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
// only database 0, so two tests, parallel ones above all, could not share
// one. A new cluster takes over 2 s to be writable (a master waits 2 s after
// its start before it serves), so a few are kept started ahead in the
// background (clusterSpares) and a test takes one that is ready.
func Cluster(t testing.TB) *ClusterService {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not found: apt-get install -y redis-server redis-tools (or run make test)", bin)
		}
	}
	needMain(t, "testenv.Cluster")
	start := time.Now()
	c := takeCluster()
	// Started by the pool, not by this test: stopped and removed with it.
	t.Cleanup(c.stop)
	if c.err != nil {
		t.Fatalf("testenv.Cluster: %v", c.err)
	}
	t.Logf("testenv.Cluster: %s, ready after %s", c.svc.URL, time.Since(start).Round(time.Millisecond))
	svc := c.svc
	return &svc
}

// clusterSpares is how many clusters are kept started ahead.
const clusterSpares = 4

type startedCluster struct {
	svc  ClusterService
	err  error
	stop func()
}

var clusterPool struct {
	once     sync.Once
	ready    chan *startedCluster
	starting sync.WaitGroup
}

// spare starts a cluster for the pool.
func spare() {
	clusterPool.starting.Add(1)
	go func() {
		defer clusterPool.starting.Done()
		clusterPool.ready <- startCluster()
	}()
}

// takeCluster returns a started cluster, from the pool when one is ready,
// and starts another for the pool.
func takeCluster() *startedCluster {
	clusterPool.once.Do(func() {
		clusterPool.ready = make(chan *startedCluster, clusterSpares)
		for i := 0; i < clusterSpares; i++ {
			spare()
		}
	})
	c := <-clusterPool.ready
	spare()
	return c
}

// stopClusterSpares stops the clusters the pool holds when the test binary
// ends (Main), once those still starting are up (a few seconds at most).
func stopClusterSpares() {
	if clusterPool.ready == nil {
		return
	}
	clusterPool.starting.Wait()
	for {
		select {
		case c := <-clusterPool.ready:
			c.stop()
		default:
			return
		}
	}
}

// startCluster starts three nodes in a temporary folder and makes a
// cluster of them.
func startCluster() *startedCluster {
	c := &startedCluster{}
	var stops []func()
	dir, err := os.MkdirTemp("", "jobgate-cluster-")
	c.stop = func() {
		for _, s := range stops {
			s()
		}
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	if err != nil {
		c.err = err
		return c
	}
	for i := 0; i < clusterMasters; i++ {
		addr, stop, err := startClusterNode(filepath.Join(dir, strconv.Itoa(i)))
		if stop != nil {
			stops = append(stops, stop)
		}
		if err != nil {
			c.err = err
			return c
		}
		c.svc.Addrs = append(c.svc.Addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.svc.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.err = fmt.Errorf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
		return c
	}
	// redis-cli returns once the nodes agree on the configuration; each
	// node must also see every slot served before a client may start.
	for _, addr := range c.svc.Addrs {
		if err := waitClusterOK(ctx, addr); err != nil {
			c.err = fmt.Errorf("node %s: %v (logs in %s)", addr, err, dir)
			return c
		}
	}
	c.svc.URL = "redis+cluster://" + strings.Join(c.svc.Addrs, ",")
	return c
}

// startClusterNode runs one cluster-enabled redis-server with its files in
// dir and returns its address once it answers PING, and how to stop it (by
// its PID).
func startClusterNode(dir string) (string, func(), error) {
	port, err := devenv.FreePort()
	if err != nil {
		return "", nil, err
	}
	// The cluster bus listens on a port of its own; picking it keeps it off
	// port+10000, which may be taken (or past 65535).
	busPort, err := devenv.FreePort()
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
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
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
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
				return addr, stop, nil
			}
		}
		select {
		case err := <-done:
			return "", func() {}, fmt.Errorf("redis-server %s exited at start (see %s): %v", addr, filepath.Join(dir, "redis.log"), err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", stop, fmt.Errorf("redis-server %s did not answer PING within 10s", addr)
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

// NewClientLike makes another client with rdb's options (a separate pool,
// for a hook of its own), of rdb's kind: a *redis.Client or a
// *redis.ClusterClient. It is closed when the test ends.
func NewClientLike(t testing.TB, rdb redis.UniversalClient) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	switch r := rdb.(type) {
	case *redis.Client:
		c = redis.NewClient(r.Options())
	case *redis.ClusterClient:
		c = redis.NewClusterClient(r.Options())
	default:
		t.Fatalf("testenv.NewClientLike: a %T", rdb)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
