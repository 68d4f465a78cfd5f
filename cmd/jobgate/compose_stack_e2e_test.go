package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
)

// composeStack is a podman-compose project of deploy/compose.yaml with
// deploy/compose.local.yaml, on the host's network on free loopback ports.
type composeStack struct {
	t       *testing.T
	project string
	env     []string
	ports   map[string]int
}

// compose runs podman-compose on the stack's project and files, and returns
// its output.
func (s *composeStack) compose(ctx context.Context, args ...string) (string, error) {
	deploy := filepath.Join(testenv.RepoRoot(), "deploy")
	base := []string{"--podman-path", filepath.Join(deploy, "podman-hostnet"), "-p", s.project,
		"-f", filepath.Join(deploy, "compose.yaml"), "-f", filepath.Join(deploy, "compose.local.yaml")}
	cmd := exec.CommandContext(ctx, "podman-compose", append(base, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freePorts returns n distinct free loopback ports, all held open until
// all are picked.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestComposeStack is issue 14's compose Done-when: the stack of
// deploy/compose.yaml comes up under podman-compose (Debian's 1.0.3) from
// locally built images (deploy/compose.local.yaml, deploy/local-images.sh),
// runs a container job through one of its two gateways, serves a deployment
// of the example modelserver and scores a request through its router, and
// Prometheus scrapes every jobgate process.
func TestComposeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the compose test builds images and runs a whole stack")
	}
	for _, tool := range []string{"podman-compose", "podman", "redis-server", "prometheus"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testenv.Required() {
				t.Fatalf("%s not found (apt-get install -y podman-compose redis-server prometheus; JOBGATE_INTEGRATION=1: may not skip)", tool)
			}
			t.Skipf("%s not found: apt-get install -y podman-compose redis-server prometheus", tool)
		}
	}
	podmanURL := testenv.Podman(t)
	testenv.BuildExampleImage(t)
	ctx := t.Context()

	// The images, rebuilt only when their files changed.
	build := exec.CommandContext(ctx, filepath.Join(testenv.RepoRoot(), "deploy", "local-images.sh"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/local-images.sh: %v\n%s", err, out)
	}

	names := []string{"REDIS_PORT", "GATEWAY1_PORT", "GATEWAY2_PORT", "SCORING_PORT", "GATEWAY1_METRICS_PORT",
		"GATEWAY2_METRICS_PORT", "WORKER_METRICS_PORT", "SCORING_METRICS_PORT", "PROMETHEUS_PORT", "OTLP_GRPC_PORT",
		"OTLP_HTTP_PORT", "JAEGER_OTLP_PORT", "JAEGER_UI_PORT", "JAEGER_QUERY_GRPC_PORT"}
	s := &composeStack{t: t, project: "jgtest" + hex.EncodeToString([]byte(rand.Text()[:4])), ports: map[string]int{}}
	for i, p := range freePorts(t, len(names)) {
		s.ports[names[i]] = p
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	token := "jgt_" + rand.Text()
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	dataRoot := t.TempDir()
	workerID := s.project + "-worker"
	promConfig := filepath.Join(dataRoot, "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(fmt.Sprintf(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: jobgate
    static_configs:
      - targets: ["127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d"]
`, s.ports["GATEWAY1_METRICS_PORT"], s.ports["GATEWAY2_METRICS_PORT"], s.ports["WORKER_METRICS_PORT"], s.ports["SCORING_METRICS_PORT"])), 0o644); err != nil {
		t.Fatal(err)
	}
	s.env = append(os.Environ(), "REDIS_PASSWORD="+rand.Text(), "JOBGATE_TOKEN="+token,
		"JOBGATE_SECRETS_KEY="+base64.StdEncoding.EncodeToString(key), "ADVERTISE_HOST=127.0.0.1",
		"DATA_ROOT="+dataRoot, "PODMAN_SOCKET="+strings.TrimPrefix(podmanURL, "unix://"), "WORKER_ID="+workerID,
		"PROMETHEUS_CONFIG="+promConfig, "ULIMIT_NOFILE="+strconv.FormatUint(nofile.Cur, 10))
	for name, p := range s.ports {
		s.env = append(s.env, name+"="+strconv.Itoa(p))
	}

	start := time.Now()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := s.compose(cctx, "logs")
			t.Logf("podman-compose logs:\n%s", out)
		}
		if out, err := s.compose(cctx, "down", "-v"); err != nil {
			t.Errorf("podman-compose down: %v\n%s", err, out)
		}
		// What down leaves: containers of this project (none, normally), and
		// the job containers this project's worker started (a worker
		// stopped in 1 s may leave its replica).
		for _, filter := range []string{"label=io.podman.compose.project=" + s.project, "label=jobgate.worker=" + workerID} {
			out, _ := exec.CommandContext(cctx, "podman", "ps", "-a", "-q", "--filter", filter).Output()
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				_ = exec.CommandContext(cctx, "podman", append([]string{"rm", "-f", "-t", "1"}, ids...)...).Run()
			}
		}
		t.Logf("compose stack: up to down in %s", time.Since(start).Round(time.Second))
	})
	if out, err := s.compose(ctx, "up", "-d"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}

	// Both gateways ready.
	for _, name := range []string{"GATEWAY1_PORT", "GATEWAY2_PORT"} {
		url := fmt.Sprintf("http://127.0.0.1:%d/readyz", s.ports[name])
		testenv.Eventually(t, 2*time.Minute, func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, "%s never answered 200", url)
	}
	t.Logf("compose stack: up and ready in %s", time.Since(start).Round(time.Second))

	// A container job through the second gateway, placed on the worker.
	gw2 := client.New(fmt.Sprintf("http://127.0.0.1:%d", s.ports["GATEWAY2_PORT"]), token)
	wait := func(id string) *api.Job {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		j, err := gw2.Wait(wctx, id)
		if err != nil {
			t.Fatalf("wait for job %s: %v", id, err)
		}
		return j
	}
	job, err := gw2.Submit(ctx, api.JobSpec{Image: testenv.ExampleImage, Command: []string{"/bin/toolbox", "echo", "hello from compose"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if j := wait(job.ID); j.Status != api.StatusSucceeded || j.Worker != workerID {
		t.Fatalf("echo job: %s on %q (%s), want succeeded on %s", j.Status, j.Worker, j.Reason, workerID)
	}

	// The example modelserver deployed (iris trained by a job, registered),
	// and a request scored through the router.
	gw1 := client.New(fmt.Sprintf("http://127.0.0.1:%d", s.ports["GATEWAY1_PORT"]), token)
	train, err := gw1.Submit(ctx, api.JobSpec{Image: testenv.ExampleImage, Command: []string{"/bin/iris-train"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if j := wait(train.ID); j.Status != api.StatusSucceeded {
		t.Fatalf("iris-train: %s (%s)", j.Status, j.Reason)
	}
	if _, err := gw1.RegisterModel(ctx, "iris", train.ID, "model.json"); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"name": "iris", "model": "iris:1", "image": %q, "command": ["/bin/modelserver"], "replicas": 1}`, testenv.ExampleImage)
	req, _ := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("http://127.0.0.1:%d/v1/deployments", s.ports["GATEWAY1_PORT"]), strings.NewReader(spec))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create deployment: %d %s", resp.StatusCode, b)
	}
	router := &cluster{t: t, scoringURL: fmt.Sprintf("http://127.0.0.1:%d", s.ports["SCORING_PORT"]), token: token}
	var scoreErr error
	testenv.Eventually(t, 3*time.Minute, func() bool {
		_, scoreErr = router.infer(ctx, "iris", "")
		return scoreErr == nil
	}, "no scored request through the router: %v", lazy(func() string { return fmt.Sprint(scoreErr) }))
	t.Logf("compose stack: job run and request scored %s after up", time.Since(start).Round(time.Second))

	// Prometheus scrapes all four jobgate processes.
	promURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/targets", s.ports["PROMETHEUS_PORT"])
	var last string
	testenv.Eventually(t, 90*time.Second, func() bool {
		resp, err := http.Get(promURL)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		var got struct {
			Data struct {
				ActiveTargets []struct {
					ScrapeURL string `json:"scrapeUrl"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		raw, _ := io.ReadAll(resp.Body)
		last = string(raw)
		if json.NewDecoder(bytes.NewReader(raw)).Decode(&got) != nil || len(got.Data.ActiveTargets) != 4 {
			return false
		}
		for _, tg := range got.Data.ActiveTargets {
			if tg.Health != "up" {
				return false
			}
		}
		return true
	}, "Prometheus does not have the 4 jobgate targets up: %v", lazy(func() string { return last }))
}
