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

// SentinelMaster is the name the sentinels monitor the primary under.
const SentinelMaster = "mymaster"

// SentinelService is a primary, its replicas and three sentinels on loopback,
// every file in the test's temporary folder.
type SentinelService struct {
	// URL is the redis+sentinel:// URL of the set.
	URL string
	// Sentinels are the sentinels' addresses.
	Sentinels []string

	t  testing.TB
	mu sync.Mutex
	// nodes are the redis-servers (not the sentinels), by address.
	nodes map[string]*redisProc
}

// SentinelOptions shape the set SentinelWith starts.
type SentinelOptions struct {
	// Replicas is the number of replicas beside the primary; 0 means 1. With
	// one replica, a failover leaves the new primary without any: a write
	// that waits for a replica's acknowledgement is refused until one comes
	// back. Two keep one after a failover.
	Replicas int
}

// redisProc is one redis-server or redis-sentinel child.
type redisProc struct {
	addr string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	done <-chan error
	dead bool
}

// Sentinel starts a Sentinel set (a primary, one replica, three sentinels)
// for this test, stopped when it ends.
func Sentinel(t testing.TB) *SentinelService {
	t.Helper()
	return SentinelWith(t, SentinelOptions{})
}

// SentinelWith is Sentinel with options. It returns once the replicas'
// links are up and every sentinel knows every replica and the other two
// sentinels, so that a failover can start as soon as the test kills the
// primary.
func SentinelWith(t testing.TB, o SentinelOptions) *SentinelService {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not found: apt-get install -y redis-server redis-sentinel (or run make test)", bin)
		}
	}
	replicas := max(o.Replicas, 1)
	root := t.TempDir()
	s := &SentinelService{t: t, nodes: map[string]*redisProc{}}
	t.Cleanup(s.stopAll)

	primary := s.startNode(t, filepath.Join(root, "primary"), nil)
	for i := range replicas {
		s.startNode(t, filepath.Join(root, fmt.Sprintf("replica%d", i)), []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)})
	}
	for i := range 3 {
		s.startSentinel(t, filepath.Join(root, fmt.Sprintf("sentinel%d", i)), primary.port)
	}
	s.URL = "redis+sentinel://" + strings.Join(s.Sentinels, ",") + "/" + SentinelMaster + "/0"

	ctx := context.Background()
	pc := redis.NewClient(&redis.Options{Addr: primary.addr})
	defer pc.Close()
	Eventually(t, 30*time.Second, func() bool {
		info, err := pc.Info(ctx, "replication").Result()
		return err == nil && strings.Count(info, "state=online") == replicas
	}, "the %d replicas of %s are not online (see %s)", replicas, primary.addr, root)
	for _, sa := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa})
		Eventually(t, 30*time.Second, func() bool {
			reps, err := sc.Replicas(ctx, SentinelMaster).Result()
			if err != nil || len(reps) != replicas {
				return false
			}
			for _, r := range reps {
				if strings.Contains(r["flags"], "down") || r["master-link-status"] != "ok" {
					return false
				}
			}
			sens, err := sc.Sentinels(ctx, SentinelMaster).Result()
			return err == nil && len(sens) == 2
		}, "sentinel %s does not know the %d replicas and the 2 other sentinels (see %s)", sa, replicas, root)
		sc.Close()
	}
	return s
}

// startNode starts a redis-server with its files in dir (AOF on, fsync every
// second, as devenv's) and waits until it answers PING.
func (s *SentinelService) startNode(t testing.TB, dir string, extra []string) *redisProc {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log")}, extra...)
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, dir: dir, args: args}
	s.start(t, "redis-server", p)
	s.mu.Lock()
	s.nodes[p.addr] = p
	s.mu.Unlock()
	return p
}

// startSentinel starts a sentinel monitoring the primary on port.
func (s *SentinelService) startSentinel(t testing.TB, dir string, primaryPort int) {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Test values, so that a test sees a failover within seconds: the primary
	// counts as down after 1 s without an answer, and a failover that stalls
	// is tried again after 5 s. Production uses down-after-milliseconds of
	// 5000 to 30000 (a GC pause, a slow disk or a network blip must not cause
	// a failover, each of which drops every client's connections) and the
	// default failover-timeout of 180000, with a quorum of 2 out of 3
	// sentinels on three separate machines.
	conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
daemonize no
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[4]s 1000
sentinel failover-timeout %[4]s 5000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, primaryPort)
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, dir: dir, args: []string{file}}
	s.start(t, "redis-sentinel", p)
	s.Sentinels = append(s.Sentinels, p.addr)
	s.mu.Lock()
	s.nodes["sentinel "+p.addr] = p
	s.mu.Unlock()
}

func (s *SentinelService) start(t testing.TB, bin string, p *redisProc) {
	t.Helper()
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, p.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p.cmd, p.done, p.dead = cmd, done, false
	Eventually(t, 10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("%s %s exited at start (see %s): %v", bin, p.addr, p.dir, err)
		default:
		}
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
		defer rdb.Close()
		return rdb.Ping(context.Background()).Err() == nil
	}, "%s %s does not answer PING (see %s)", bin, p.addr, p.dir)
}

func (s *SentinelService) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.nodes {
		if p.dead {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused one cannot end
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.dead = true
	}
}

// Primary is the address of the current primary as the sentinels say, the
// answer most of them give ("" when none answers).
func (s *SentinelService) Primary() string {
	votes := map[string]int{}
	best := ""
	for _, sa := range s.Sentinels {
		if a := s.primaryBy(sa); a != "" {
			votes[a]++
			if votes[a] > votes[best] {
				best = a
			}
		}
	}
	return best
}

func (s *SentinelService) primaryBy(sentinel string) string {
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil || len(a) != 2 {
		return ""
	}
	return net.JoinHostPort(a[0], a[1])
}

// Replicas are the addresses of the servers that run and are not the
// current primary.
func (s *SentinelService) Replicas() []string {
	primary := s.Primary()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for a, p := range s.nodes {
		if !strings.HasPrefix(a, "sentinel ") && !p.dead && a != primary {
			out = append(out, a)
		}
	}
	return out
}

// KillPrimary kills the current primary with SIGKILL, by its PID, and
// returns its address.
func (s *SentinelService) KillPrimary() string {
	s.t.Helper()
	addr := s.Primary()
	s.mu.Lock()
	p := s.nodes[addr]
	s.mu.Unlock()
	if p == nil || p.dead {
		s.t.Fatalf("KillPrimary: the sentinels name %q, not a running server of this set", addr)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("KillPrimary: %v", err)
	}
	<-p.done
	s.mu.Lock()
	p.dead = true
	s.mu.Unlock()
	return addr
}

// WaitFailover waits until every sentinel names a primary other than old and
// that server says it is a primary, and returns its address and how long
// the wait took.
func (s *SentinelService) WaitFailover(within time.Duration, old string) (string, time.Duration) {
	s.t.Helper()
	start := time.Now()
	var now string
	Eventually(s.t, within, func() bool {
		now = ""
		for _, sa := range s.Sentinels {
			a := s.primaryBy(sa)
			if a == "" || a == old || now != "" && a != now {
				return false
			}
			now = a
		}
		rdb := redis.NewClient(&redis.Options{Addr: now, MaxRetries: -1})
		defer rdb.Close()
		info, err := rdb.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	}, "no sentinel-agreed failover away from %s", old)
	return now, time.Since(start)
}

// Pause stops the server at addr with SIGSTOP (it keeps its connections but
// answers nothing, as a hung machine) until the returned func resumes it.
// Paused, a replica acknowledges no write.
func (s *SentinelService) Pause(addr string) (resume func()) {
	s.t.Helper()
	s.mu.Lock()
	p := s.nodes[addr]
	s.mu.Unlock()
	if p == nil || p.dead {
		s.t.Fatalf("Pause: %q is not a running server of this set", addr)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		s.t.Fatalf("Pause: %v", err)
	}
	return func() { _ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT) }
}

// CutReplicas points every replica at a port where nothing listens
// (REPLICAOF), so that the primary's writes from now on reach none of them
// (they keep what they have): the stand-in for a replication stream that has
// not arrived when the primary dies. The sentinels' failover repoints them.
func (s *SentinelService) CutReplicas() {
	s.t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, a := range s.Replicas() {
		rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		err := rdb.Do(context.Background(), "REPLICAOF", "127.0.0.1", strconv.Itoa(port)).Err()
		rdb.Close()
		if err != nil {
			s.t.Fatalf("CutReplicas: REPLICAOF on %s: %v", a, err)
		}
	}
}
