package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// jobWrite matches, in what a client sends Redis, a transaction that stores
// a job: an HSET of a job's key, and the EXEC that ends it.
var jobWrite = regexp.MustCompile(`(?s)\r\nhset\r\n\$\d+\r\n\{jobgate\}:job:[0-9a-z]+\r\n.*?\r\nexec\r\n`)

// freezeProxy forwards TCP connections to Redis. Once armed, as soon as a
// transaction that stores a job has gone through, it forwards nothing more
// from any client: to Redis, the process behind it stopped right after it
// made a job, whatever it meant to write next.
type freezeProxy struct {
	ln     net.Listener
	target string
	// mu guards the fields below.
	mu     sync.Mutex
	armed  bool
	frozen chan struct{}
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target, frozen: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *freezeProxy) arm() { p.mu.Lock(); p.armed = true; p.mu.Unlock() }

func (p *freezeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *freezeProxy) handle(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { io.Copy(c, s); c.Close() }()
	var sent []byte // what this connection sent since the proxy was armed
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			select {
			case <-p.frozen:
				return // hold it: never forwarded
			default:
			}
			p.mu.Lock()
			armed := p.armed
			p.mu.Unlock()
			if armed {
				sent = append(sent, bytes.ToLower(buf[:n])...)
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
			if armed && jobWrite.Match(sent) {
				p.mu.Lock()
				select {
				case <-p.frozen:
				default:
					close(p.frozen)
				}
				p.mu.Unlock()
			}
		}
		if err != nil {
			s.Close()
			return
		}
	}
}

// TestTriggerGatewayKilledMidDelivery: a `jobgate gateway` process is
// SIGKILLed right after it stored a webhook delivery's job, before it wrote
// anything else (its Redis traffic goes through a proxy that stops there).
// Once whatever claims it left unfinished have lapsed, the same delivery
// sent again, and its body under a new delivery id, get the first job back
// from another gateway: one job, not two.
func TestTriggerGatewayKilledMidDelivery(t *testing.T) {
	c := newClusterTB(t) // proxies one Redis address: one server in every mode
	const secret = "0123456789abcdef-github-secret"
	var tv struct {
		ID      string `json:"id"`
		HookURL string `json:"hook_url"`
	}
	if code := c.do("POST", "/v1/triggers", `{"name":"crash","provider":"github","secret":"`+secret+`",
		"job":{"image":"`+testenv.ExampleImage+`","command":["/bin/toolbox","echo","{{ .payload.after }}"]}}`, &tv); code != http.StatusCreated {
		t.Fatalf("POST /v1/triggers: %d", code)
	}

	opts, err := redis.ParseURL(c.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezeProxy(t, opts.Addr)
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	gw := exec.Command(os.Args[0], "gateway", "--addr", addr, "--redis-url", "redis://"+proxy.ln.Addr().String(),
		"--artifacts-dir", c.artifacts, "--secrets-key-file", c.secretsKey, "--log-level", "error")
	gw.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken)
	gw.Stdout, gw.Stderr = os.Stderr, os.Stderr
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Process.Kill(); gw.Wait() })
	testenv.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "gateway process did not become ready")

	body := []byte(`{"ref":"refs/heads/main","after":"abc123"}`)
	deliver := func(ctx context.Context, url, id string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", url+tv.HookURL, bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set(webhook.HeaderGitHubSignature, webhook.SignGitHub([]byte(secret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	jobs := func() []string {
		t.Helper()
		l, err := c.api.List(context.Background(), client.ListOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range l.Jobs {
			ids = append(ids, j.ID)
		}
		return ids
	}

	proxy.arm()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go deliver(ctx, "http://"+addr, "d-1") // never answered: the gateway dies on it
	select {
	case <-proxy.frozen:
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway process never stored the delivery's job")
	}
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gw.Wait()
	first := jobs()
	if len(first) != 1 {
		t.Fatalf("jobs after the gateway died: %v, want the delivery's one", first)
	}

	// Its unfinished claims lapse (the test expires them now, as Redis
	// would after the claim hold of a minute).
	rdb := c.redisClient()
	keys := testenv.RedisKeys(t, rdb, "{jobgate}:trigger:"+tv.ID+":*")
	lapsed := 0
	for _, k := range keys {
		if v, err := rdb.Get(context.Background(), k).Result(); err == nil && strings.HasPrefix(v, "claim:") {
			rdb.Del(context.Background(), k)
			lapsed++
		}
	}
	t.Logf("claims the killed gateway left unfinished: %d", lapsed)

	for _, id := range []string{"d-1", "d-2"} {
		code, answer, err := deliver(context.Background(), c.gwURL, id)
		var res struct {
			JobID     string `json:"job_id"`
			Duplicate bool   `json:"duplicate"`
		}
		_ = json.Unmarshal([]byte(answer), &res)
		if err != nil || code != http.StatusOK || !res.Duplicate || res.JobID != first[0] {
			t.Errorf("%s after the crash: %d %s %v; want 200, a duplicate of job %s", id, code, answer, err, first[0])
		}
	}
	if got := jobs(); len(got) != 1 {
		t.Fatalf("jobs after the redeliveries: %v, want one", got)
	}
}
