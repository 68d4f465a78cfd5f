package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// gatewayProcess is `jobgate gateway` as a real child process (the test
// binary re-executed, see TestMain), on a fixed address so it can be killed
// and started again in its place.
type gatewayProcess struct {
	t        *testing.T
	addr     string
	redisURL string
	arts     string
	cmd      *exec.Cmd
}

func (g *gatewayProcess) start() {
	g.t.Helper()
	g.cmd = exec.Command(os.Args[0], "gateway", "--addr", g.addr, "--redis-url", g.redisURL, "--artifacts-dir", g.arts, "--log-level", "error")
	g.cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken)
	g.cmd.Stdout, g.cmd.Stderr = os.Stderr, os.Stderr
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	testenv.Eventually(g.t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + g.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "gateway process on %s did not become ready", g.addr)
}

func (g *gatewayProcess) kill() {
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
}

// TestIdempotencyAcrossGatewayKills submits N jobs, each under its own
// Idempotency-Key, through two real `jobgate gateway` processes, and SIGKILLs
// one of them K times while the submits are in flight. The client retries
// every failed attempt (a reset connection, a 409 while a killed request's
// claim lasts, a 5xx) on the other gateway until it gets its 201, as a
// client of an idempotent API does. Every key must end with exactly one job.
// Before job creation and the key's completion were one Redis step, a kill
// between the two left a claim that expired into a second job.
func TestIdempotencyAcrossGatewayKills(t *testing.T) {
	// Scaled for a 2-core machine shared with other tests.
	const (
		submits = 600
		kills   = 6
		clients = 12
	)
	redisURL := testenv.RedisIn(t, t.TempDir()).URL
	arts := filepath.Join(t.TempDir(), "artifacts")
	gws := make([]*gatewayProcess, 2)
	for i := range gws {
		port, err := devenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		gws[i] = &gatewayProcess{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), redisURL: redisURL, arts: arts}
		gws[i].start()
		t.Cleanup(func() {
			if p := gws[i].cmd.Process; p != nil {
				_ = p.Signal(syscall.SIGTERM)
				_ = gws[i].cmd.Wait()
			}
		})
	}

	hc := &http.Client{Timeout: 15 * time.Second}
	submit := func(i, attempt int) (int, error) {
		name := fmt.Sprintf("k-%04d", i)
		body := `{"name":"` + name + `","image":"localhost/jobgate-chaos:1","command":["x"]}`
		req, err := http.NewRequest("POST", "http://"+gws[(i+attempt)%2].addr+"/v1/jobs", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Idempotency-Key", name)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var done atomic.Int64
	progress := make(chan struct{}, submits)
	next := make(chan int, submits)
	for i := range submits {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var retries atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for attempt := 0; ; attempt++ {
					code, err := submit(i, attempt)
					if err == nil && code == http.StatusCreated {
						break
					}
					if err == nil && code != http.StatusConflict && code < 500 {
						t.Errorf("submit k-%04d: %d", i, code)
						break
					}
					retries.Add(1)
					select {
					case <-ctx.Done():
						t.Errorf("submit k-%04d: no 201 before the deadline (last: %d %v)", i, code, err)
						return
					case <-time.After(50 * time.Millisecond): // the client's retry back-off
					}
				}
				done.Add(1)
				progress <- struct{}{}
			}
		}()
	}

	// The k-th kill comes once k/(kills+1) of the submits are done, so the
	// kills spread over the load; each killed gateway is started again
	// before the next kill.
	for k := 1; k <= kills; k++ {
		for done.Load() < int64(k*submits/(kills+1)) {
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatalf("load stalled at %d of %d submits", done.Load(), submits)
			}
		}
		g := gws[k%2]
		g.kill()
		g.start()
	}
	wg.Wait()

	perKey := map[string]int{}
	cursor := ""
	for {
		var page api.JobList
		path := "/v1/jobs?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		req, _ := http.NewRequest("GET", "http://"+gws[0].addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			perKey[j.Name]++
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	duplicates := 0
	for name, n := range perKey {
		if n > 1 {
			duplicates += n - 1
			t.Errorf("key %s made %d jobs", name, n)
		}
	}
	t.Logf("%d keyed submits, %d gateway SIGKILLs, %d client retries: %d keys with a job, %d duplicate jobs",
		submits, kills, retries.Load(), len(perKey), duplicates)
	if len(perKey) != submits {
		t.Errorf("%d keys have a job, want %d", len(perKey), submits)
	}
}
