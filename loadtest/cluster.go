package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
)

// env is what every scenario shares: the jobgate binary, the podman
// service, the folder the run works in, and the flags.
type env struct {
	cfg       config
	root      string // the checkout
	dir       string // this run's scratch folder
	bin       string // jobgate binary
	toolbox   string // examples/toolbox built for the host (process jobs)
	podman    *proc
	podmanURL string
	self      int // this program's PID: the load generator and the asynq peer
}

// cluster is one fresh jobgate: its own redis-server, a gateway and the
// workers a scenario starts, each a child process. With -gateway the
// cluster is the running one named by the flags instead, and nothing is
// started (no CPU figures for its processes).
type cluster struct {
	e        *env
	name     string
	dir      string
	redis    *proc
	redisURL string
	rdb      *redis.Client
	gateway  *proc
	url      string
	token    string
	workers  []*proc
	api      *client.Client
	http     *http.Client
	external bool
	mu       sync.Mutex // guards workers, started concurrently
}

func (e *env) newCluster(ctx context.Context, name string) (*cluster, error) {
	c := &cluster{e: e, name: name, dir: filepath.Join(e.dir, name)}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true}}
	if e.cfg.gatewayURL != "" {
		c.external, c.url, c.token, c.redisURL = true, strings.TrimRight(e.cfg.gatewayURL, "/"), e.cfg.token, e.cfg.redisURL
	} else {
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		var err error
		if c.redis, c.redisURL, err = startRedis(ctx, filepath.Join(c.dir, "redis")); err != nil {
			return nil, err
		}
		port, err := devenv.FreePort()
		if err != nil {
			c.close()
			return nil, err
		}
		c.url = fmt.Sprintf("http://127.0.0.1:%d", port)
		c.token = "loadtest-admin-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		c.gateway, err = start("gateway", filepath.Join(c.dir, "gateway.log"), []string{"JOBGATE_TOKEN=" + c.token},
			e.bin, "gateway", "--redis-url", c.redisURL, "--addr", fmt.Sprintf("127.0.0.1:%d", port),
			"--artifacts-dir", filepath.Join(c.dir, "artifacts"), "--allow-host-process-default", "--log-level", "warn")
		if err != nil {
			c.close()
			return nil, err
		}
		if err := waitHTTP(ctx, c.url+"/healthz", 30*time.Second); err != nil {
			c.close()
			return nil, fmt.Errorf("gateway did not answer (see %s): %w", filepath.Join(c.dir, "gateway.log"), err)
		}
	}
	opts, err := redis.ParseURL(c.redisURL)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c.rdb = redis.NewClient(opts)
	c.api = client.New(c.url, c.token, client.WithHTTPClient(c.http), client.WithPollInterval(time.Millisecond, 20*time.Millisecond))
	return c, nil
}

// startWorker runs `jobgate worker` with host processes allowed and host
// networking, and waits until the gateway lists it up.
func (c *cluster) startWorker(ctx context.Context, id string, slots int, extra ...string) (*proc, error) {
	if c.external {
		return nil, fmt.Errorf("starting workers needs a cluster of its own (not -gateway)")
	}
	args := []string{"worker", "--id", id, "--redis-url", c.redisURL, "--podman-url", c.e.podmanURL,
		"--network", "host", "--allow-host-process", "--slots", strconv.Itoa(slots),
		"--artifacts-dir", filepath.Join(c.dir, "artifacts"), "--spool-dir", filepath.Join(c.dir, "spool-"+id),
		"--checkpoint-dir", filepath.Join(c.dir, "checkpoints"), "--gateway-url", c.url, "--log-level", "warn"}
	p, err := start("worker "+id, filepath.Join(c.dir, "worker-"+id+".log"), nil, c.e.bin, append(args, extra...)...)
	if err != nil {
		return nil, err
	}
	err = poll(ctx, 60*time.Second, func() bool {
		if done, _ := p.exited(); done {
			return true
		}
		ws, err := c.api.Workers(ctx)
		if err != nil {
			return false
		}
		for _, w := range ws {
			if w.ID == id && w.Status == "up" {
				return true
			}
		}
		return false
	})
	if done, werr := p.exited(); done {
		return nil, fmt.Errorf("worker %s exited at start (see %s): %v", id, filepath.Join(c.dir, "worker-"+id+".log"), werr)
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("worker %s not up: %w", id, err)
	}
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.mu.Unlock()
	return p, nil
}

func (c *cluster) stopWorkers() {
	for _, w := range c.workers {
		w.stop()
	}
	c.workers = nil
}

func (c *cluster) close() {
	c.stopWorkers()
	if c.gateway != nil {
		c.gateway.stop()
	}
	if c.rdb != nil {
		c.rdb.Close()
	}
	if c.redis != nil {
		c.redis.stop()
	}
}

// submit posts one job body and returns its ID.
func (c *cluster) submit(ctx context.Context, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /v1/jobs: %s: %s", resp.Status, snippet(b))
	}
	var j struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
		return "", fmt.Errorf("POST /v1/jobs: no id in %s", snippet(b))
	}
	return j.ID, nil
}

// anyIn reports whether any of the cluster's jobs is in st (a page of one).
func (c *cluster) anyIn(ctx context.Context, st api.Status) (bool, error) {
	l, err := c.api.List(ctx, client.ListOptions{Status: st, Limit: 1})
	if err != nil {
		return false, err
	}
	return len(l.Jobs) > 0, nil
}

// countIn counts the cluster's jobs in st, 500 a page (the API's largest).
func (c *cluster) countIn(ctx context.Context, st api.Status) (int, error) {
	n, cursor := 0, ""
	for {
		l, err := c.api.List(ctx, client.ListOptions{Status: st, Limit: 500, Cursor: cursor})
		if err != nil {
			return n, err
		}
		n += len(l.Jobs)
		if l.NextCursor == "" {
			return n, nil
		}
		cursor = l.NextCursor
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// redisInfo reads one field of INFO section.
func redisInfo(ctx context.Context, rdb *redis.Client, section, field string) (int64, error) {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == field {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO %s", field, section)
}

// settledMemory is used_memory once two readings 200 ms apart agree within
// 0.1% (lazy frees and client buffers settle), at most 5 s.
func settledMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	prev, err := redisInfo(ctx, rdb, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		cur, err := redisInfo(ctx, rdb, "memory", "used_memory")
		if err != nil {
			return 0, err
		}
		if d := cur - prev; d*1000 <= cur && -d*1000 <= cur {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// cpuSet samples the CPU time of a set of named processes, so a scenario
// can say how much each spent on its operations.
type cpuSet struct {
	names []string
	pids  [][]int
	own   []bool // this process: its own CPU only, not its reaped children's
	at    []float64
}

// add names a group of processes (the 4 workers are one "worker" entry).
func (s *cpuSet) add(name string, ps ...*proc) {
	var pids []int
	for _, p := range ps {
		if p != nil {
			pids = append(pids, p.pid)
		}
	}
	if len(pids) == 0 {
		return
	}
	s.names = append(s.names, name)
	s.pids = append(s.pids, pids)
	s.own = append(s.own, false)
}

// addSelf names this process (the load generator and the asynq peers),
// counted without the children it reaps (stopped clusters, podman CLIs).
func (s *cpuSet) addSelf(name string, pid int) {
	s.names = append(s.names, name)
	s.pids = append(s.pids, []int{pid})
	s.own = append(s.own, true)
}

func (s *cpuSet) read() []float64 {
	out := make([]float64, len(s.pids))
	for i, pids := range s.pids {
		for _, pid := range pids {
			v, _ := cpuSeconds(pid, !s.own[i])
			out[i] += v
		}
	}
	return out
}

func (s *cpuSet) mark() { s.at = s.read() }

// since is each process group's CPU seconds since mark.
func (s *cpuSet) since() map[string]float64 {
	now := s.read()
	m := map[string]float64{}
	for i, n := range s.names {
		m[n] = now[i] - s.at[i]
	}
	return m
}
