package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/devenv"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux this runs on).
const clockTicks = 100

// proc is a child process this program started (or, with pid only, one it
// watches), so its CPU time and memory can be read from /proc.
type proc struct {
	name string
	pid  int
	cmd  *exec.Cmd
	done <-chan error
}

// cpuSeconds is the process's user+system CPU time, its waited-for
// children's included (a worker's host-process jobs), from /proc/PID/stat.
func cpuSeconds(pid int, children bool) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b), children)
}

// parseStatCPU sums utime and stime (fields 14-15) of a /proc/PID/stat
// line, and with children cutime and cstime (16-17) too; the command name
// (field 2) may hold spaces, so fields are counted after its closing
// parenthesis.
func parseStatCPU(stat string, children bool) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' in stat line")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return 0, fmt.Errorf("stat line has %d fields after the name", len(f))
	}
	fields := f[11:15]
	if !children {
		fields = f[11:13]
	}
	var sum float64
	for _, s := range fields {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat field %q: %w", s, err)
		}
		sum += float64(n)
	}
	return sum / clockTicks, nil
}

// statusKB reads a "Name:  N kB" line of /proc/PID/status (VmRSS, VmHWM).
func statusKB(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// start runs a child process with its output in logPath, in its own process
// group, killed (SIGTERM) if this program dies.
func start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := devenv.StartTied(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{name: name, pid: cmd.Process.Pid, cmd: cmd, done: done}, nil
}

// stop sends SIGTERM and waits (SIGKILL after 15 s).
func (p *proc) stop() {
	if p == nil || p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		return true, err
	default:
		return false, nil
	}
}

// startRedis runs a fresh redis-server on a free loopback port with its
// files in dir, configured as jobgate's deployment runs it (AOF everysec,
// noeviction), and waits for PING.
func startRedis(ctx context.Context, dir string) (*proc, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	port, err := devenv.FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := start("redis-server", filepath.Join(dir, "redis.out"), nil, "redis-server",
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--maxmemory-policy", "noeviction", "--protected-mode", "yes", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	err = poll(ctx, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return rdb.Ping(ctx).Err() == nil
	})
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("redis-server did not answer: %w", err)
	}
	return p, url, nil
}

// startPodman runs a podman API service on a socket in dir (runc, as the
// test harness does), and waits until it answers.
func startPodman(ctx context.Context, dir string) (*proc, string, error) {
	sock := filepath.Join(dir, "podman.sock")
	url := "unix://" + sock
	args := []string{"system", "service", "--time=0", url}
	if _, err := exec.LookPath("runc"); err == nil {
		args = append([]string{"--runtime", "runc"}, args...)
	}
	p, err := start("podman service", filepath.Join(dir, "podman.log"), nil, "podman", args...)
	if err != nil {
		return nil, "", err
	}
	if err := poll(ctx, 30*time.Second, func() bool { return devenv.PodmanSocketAnswers(ctx, url) }); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("podman service did not answer on %s: %w", url, err)
	}
	return p, url, nil
}

// poll calls cond every 10 ms until it is true, for at most within.
func poll(ctx context.Context, within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// waitHTTP polls url until it answers (any status below 500).
func waitHTTP(ctx context.Context, url string, within time.Duration) error {
	return poll(ctx, within, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	})
}

// machine describes where the run happened, for the report.
type machine struct {
	CPU, Cores, Memory, Kernel, Go, Redis, Podman, Nginx, LoadAvg, Started string
}

func describeMachine() machine {
	m := machine{Cores: strconv.Itoa(runtime.NumCPU()), Go: runtime.Version(), Started: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := meminfoKB("MemTotal"); err == nil {
		m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	m.Redis = firstLine("redis-server", "--version")
	for _, f := range strings.Fields(m.Redis) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			m.Redis = "Redis " + v
		}
	}
	m.Podman = firstLine("podman", "--version")
	m.Nginx = firstLine("nginx", "-v")
	return m
}

func meminfoKB(name string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", name)
}

func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "not found"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the jobgate checkout")
		}
		dir = parent
	}
}
