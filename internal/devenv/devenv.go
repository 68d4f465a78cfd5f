// Package devenv starts the local services jobgate needs when nobody runs them
// for it: a redis-server child process, an in-process Redis as a last resort,
// and a podman API service. `jobgate dev` and the test harness both use it.
package devenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Service is a started child service; Stop ends it and waits for it.
type Service struct {
	// URL is how to reach it: redis://127.0.0.1:PORT/0 or unix:///path.sock.
	URL  string
	stop func() error
	once sync.Once
	err  error
}

// Stop ends the service; later calls return the first call's result.
func (s *Service) Stop() error {
	if s == nil || s.stop == nil {
		return nil
	}
	s.once.Do(func() { s.err = s.stop() })
	return s.err
}

// StartTied starts cmd and waits for it on a goroutine locked to its OS
// thread, and returns what Wait returned on the channel. Pdeathsig (set by
// the caller) fires when the *thread* that forked the child exits, not the
// process: a child started from an ordinary goroutine is killed whenever
// the Go runtime happens to end that thread (a goroutine that exits while
// locked to it, for one). Here that thread lives as long as the child.
func StartTied(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RedisOptions secure a redis-server: a password, and TLS instead of plain TCP.
type RedisOptions struct {
	Password        string
	TLSCert, TLSKey string
	// TLSCA verifies clients' certificates when set; else clients need none.
	TLSCA string
	// Port to listen on; 0 picks a free one. A restart on the same port and
	// folder is the same Redis to its clients.
	Port int
}

// StartRedisServer runs redis-server on a free loopback port with its files
// (AOF on, fsync every second) in dir, and waits until it answers PING.
func StartRedisServer(ctx context.Context, dir string) (*Service, error) {
	return StartSecureRedisServer(ctx, dir, RedisOptions{})
}

// StartSecureRedisServer is StartRedisServer with a password and TLS; the
// URL it returns is rediss:// when TLS is on.
func StartSecureRedisServer(ctx context.Context, dir string, o RedisOptions) (*Service, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not on PATH: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec",
		"--save", "", "--protected-mode", "yes", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log")}
	scheme, auth := "redis", ""
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
		auth = ":" + o.Password + "@"
	}
	if o.TLSCert != "" {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cert-file", o.TLSCert, "--tls-key-file", o.TLSKey)
		if o.TLSCA != "" {
			args = append(args, "--tls-ca-cert-file", o.TLSCA)
		} else {
			args = append(args, "--tls-auth-clients", "no")
		}
		scheme = "rediss"
	}
	cmd := exec.Command(bin, args...)
	// Its own process group, so a Ctrl-C to jobgate does not kill Redis before
	// jobgate has drained into it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := StartTied(cmd)
	if err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	url := fmt.Sprintf("%s://%s127.0.0.1:%d/0", scheme, auth, port)
	svc := &Service{URL: url, stop: func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}}
	// Wait for the port with plain dials (go-redis would log every refused
	// dial), then check that Redis answers.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ropts := &redis.Options{Addr: addr, Password: o.Password}
	if o.TLSCert != "" {
		ropts.TLSConfig = &tls.Config{InsecureSkipVerify: true} // only our own child, on loopback
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			rdb := redis.NewClient(ropts)
			err := rdb.Ping(ctx).Err()
			rdb.Close()
			if err == nil {
				return svc, nil
			}
		}
		select {
		case err := <-done:
			return nil, fmt.Errorf("redis-server exited at start (see %s): %v", filepath.Join(dir, "redis.log"), err)
		case <-ctx.Done():
			svc.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			svc.Stop()
			return nil, errors.New("redis-server did not answer PING within 10s")
		}
	}
}

// StartMiniredis runs an in-process Redis. Nothing it holds survives the process.
func StartMiniredis() (*Service, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return &Service{URL: "redis://" + m.Addr() + "/0", stop: func() error { m.Close(); return nil }}, nil
}

// PodmanSocketAnswers reports whether a podman API service answers on the unix
// socket URL (unix:///path).
func PodmanSocketAnswers(ctx context.Context, url string) bool {
	path, ok := cutUnix(url)
	if !ok {
		return false
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func cutUnix(url string) (string, bool) {
	const p = "unix://"
	if len(url) <= len(p) || url[:len(p)] != p {
		return "", false
	}
	return url[len(p):], true
}

// StartPodmanService runs `podman --runtime runc system service` on the unix
// socket url and waits until it answers. runc, because crun refuses the hybrid
// cgroup layout on the machines we measured (see DESIGN.md).
func StartPodmanService(ctx context.Context, url string, logPath string) (*Service, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, fmt.Errorf("podman not on PATH: %w", err)
	}
	path, ok := cutUnix(url)
	if !ok {
		return nil, fmt.Errorf("podman socket %q: want unix:///path", url)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	args := []string{"system", "service", "--time=0", url}
	if _, err := exec.LookPath("runc"); err == nil {
		args = append([]string{"--runtime", "runc"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if logPath != "" {
		if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			cmd.Stdout, cmd.Stderr = f, f
			defer f.Close()
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	done, err := StartTied(cmd)
	if err != nil {
		return nil, fmt.Errorf("start podman service: %w", err)
	}
	svc := &Service{URL: url, stop: func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}}
	deadline := time.Now().Add(20 * time.Second)
	for !PodmanSocketAnswers(ctx, url) {
		select {
		case err := <-done:
			return nil, fmt.Errorf("podman service exited at start: %v", err)
		case <-ctx.Done():
			svc.Stop()
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			svc.Stop()
			return nil, errors.New("podman service did not answer within 20s")
		}
	}
	return svc, nil
}
