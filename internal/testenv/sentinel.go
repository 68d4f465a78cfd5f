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
	// nodes are the redis-servers by address and the sentinels by
	// "sentinel "+address.
	nodes map[string]*redisProc
	// primary is the server started as the primary; root holds the files.
	primary *redisProc
	root    string
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
	// sentinel is set on a redis-sentinel.
	sentinel bool
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
	needSentinelBins(t)
	replicas := max(o.Replicas, 1)
	root := t.TempDir()
	s, err := startSentinelSet(root, replicas, failoverDownAfter)
	t.Cleanup(s.stopAll)
	if err == nil {
		err = s.waitLinked(replicas)
	}
	if err == nil {
		err = s.waitKnown(replicas)
	}
	if err != nil {
		t.Fatalf("testenv.SentinelWith: %v", err)
	}
	s.t = t
	return s
}

func needSentinelBins(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			skipOrFail(t, "%s not found: apt-get install -y redis-server redis-sentinel (or run make test)", bin)
		}
	}
}

// sentinelForRedis is the set Redis(t) returns under
// JOBGATE_TEST_REDIS=sentinel: one of a few started ahead in the background
// (sentinelSpares), handed to this test only and stopped when it ends. Each
// test gets its own set, as jobgate's keys have fixed names. Such a test
// sees only the URL and never fails the set over, so a spare is ready once
// its primary has its replica online (a write's WAIT 1 is answered) and the
// sentinels answer with the primary's address; it does not wait until the
// sentinels have found each other (a hello every 2 s), which only a
// failover needs. Tests that fail over, pause or cut servers start their
// own set with SentinelWith.
func sentinelForRedis(t testing.TB) string {
	t.Helper()
	needSentinelBins(t)
	needMain(t, "testenv.Redis on Sentinel")
	start := time.Now()
	sp := takeSentinel()
	t.Cleanup(sp.stop)
	if sp.err != nil {
		t.Fatalf("testenv.Redis (sentinel): %v", sp.err)
	}
	t.Logf("testenv.Redis: %s, ready after %s", sp.svc.URL, time.Since(start).Round(time.Millisecond))
	return sp.svc.URL
}

// sentinelSpares is how many sets are kept started ahead.
const sentinelSpares = 3

// failoverDownAfter is how long the sentinels of SentinelWith's sets wait
// for an answer before they take the primary for down: short, for tests
// that kill it. spareDownAfter is theirs in Redis(t)'s sets, which no test
// fails over: long enough that a stall of this machine's CPUs does not fail
// one over under a test that does not expect it.
const (
	failoverDownAfter = time.Second
	spareDownAfter    = 10 * time.Second
)

type spareSentinel struct {
	svc  *SentinelService
	err  error
	stop func()
}

var sentinelPool struct {
	once     sync.Once
	ready    chan *spareSentinel
	starting sync.WaitGroup
}

func spareSentinelSet() {
	sentinelPool.starting.Add(1)
	go func() {
		defer sentinelPool.starting.Done()
		sentinelPool.ready <- startSpareSentinel()
	}()
}

// takeSentinel returns a started set, from the pool when one is ready, and
// starts another for the pool.
func takeSentinel() *spareSentinel {
	sentinelPool.once.Do(func() {
		sentinelPool.ready = make(chan *spareSentinel, sentinelSpares)
		for range sentinelSpares {
			spareSentinelSet()
		}
	})
	sp := <-sentinelPool.ready
	spareSentinelSet()
	return sp
}

// stopSentinelSpares stops the sets the pool holds when the test binary
// ends (Main), once those still starting are up.
func stopSentinelSpares() {
	if sentinelPool.ready == nil {
		return
	}
	sentinelPool.starting.Wait()
	for {
		select {
		case sp := <-sentinelPool.ready:
			sp.stop()
		default:
			return
		}
	}
}

func startSpareSentinel() *spareSentinel {
	sp := &spareSentinel{}
	dir, err := os.MkdirTemp("", "jobgate-sentinel-")
	if err != nil {
		sp.err, sp.stop = err, func() {}
		return sp
	}
	s, err := startSentinelSet(dir, 1, spareDownAfter)
	if err == nil {
		err = s.waitLinked(1)
	}
	if err == nil {
		err = s.waitAnswers()
	}
	sp.svc, sp.err = s, err
	sp.stop = func() {
		s.stopAll()
		os.RemoveAll(dir)
	}
	return sp
}

// startSentinelSet starts a primary, replicas and three sentinels with
// their files under root, each answering PING. The set it returns is
// never nil: stopAll stops what started, also on an error.
func startSentinelSet(root string, replicas int, downAfter time.Duration) (*SentinelService, error) {
	s := &SentinelService{nodes: map[string]*redisProc{}, root: root}
	primary, err := s.startNode(filepath.Join(root, "primary"), nil)
	if err != nil {
		return s, err
	}
	s.primary = primary
	for i := range replicas {
		if _, err := s.startNode(filepath.Join(root, fmt.Sprintf("replica%d", i)), []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)}); err != nil {
			return s, err
		}
	}
	for i := range 3 {
		if err := s.startSentinel(filepath.Join(root, fmt.Sprintf("sentinel%d", i)), primary.port, downAfter); err != nil {
			return s, err
		}
	}
	s.URL = "redis+sentinel://" + strings.Join(s.Sentinels, ",") + "/" + SentinelMaster + "/0"
	return s, nil
}

// waitLinked waits until the primary counts its replicas online.
func (s *SentinelService) waitLinked(replicas int) error {
	pc := redis.NewClient(&redis.Options{Addr: s.primary.addr})
	defer pc.Close()
	ctx := context.Background()
	if !poll(30*time.Second, func() bool {
		info, err := pc.Info(ctx, "replication").Result()
		return err == nil && strings.Count(info, "state=online") == replicas
	}) {
		return fmt.Errorf("the %d replicas of %s are not online after 30s (see %s)", replicas, s.primary.addr, s.root)
	}
	return nil
}

// waitAnswers waits until every sentinel names the primary (clients ask a
// sentinel for it first).
func (s *SentinelService) waitAnswers() error {
	for _, sa := range s.Sentinels {
		if !poll(30*time.Second, func() bool { return s.primaryBy(sa) == s.primary.addr }) {
			return fmt.Errorf("sentinel %s does not name the primary %s after 30s (see %s)", sa, s.primary.addr, s.root)
		}
	}
	return nil
}

// waitKnown waits until every sentinel knows every replica, linked, and the
// other two sentinels: until then a failover may not start, or may pick no
// replica.
func (s *SentinelService) waitKnown(replicas int) error {
	ctx := context.Background()
	for _, sa := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa})
		ok := poll(30*time.Second, func() bool {
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
		})
		sc.Close()
		if !ok {
			return fmt.Errorf("sentinel %s does not know the %d replicas and the 2 other sentinels after 30s (see %s)", sa, replicas, s.root)
		}
	}
	return nil
}

// poll is Eventually without a test: it reports whether cond came true
// within the time.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// startNode starts a redis-server with its files in dir (AOF on, fsync every
// second, as devenv's) and waits until it answers PING. A replica's full
// sync starts at once (repl-diskless-sync-delay 0), not after the default 5
// s that a primary waits for more replicas to share one transfer.
func (s *SentinelService) startNode(dir string, extra []string) (*redisProc, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
		"--repl-diskless-sync-delay", "0",
		"--logfile", filepath.Join(dir, "redis.log")}, extra...)
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, dir: dir, args: args}
	if err := s.start("redis-server", p); err != nil {
		return nil, err
	}
	return p, nil
}

// startSentinel starts a sentinel monitoring the primary on port, taking it
// for down after downAfter without an answer.
func (s *SentinelService) startSentinel(dir string, primaryPort int, downAfter time.Duration) error {
	port, err := devenv.FreePort()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Test values, so that a test sees a failover within seconds: the primary
	// counts as down after 1 s without an answer (failoverDownAfter), and a
	// failover that stalls
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
sentinel down-after-milliseconds %[4]s %[6]d
sentinel failover-timeout %[4]s 5000
sentinel parallel-syncs %[4]s 1
`, port, dir, filepath.Join(dir, "sentinel.log"), SentinelMaster, primaryPort, downAfter.Milliseconds())
	file := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return err
	}
	p := &redisProc{addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, dir: dir, args: []string{file}, sentinel: true}
	if err := s.start("redis-sentinel", p); err != nil {
		return err
	}
	s.Sentinels = append(s.Sentinels, p.addr)
	return nil
}

// start runs p and waits until it answers PING. Once it runs it is in
// s.nodes (a sentinel under "sentinel "+addr), for stopAll.
func (s *SentinelService) start(bin string, p *redisProc) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(bin, p.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %v", bin, err)
	}
	p.cmd, p.done, p.dead = cmd, done, false
	key := p.addr
	if p.sentinel {
		key = "sentinel " + p.addr
	}
	s.mu.Lock()
	s.nodes[key] = p
	s.mu.Unlock()
	var exited error
	ok := poll(10*time.Second, func() bool {
		select {
		case err := <-done:
			exited = fmt.Errorf("%s %s exited at start (see %s): %v", bin, p.addr, p.dir, err)
			s.mu.Lock()
			p.dead = true
			s.mu.Unlock()
			return true
		default:
		}
		// Plain dials first: go-redis would log every refused one.
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
		defer rdb.Close()
		return rdb.Ping(context.Background()).Err() == nil
	})
	if exited != nil {
		return exited
	}
	if !ok {
		return fmt.Errorf("%s %s does not answer PING after 10s (see %s)", bin, p.addr, p.dir)
	}
	return nil
}

// stopAll stops every server and sentinel still running: all are told at
// once (SIGTERM), then each is waited for, killed after 10 s.
func (s *SentinelService) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var live []*redisProc
	for _, p := range s.nodes {
		if p.dead {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused one cannot end
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		live = append(live, p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range live {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
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
