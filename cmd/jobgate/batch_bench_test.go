package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/testenv"
)

// BenchmarkBatchIris is BENCHMARKS.md's "Batch scoring" (not a test, run
// by `make bench-batch`): a 2-replica deployment of the Iris example (two
// /bin/modelserver containers on host networking), `jobgate gateway`,
// `jobgate scoring` and the batch's `jobgate worker` as real child
// processes. In one run it measures
//
//   - the HTTP batch API: BATCH_ROWS rows (default 100,000; also a tenth of
//     them first) uploaded as JSON lines with max_concurrency
//     BATCH_CONCURRENCY (default 16), rows per second as the batch reports
//     it (done over its job's run time), and the peak RSS (VmHWM) of the
//     gateway (reset with clear_refs before each batch) and of the worker
//     (a fresh process each batch); with BATCH_BEFORE_BIN, each batch once
//     more by turns with that binary's worker (the code before a change;
//     BATCH_AFTER_BIN names this tree's binary, so that both workers'
//     memory is a jobgate binary's, not the larger test binary's);
//   - the ceiling: the same rows sent by a tuned Go client (a keep-alive
//     connection per request in flight) at the same concurrency straight to
//     the two replicas, round robin (before the batches and again after
//     them: the load of a shared machine drifts);
//   - the same client through the scoring router (where the router's share
//     of the gap is).
//
// It prints a Markdown table.
func BenchmarkBatchIris(b *testing.B) {
	rows := envInt(b, "BATCH_ROWS", 100000)
	conc := envInt(b, "BATCH_CONCURRENCY", 16)
	c := &cluster{t: b, redisDir: b.TempDir(), artifacts: b.TempDir(), workers: map[string]func(){}}
	c.secretsKey = filepath.Join(b.TempDir(), "secrets.key")
	if _, err := secretbox.EnsureKeyFile(c.secretsKey); err != nil {
		b.Fatal(err)
	}
	c.redis = testenv.RedisIn(b, c.redisDir)
	c.podman = testenv.Podman(b)
	testenv.BuildExampleImage(b)
	gw := c.startGatewayProcess()
	b.Cleanup(func() {
		for id := range c.workers {
			c.stopWorker(id)
		}
	})
	c.startScoringProcess()
	c.startWorker("svc", "--slots", "2") // the replicas (and iris-train)
	addrs := c.deployIris2()

	// The batch's worker: this tree's `jobgate worker`, and before it, when
	// BATCH_BEFORE_BIN names another jobgate binary (main's, say), that
	// one's, run by turns on the same deployment: a fresh process each
	// batch, the only worker with a free slot.
	type batchWorker struct{ label, bin string }
	bws := []batchWorker{{"this tree", os.Getenv("BATCH_AFTER_BIN")}} // "": this test binary
	if bin := os.Getenv("BATCH_BEFORE_BIN"); bin != "" {
		bws = append([]batchWorker{{"before: " + filepath.Base(bin), bin}}, bws...)
	}

	dir := b.TempDir()
	file := func(n int) string {
		p := filepath.Join(dir, fmt.Sprintf("rows-%d.jsonl", n))
		var buf bytes.Buffer
		for i := range n {
			buf.WriteString(batchRow(i) + "\n")
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| path | rows | concurrency | rows/s | x ceiling | gateway peak RSS | worker peak RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	big := file(rows)
	ceiling := tunedClient(b, big, conc, func(i int) string { return "http://" + addrs[i%len(addrs)] + "/v2/models/iris/infer" }, "")
	router := tunedClient(b, big, conc, func(int) string { return c.scoringURL + "/v2/models/iris/infer" }, c.token)
	fmt.Fprintf(&table, "| tuned client -> 2 replicas (ceiling) | %d | %d | %.0f | 1.00 | | |\n", rows, conc, ceiling)
	fmt.Fprintf(&table, "| tuned client -> router -> 2 replicas | %d | %d | %.0f | %.2f | | |\n", rows, conc, router, router/ceiling)
	run := 0
	for _, n := range []int{rows / 10, rows} {
		p := big
		if n != rows {
			p = file(n)
		}
		for _, bwk := range bws {
			run++
			bw, stop := c.startBatchWorker(bwk.bin, fmt.Sprintf("batch-%d", run))
			_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", gw.Process.Pid), []byte("5"), 0) // reset VmHWM
			bt, wall := c.benchBatch(p, n, conc)
			fmt.Fprintf(&table, "| HTTP batch API, worker of %s | %d | %d | %.0f (%.0f end to end) | %.2f | %s | %s |\n",
				bwk.label, n, conc, bt.RowsPerSecond, float64(n)/wall.Seconds(), bt.RowsPerSecond/ceiling, peakRSS(gw.Process.Pid), peakRSS(bw.Process.Pid))
			stop()
			if bwk.label == "this tree" {
				b.ReportMetric(bt.RowsPerSecond, fmt.Sprintf("rows/s@%d", n))
			}
		}
	}
	// The machine's load drifts: the ceiling once more, after the batches.
	again := tunedClient(b, big, conc, func(i int) string { return "http://" + addrs[i%len(addrs)] + "/v2/models/iris/infer" }, "")
	fmt.Fprintf(&table, "| tuned client -> 2 replicas (ceiling, again after the batches) | %d | %d | %.0f | %.2f | | |\n", rows, conc, again, again/ceiling)
	b.ReportMetric(ceiling, "ceiling-rows/s")
	b.Logf("batch scoring, %d cores:\n%s", runtimeCores(), table.String())
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

func runtimeCores() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// peakRSS is process pid's VmHWM (peak resident set since start or the
// last clear_refs 5), as /proc says it.
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.Atoi(f[0]); err == nil {
				return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
			}
		}
	}
	return "?"
}

// startBatchWorker runs `jobgate worker` (bin, or this test binary when
// bin is "") as a real child process with one slot and the scoring router,
// and waits until it is up; stop ends it (SIGTERM) and waits for it.
func (c *cluster) startBatchWorker(bin, id string) (*exec.Cmd, func()) {
	c.t.Helper()
	args := []string{"worker", "--id", id, "--redis-url", c.redis.URL, "--artifacts-dir", c.artifacts,
		"--podman-url", c.podman, "--network", "host", "--stop-grace", "2s", "--slots", "1",
		"--spool-dir", c.t.TempDir(), "--checkpoint-dir", c.t.TempDir(), "--secrets-key-file", c.secretsKey, "--log-level", "warn",
		"--scoring-url", c.scoringURL, "--gateway-url", c.gwURL}
	cmd := exec.Command(cmpOr(bin, os.Args[0]), args...)
	cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			testenv.Eventually(c.t, 30*time.Second, func() bool { return c.workerState(id) != "up" }, "stopped worker %s still up", id)
		})
	}
	c.t.Cleanup(stop)
	testenv.Eventually(c.t, 20*time.Second, func() bool { return c.workerState(id) == "up" }, "worker process %s did not register", id)
	return cmd, stop
}

// startGatewayProcess runs `jobgate gateway` as a real child process with
// the flags startGateway gives the in-process one.
func (c *cluster) startGatewayProcess() *exec.Cmd {
	c.t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		c.t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := c.gatewayProcessAt(addr)
	c.gwURL = "http://" + addr
	c.token = testToken
	c.api = client.New(c.gwURL, c.token)
	return cmd
}

// deployIris2 trains and registers iris and deploys two replicas of it;
// it returns their addresses once both are ready.
func (c *cluster) deployIris2() []string {
	c.t.Helper()
	ctx := context.Background()
	train := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if train.Status != api.StatusSucceeded {
		c.t.Fatalf("iris-train: %s (%s)\n%s", train.Status, train.Reason, c.logs(train.ID))
	}
	if _, err := c.api.RegisterModel(ctx, "iris", train.ID, "model.json"); err != nil {
		c.t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"name": "iris", "model": "iris:1", "image": %q, "command": ["/bin/modelserver"], "replicas": 2}`, testenv.ExampleImage)
	var created api.Deployment
	if code := c.do("POST", "/v1/deployments", spec, &created); code != http.StatusCreated {
		c.t.Fatalf("create deployment: %d %+v", code, created)
	}
	c.t.Cleanup(func() { c.do("DELETE", "/v1/deployments/iris", "", nil) })
	d := c.waitDeployment("iris", 120*time.Second, "ready with 2 replicas", func(d api.Deployment) bool {
		return d.Status == api.DeploymentReady && d.ReadyReplicas == 2
	})
	var addrs []string
	for _, r := range d.Replicas {
		addrs = append(addrs, r.Address)
	}
	return addrs
}

// benchBatch posts the n rows of file as one batch and waits for it (a
// status read every 200 ms, not a busy poll: the benchmark shares its
// cores); it returns the batch as it ended and the time from the post to
// then.
func (c *cluster) benchBatch(file string, n, conc int) (api.Batch, time.Duration) {
	c.t.Helper()
	f, err := os.Open(file)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	code, _, body := c.postBatch("iris", fmt.Sprintf("?max_concurrency=%d", conc), "application/x-ndjson", f, nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(body, &acc) != nil {
		c.t.Fatalf("submit: %d %s", code, body)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Minute)
	for range tick.C {
		bt := c.batch(acc.ID)
		switch bt.Status {
		case api.BatchSucceeded:
			if bt.Done != n || bt.Failed != 0 {
				c.t.Fatalf("batch %+v, want %d rows done", bt, n)
			}
			return bt, time.Since(start)
		case api.BatchFailed, api.BatchCanceled:
			c.t.Fatalf("batch ended %+v", bt)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("batch not done after 30 minutes: %+v", bt)
		}
	}
	panic("unreachable")
}

// tunedClient sends every row of file to url(i) (row i) from conc
// goroutines, each with one request in flight, over a client that keeps a
// connection per goroutine; it returns rows per second. Any answer but 200
// fails the benchmark.
func tunedClient(b *testing.B, file string, conc int, url func(i int) string, token string) float64 {
	b.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = conc, 2*conc
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	rows := make(chan []byte, conc)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for row := range rows {
				i := int(next.Add(1) - 1)
				req, _ := http.NewRequest(http.MethodPost, url(i), bytes.NewReader(row))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := cl.Do(req)
				if err != nil {
					failed.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(resp.Status)
				}
			}
		}()
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rows <- bytes.Clone(sc.Bytes())
		n++
	}
	close(rows)
	wg.Wait()
	el := time.Since(start)
	if f := failed.Load(); f != nil {
		b.Fatalf("tuned client: a request failed: %v", f)
	}
	return float64(n) / el.Seconds()
}
