package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/traffic"
)

// syncBuffer is a strings.Builder safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestScoringCommandAndScore: `jobgate scoring` serves /v2 for a
// deployment registered in Redis, and `jobgate score` (client.Score)
// prints a replica's answer and which version served it.
func TestScoringCommandAndScore(t *testing.T) {
	redisURL := testenv.Redis(t)
	rdb := testenv.RedisClient(t, redisURL)
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"model_name":"` + r.PathValue("name") + `","path":"` + r.URL.Path + `","echo":` + string(b) + `}`))
	}))
	defer upstream.Close()
	rec := store.DeploymentRecord{Workspace: "default", Spec: api.DeploymentSpec{Name: "iris"},
		Targets: []api.DeploymentTarget{{Ref: "iris:1", Model: "iris", Version: 1, Weight: 100}}}
	if err := st.PutDeployment(ctx, rec, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutReplicaSlot(ctx, "default", "iris", store.ReplicaSlot{ID: "r1", JobID: "job-1", Model: "iris", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEndpoint(ctx, store.Endpoint{JobID: "job-1", Attempt: 1, Workspace: "default", Deployment: "iris", Replica: "r1",
		Address: upstream.Listener.Addr().String(), State: store.EndpointReady, Model: "iris", Version: 1}); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "scoring-e2e-admin-token"
	env := map[string]string{"JOBGATE_TOKEN": token}
	rctx, cancel := context.WithCancel(ctx)
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(rctx, []string{"scoring", "--listen", addr, "--redis-url", redisURL, "--max-body-mb", "1"}, func(k string) string { return env[k] }, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("jobgate scoring exited %d: %s", code, stderr.String())
		}
	}()
	testenv.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "jobgate scoring never became ready: %s", stderr.String())

	cli := map[string]string{"JOBGATE_URL": "http://" + addr, "JOBGATE_TOKEN": token}
	req := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(req, []byte(`{"inputs":[1]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"score", "iris", "-d", `{"inputs":[1]}`},
		{"score", "iris", "-d", "@" + req},
		{"score", "iris", "-d", "@" + req, "--version", "1"},
	} {
		r := runCLI(t, cli, "", args...)
		if r.err != nil || !strings.Contains(r.stdout, `"echo":{"inputs":[1]}`) || !strings.Contains(r.stderr, "served by iris:1") {
			t.Fatalf("jobgate %v: %v\nstdout %s\nstderr %s", args, r.err, r.stdout, r.stderr)
		}
	}
	// The router records each deployment's traffic in Redis, once a
	// second, for the gateway to show.
	iris := traffic.Deployment{Workspace: "default", Name: "iris"}
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := traffic.Read(ctx, rdb, time.Now(), iris)
		return err == nil && got[iris] != nil && got[iris].Requests == 3 && got[iris].ByTarget["1"] == 3
	}, "jobgate scoring never recorded the 3 requests to iris")
	// --max-body-mb 1: a 2 MiB body is refused, with V2's error shape.
	big, err := http.NewRequest("POST", "http://"+addr+"/v2/models/iris/infer", strings.NewReader(`{"inputs":"`+strings.Repeat("x", 2<<20)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	big.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(big)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("a 2 MiB body with --max-body-mb 1: %d %s, want 413", resp.StatusCode, body)
	}
	if r := runCLI(t, cli, "", "score", "nope", "-d", "{}"); r.err == nil || !strings.Contains(r.err.Error(), "not found") || !strings.Contains(r.err.Error(), "404") {
		t.Fatalf("jobgate score nope: %v; want a 404 naming the model", r.err)
	}
}
