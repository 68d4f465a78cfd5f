package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// freeAddr is a free loopback address, 127.0.0.1:PORT.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// metricsCluster is a cluster whose gateway and worker w1 serve their
// metrics on --metrics-addr.
func metricsCluster(t *testing.T) (c *cluster, gwMetrics, wkMetrics string) {
	t.Helper()
	c = newCluster(t)
	gwMetrics, wkMetrics = freeAddr(t), freeAddr(t)
	c.stopGateway()
	c.gwFlags = []string{"--metrics-addr", gwMetrics}
	c.startGateway()
	c.startWorker("w1", "--metrics-addr", wkMetrics)
	return c, gwMetrics, wkMetrics
}

// TestMetricsOfGatewayWorkerAndScoring scrapes /metrics of each server
// process after real work (a job that succeeds, one that is retried and
// fails), checks each scrape with promtool, and that the values moved; the
// API port's /metrics answers the system admin token alone.
func TestMetricsOfGatewayWorkerAndScoring(t *testing.T) {
	c, gwMetrics, wkMetrics := metricsCluster(t)
	gwURL, wkURL := "http://"+gwMetrics+"/metrics", "http://"+wkMetrics+"/metrics"
	submitted := func() float64 {
		return max(testenv.MetricValue(t, testenv.Scrape(t, gwURL, ""), "jobgate_jobs_submitted_total", "workspace", "default"), 0)
	}
	before := submitted()

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(receiver.Close)
	ok := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("echo", "hi"),
		Notify: &api.Notify{URL: receiver.URL + "/done", Secret: webhook.NewSecret()}}).ID)
	if ok.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", ok.Status, ok.Reason)
	}
	if after := submitted(); after != before+1 {
		t.Errorf("jobgate_jobs_submitted_total{workspace=default} went from %v to %v, want +1", before, after)
	}
	bad := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("exit", "3"), MaxRetries: 1}).ID)
	if bad.Status != api.StatusFailed || bad.Attempt != 2 {
		t.Fatalf("failing job: %s after %d attempts, want failed after 2", bad.Status, bad.Attempt)
	}

	testenv.Eventually(t, 20*time.Second, func() bool {
		return testenv.MetricValue(t, testenv.Scrape(t, gwURL, ""), "jobgate_callbacks_total", "workspace", "default", "outcome", "delivered") == 1
	}, "the gateway never counted the job's callback as delivered")
	gw := testenv.Scrape(t, gwURL, "")
	testenv.CheckMetrics(t, gw)
	wk := testenv.Scrape(t, wkURL, "")
	testenv.CheckMetrics(t, wk)
	for _, tc := range []struct {
		process string
		scrape  []byte
		name    string
		labels  []string
		want    float64
	}{
		{"gateway", gw, "jobgate_jobs_submitted_total", []string{"workspace", "default"}, before + 2},
		{"gateway", gw, "jobgate_queue_depth", []string{"priority", "normal"}, 0},
		{"gateway", gw, "jobgate_queue_oldest_waiting_seconds", []string{"priority", "normal"}, 0},
		{"worker", wk, "jobgate_jobs_finished_total", []string{"workspace", "default", "status", "succeeded"}, 1},
		{"worker", wk, "jobgate_jobs_finished_total", []string{"workspace", "default", "status", "failed"}, 1},
		{"worker", wk, "jobgate_job_retries_total", []string{"workspace", "default"}, 1},
		{"worker", wk, "jobgate_dispatch_seconds", []string{"priority", "normal"}, 2},      // first attempts only
		{"worker", wk, "jobgate_job_duration_seconds", []string{"status", "succeeded"}, 1}, // one observation
		{"worker", wk, "jobgate_job_duration_seconds", []string{"status", "requeued"}, 1},
		{"worker", wk, "jobgate_worker_slots", nil, 4},
		{"worker", wk, "jobgate_worker_slots_in_use", nil, 0},
		{"worker", wk, "jobgate_worker_gpus", nil, 0},
	} {
		if got := testenv.MetricValue(t, tc.scrape, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s: %s%v = %v, want %v", tc.process, tc.name, tc.labels, got, tc.want)
		}
	}

	// The API port: the system admin token only, errors in the API's shape.
	var ro api.NewToken
	if code := c.do("POST", "/v1/workspaces/default/tokens", `{"name":"ro","scopes":["read","admin"]}`, &ro); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{{"no token", "", http.StatusUnauthorized}, {"a workspace admin", ro.Secret, http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodGet, c.gwURL+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body api.ErrorBody
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || err != nil || body.Error.Code == "" {
			t.Errorf("%s: GET /metrics on the API port is %d (%+v, %v), want %d with a JSON error", tc.name, resp.StatusCode, body, err, tc.want)
		}
	}
	onAPI := testenv.Scrape(t, c.gwURL+"/metrics", testToken)
	testenv.CheckMetrics(t, onAPI)
	if got := testenv.MetricValue(t, onAPI, "jobgate_jobs_submitted_total", "workspace", "default"); got != before+2 {
		t.Errorf("the API port's jobgate_jobs_submitted_total = %v, want %v", got, before+2)
	}

	// The scoring router: its --metrics-addr and its own /metrics (the
	// system admin token), linted; scoring/TestRouterMetrics has the
	// requests counted.
	scMetrics := freeAddr(t)
	c.startScoringProcess("--metrics-addr", scMetrics)
	c.infer(t.Context(), "no-such-model", "") // a 404, counted by no label
	testenv.CheckMetrics(t, testenv.Scrape(t, "http://"+scMetrics+"/metrics", ""))
	testenv.CheckMetrics(t, testenv.Scrape(t, c.scoringURL+"/metrics", testToken))
	resp, err := http.Get(c.scoringURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("scoring GET /metrics without a token: %s, want 401", resp.Status)
	}
}

// TestDevMetricsOnOneRegistry: `jobgate dev --metrics-addr` serves the
// metrics of all its parts (gateway, control plane, worker) on one
// listener, the job's whole path in one scrape.
func TestDevMetricsOnOneRegistry(t *testing.T) {
	redisURL := testenv.Redis(t)
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	c := &cluster{t: t, gwURL: "http://" + addr, token: testToken}
	stop := c.start("dev", "--redis-url", redisURL, "--data-dir", t.TempDir(), "--addr", addr, "--metrics-addr", metricsAddr,
		"--podman-url", "unix://"+filepath.Join(t.TempDir(), "podman.sock"), "--network", "host", "--log-level", "warn")
	defer stop()
	c.api = client.New(c.gwURL, testToken)
	c.waitDevReady()
	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo hi"}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j.Status, j.Reason)
	}
	scrape := testenv.Scrape(t, "http://"+metricsAddr+"/metrics", "")
	testenv.CheckMetrics(t, scrape)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobgate_jobs_submitted_total", []string{"workspace", "default"}, 1},
		{"jobgate_jobs_finished_total", []string{"workspace", "default", "status", "succeeded"}, 1},
		{"jobgate_dispatch_seconds", []string{"priority", "normal"}, 1},
		{"jobgate_worker_slots", nil, 4},
		{"jobgate_queue_depth", []string{"priority", "high"}, 0},
	} {
		if got := testenv.MetricValue(t, scrape, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestPrometheusScrapesJobgate runs Debian's real Prometheus against a
// gateway and a worker (--metrics-addr), waits for both targets to be up,
// and finds the submitted job in a PromQL query.
func TestPrometheusScrapesJobgate(t *testing.T) {
	const promBin = "/usr/bin/prometheus"
	if _, err := exec.LookPath(promBin); err != nil {
		if testenv.Required() {
			t.Fatalf("prometheus not found (apt-get install -y prometheus): %v", err)
		}
		t.Skipf("prometheus not found (apt-get install -y prometheus): %v", err)
	}
	c, gwMetrics, wkMetrics := metricsCluster(t)
	j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("echo", "scraped")}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j.Status, j.Reason)
	}

	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: jobgate-gateway
    static_configs: [{targets: [%q]}]
  - job_name: jobgate-worker
    static_configs: [{targets: [%q]}]
`, gwMetrics, wkMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--web.listen-address="+promAddr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--log.level=warn")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Only the Prometheus this test started, by its PID.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus said:\n%s", out.String())
		}
	})
	prom := "http://" + promAddr
	promGet := func(path string, v any) error {
		resp, err := http.Get(prom + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", path, resp.Status, b)
		}
		return json.Unmarshal(b, v)
	}

	var targets struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		if promGet("/api/v1/targets", &targets) != nil || len(targets.Data.ActiveTargets) != 2 {
			return false
		}
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Health != "up" {
				return false
			}
		}
		return true
	}, "Prometheus's targets never all up: %+v", lazy(func() string { return fmt.Sprintf("%+v", targets.Data.ActiveTargets) }))

	var result struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	query := "/api/v1/query?query=" + url.QueryEscape("jobgate_jobs_submitted_total")
	testenv.Eventually(t, 30*time.Second, func() bool {
		if promGet(query, &result) != nil {
			return false
		}
		for _, r := range result.Data.Result {
			if r.Metric["workspace"] == "default" && r.Metric["job"] == "jobgate-gateway" && r.Value[1] == "1" {
				return true
			}
		}
		return false
	}, "Prometheus never had jobgate_jobs_submitted_total{workspace=default} = 1 from the gateway: %+v", lazy(func() string { return fmt.Sprintf("%+v", result) }))
	query = "/api/v1/query?query=" + url.QueryEscape(`jobgate_jobs_finished_total{status="succeeded"}`)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return promGet(query, &result) == nil && len(result.Data.Result) == 1 && result.Data.Result[0].Metric["job"] == "jobgate-worker" &&
			strings.TrimSpace(fmt.Sprint(result.Data.Result[0].Value[1])) == "1"
	}, "Prometheus never had the worker's finished job: %+v", lazy(func() string { return fmt.Sprintf("%+v", result) }))
}

// TestRecoveryIsCounted: a worker process killed with SIGKILL mid-job and
// not restarted has its attempt recovered by the gateway's scheduler, and
// the gateway's jobgate_recoveries_total{reason="worker_lost"} counts it.
func TestRecoveryIsCounted(t *testing.T) {
	c := newCluster(t)
	gwMetrics := freeAddr(t)
	c.stopGateway()
	c.gwFlags = []string{"--metrics-addr", gwMetrics, "--worker-lost-after", "3s"}
	c.startGateway()
	doomed := c.startWorkerProcess("doomed", t.TempDir(), t.TempDir())
	// Attempt 1 sleeps (bounded: its worker is not there to stop it);
	// attempt 2 ends at once.
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`if [ "$JOBGATE_ATTEMPT" = 1 ]; then sleep 30; fi; echo done`}})
	c.waitFor(j.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	if err := doomed.Process.Kill(); err != nil { // only the worker this test started
		t.Fatal(err)
	}
	doomed.Wait()
	c.startWorker("rescuer")
	done := c.waitEnded(j.ID)
	if done.Status != api.StatusSucceeded || done.Attempt != 2 {
		t.Fatalf("job: %s (%s) on attempt %d, want succeeded on attempt 2", done.Status, done.Reason, done.Attempt)
	}
	scrape := testenv.Scrape(t, "http://"+gwMetrics+"/metrics", "")
	testenv.CheckMetrics(t, scrape)
	if got := testenv.MetricValue(t, scrape, "jobgate_recoveries_total", "reason", api.ReasonWorkerLost); got != 1 {
		t.Errorf("jobgate_recoveries_total{reason=worker_lost} = %v, want 1", got)
	}
}

// TestScoringAndBatchMetrics: the scoring router process counts a scored
// request by deployment, version and code (its --metrics-addr, linted), and
// the worker counts the rows of a batch sent through it.
func TestScoringAndBatchMetrics(t *testing.T) {
	c := newCluster(t)
	scMetrics, wkMetrics := freeAddr(t), freeAddr(t)
	c.startScoringProcess("--metrics-addr", scMetrics)
	c.startWorker("w1", "--slots", "8", "--scoring-url", c.scoringURL, "--metrics-addr", wkMetrics)
	c.deployIris()
	if _, err := c.infer(t.Context(), "iris", ""); err != nil {
		t.Fatal(err)
	}
	scURL := "http://" + scMetrics + "/metrics"
	served := []string{"workspace", "default", "deployment", "iris", "version", "1"}
	sc := testenv.Scrape(t, scURL, "")
	testenv.CheckMetrics(t, sc)
	if got := testenv.MetricValue(t, sc, "jobgate_scoring_requests_total", append(served, "code", "200")...); got != 1 {
		t.Errorf("jobgate_scoring_requests_total{iris, 1, 200} = %v, want 1", got)
	}
	if got := testenv.MetricValue(t, sc, "jobgate_scoring_request_seconds", served...); got != 1 {
		t.Errorf("jobgate_scoring_request_seconds{iris, 1} counted %v, want 1", got)
	}

	var body strings.Builder
	for i := range 10 {
		body.WriteString(batchRow(i) + "\n")
	}
	code, _, b := c.postBatch("iris", "", "application/x-ndjson", strings.NewReader(body.String()), nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
		t.Fatalf("submit batch: %d %s", code, b)
	}
	c.waitBatch(acc.ID, 120*time.Second, "succeeded", func(bt api.Batch) bool { return bt.Status == api.BatchSucceeded })
	wk := testenv.Scrape(t, "http://"+wkMetrics+"/metrics", "")
	testenv.CheckMetrics(t, wk)
	if got := testenv.MetricValue(t, wk, "jobgate_batch_rows_total", "kind", "batch", "outcome", "ok"); got != 10 {
		t.Errorf("jobgate_batch_rows_total{batch, ok} = %v, want 10", got)
	}
	if got := testenv.MetricValue(t, testenv.Scrape(t, scURL, ""), "jobgate_scoring_requests_total", append(served, "code", "200")...); got != 11 {
		t.Errorf("after the batch jobgate_scoring_requests_total{iris, 1, 200} = %v, want 11 (its 10 rows and the request before)", got)
	}
}

// TestPreemptionAndGPUsInUse: a worker with a simulated GPU reports it in
// use while a low-priority job holds it, and counts the preemption when a
// high-priority job takes it.
func TestPreemptionAndGPUsInUse(t *testing.T) {
	c := newCluster(t)
	wkMetrics := freeAddr(t)
	c.startWorker("g1", "--simulate-gpus", "1", "--metrics-addr", wkMetrics)
	wkURL := "http://" + wkMetrics + "/metrics"
	low := gpuJob(1, `if [ "$JOBGATE_ATTEMPT" != 1 ]; then exit 0; fi
trap 'exit 143' TERM
while true; do sleep 0.1; done`)
	low.Priority = api.PriorityLow
	lj := c.submit(low)
	c.waitFor(lj.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	testenv.Eventually(t, 10*time.Second, func() bool {
		return testenv.MetricValue(t, testenv.Scrape(t, wkURL, ""), "jobgate_worker_gpus_in_use") == 1
	}, "the worker never reported its GPU in use")

	high := gpuJob(1, `echo high ran`)
	high.Priority = api.PriorityHigh
	if done := c.waitEnded(c.submit(high).ID); done.Status != api.StatusSucceeded {
		t.Fatalf("high job: %s (%s)", done.Status, done.Reason)
	}
	if done := c.waitEnded(lj.ID); done.Status != api.StatusSucceeded || done.Attempt != 2 {
		t.Fatalf("low job: %s (%s) attempt %d, want succeeded on attempt 2", done.Status, done.Reason, done.Attempt)
	}
	wk := testenv.Scrape(t, wkURL, "")
	testenv.CheckMetrics(t, wk)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobgate_preemptions_total", []string{"workspace", "default"}, 1},
		{"jobgate_job_retries_total", []string{"workspace", "default"}, -1}, // a preemption is no retry
		{"jobgate_dispatch_seconds", []string{"priority", "high"}, 1},
		{"jobgate_dispatch_seconds", []string{"priority", "low"}, 1},
		{"jobgate_worker_gpus", nil, 1},
		{"jobgate_worker_gpus_in_use", nil, 0},
	} {
		if got := testenv.MetricValue(t, wk, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
