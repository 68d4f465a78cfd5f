package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// irisRows are rows 1, 51 and 101 of Fisher's table; row i of a batch is
// irisRows[i%3], whose class is i%3.
var irisRows = []string{"[5.1, 3.5, 1.4, 0.2]", "[7.0, 3.2, 4.7, 1.4]", "[6.3, 3.3, 6.0, 2.5]"}

// batchRow is row i of a test batch: one V2 request with id row-i.
func batchRow(i int) string {
	return fmt.Sprintf(`{"id": "row-%d", "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [%s]}]}`, i, irisRows[i%3])
}

// badRow is a request the model server refuses (400).
func badRow(i int) string { return fmt.Sprintf(`{"id": "row-%d", "inputs": []}`, i) }

// postBatch posts body to deployment name's batch with content type ct and
// the extra headers; it returns the status and body.
func (c *cluster) postBatch(name, query, ct string, body io.Reader, hdr map[string]string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.gwURL+"/v1/deployments/"+name+"/batch"+query, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", ct)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (c *cluster) batch(id string) api.Batch {
	c.t.Helper()
	var b api.Batch
	if code := c.do("GET", "/v1/batches/"+id, "", &b); code != http.StatusOK {
		c.t.Fatalf("GET batch %s: %d", id, code)
	}
	return b
}

func (c *cluster) waitBatch(id string, within time.Duration, what string, cond func(api.Batch) bool) api.Batch {
	c.t.Helper()
	var b api.Batch
	testenv.Eventually(c.t, within, func() bool { b = c.batch(id); return cond(b) },
		"batch %s never %s; last: %s", id, what, lazy(func() string { j, _ := json.Marshal(b); return string(j) }))
	return b
}

// batchResults reads batch id's results: one raw line each.
func (c *cluster) batchResults(id string) []string {
	c.t.Helper()
	var lines []string
	c.streamResults(id, func(_ int, line string) error { lines = append(lines, line); return nil })
	return lines
}

// checkAnswers says what is wrong with lines as the answers to rows
// 0..len(lines)-1 of batchRow, bad naming the rows answered with an error.
func checkAnswers(lines []string, bad map[int]bool) error {
	for i, l := range lines {
		if err := checkAnswer(i, l, bad[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkAnswer says what is wrong with l as the answer to row i of
// batchRow: its V2 answer, or its row error when bad.
func checkAnswer(i int, l string, bad bool) error {
	if bad {
		var e api.BatchRowError
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Index != i || e.Error == "" {
			return fmt.Errorf("line %d: %s, want the error of row %d", i, l, i)
		}
		return nil
	}
	var a struct {
		ID      string `json:"id"`
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(l), &a); err != nil {
		return fmt.Errorf("line %d: %s: %v", i, l, err)
	}
	if a.ID != fmt.Sprintf("row-%d", i) || len(a.Outputs) == 0 || a.Outputs[0].Name != "label" || fmt.Sprint(a.Outputs[0].Data) != fmt.Sprintf("[%d]", i%3) {
		return fmt.Errorf("line %d: %s, want id row-%d with label %d", i, l, i, i%3)
	}
	return nil
}

// deployIris trains iris, registers it as iris:1 and deploys one replica
// of it, waiting until it is ready.
func (c *cluster) deployIris() { c.t.Helper(); c.deployIrisReplicas(1) }

// deployIrisReplicas is deployIris with n replicas, waiting until all are
// ready.
func (c *cluster) deployIrisReplicas(n int) api.Deployment {
	c.t.Helper()
	t := c.t
	ctx := context.Background()

	train := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if train.Status != api.StatusSucceeded {
		t.Fatalf("iris-train: %s (%s)\n%s", train.Status, train.Reason, c.logs(train.ID))
	}
	if _, err := c.api.RegisterModel(ctx, "iris", train.ID, "model.json"); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{"name": "iris", "model": "iris:1", "image": %q, "command": ["/bin/modelserver"], "replicas": %d}`, testenv.ExampleImage, n)
	var created api.Deployment
	if code := c.do("POST", "/v1/deployments", spec, &created); code != http.StatusCreated {
		t.Fatalf("create deployment: %d %+v", code, created)
	}
	c.t.Cleanup(func() { c.do("DELETE", "/v1/deployments/iris", "", nil) })
	return c.waitDeployment("iris", 90*time.Second, "ready", func(d api.Deployment) bool {
		return d.Status == api.DeploymentReady && d.ReadyReplicas == n
	})
}

// TestBatchHTTP is issue 13's HTTP batch on a real cluster: iris trained,
// registered and deployed (one replica of /bin/modelserver), `jobgate
// scoring` as a child process, a worker sending through it. 1,000 rows
// uploaded as JSON lines come back answered, in order, each correct, and
// what GET .../results shows while the batch runs is always a correct
// prefix; the same upload with the same Idempotency-Key is the same batch;
// a bad line is a 422 naming it; rows the model refuses count against
// error_threshold (over it the batch fails with the counts); a canceled
// batch stops, and its results are the rows done.
func TestBatchHTTP(t *testing.T) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--slots", "8", "--scoring-url", c.scoringURL)
	c.deployIris()

	t.Run("1000 rows as JSON lines", func(t *testing.T) {
		var body strings.Builder
		for i := range 1000 {
			body.WriteString(batchRow(i) + "\n")
		}
		hdr := map[string]string{"Idempotency-Key": "k-1000"}
		code, _, b := c.postBatch("iris", "?max_concurrency=2", "application/x-ndjson", strings.NewReader(body.String()), hdr)
		var acc api.BatchAccepted
		if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ID == "" || acc.Status != api.BatchQueued {
			t.Fatalf("submit: %d %s, want 202 {id, status: queued}", code, b)
		}
		// While it runs: what the results show is always a correct prefix.
		partial := 0
		final := c.waitBatch(acc.ID, 120*time.Second, "succeeded", func(bt api.Batch) bool {
			lines := c.batchResults(acc.ID)
			if err := checkAnswers(lines, nil); err != nil {
				t.Fatalf("results while %s: %v", bt.Status, err)
			}
			if len(lines) > 0 && len(lines) < 1000 {
				partial++
			}
			return bt.Status == api.BatchSucceeded
		})
		if final.Total != 1000 || final.Done != 1000 || final.Failed != 0 || final.Deployment != "iris" || final.FinishedAt == nil {
			t.Fatalf("batch ended %+v, want 1000 done, 0 failed", final)
		}
		lines := c.batchResults(acc.ID)
		if len(lines) != 1000 {
			t.Fatalf("results: %d lines, want 1000", len(lines))
		}
		if err := checkAnswers(lines, nil); err != nil {
			t.Fatal(err)
		}
		t.Logf("partial results seen %d times while running; %.0f rows/s", partial, final.RowsPerSecond)

		// The same key and rows: the same batch.
		code, h, b := c.postBatch("iris", "?max_concurrency=2", "application/x-ndjson", strings.NewReader(body.String()), hdr)
		var again api.BatchAccepted
		if code != http.StatusAccepted || json.Unmarshal(b, &again) != nil || again.ID != acc.ID || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s %v, want 202 with batch %s replayed", code, b, h, acc.ID)
		}
	})

	t.Run("bad input is refused naming it", func(t *testing.T) {
		for _, tc := range []struct {
			name, ct, query, body, want string
			code                        int
		}{
			{"bad line", "application/x-ndjson", "", batchRow(0) + "\n" + batchRow(1) + "\nnot json\n", "line 3", 422},
			{"not an object", "application/json", "", `{"requests": [` + batchRow(0) + `, [1]]}`, "requests[1]", 422},
			{"no requests", "application/json", "", `{"error_threshold": 1}`, "requests", 422},
			{"unknown field", "application/json", "", `{"requests": [], "rows": []}`, "rows", 422},
			{"concurrency", "application/x-ndjson", "?max_concurrency=1000", batchRow(0), "max_concurrency", 422},
			{"no deployment", "application/json", "", `{"requests": [` + batchRow(0) + `]}`, "nope", 404},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "iris"
				if tc.code == 404 {
					name = "nope"
				}
				code, _, b := c.postBatch(name, tc.query, tc.ct, strings.NewReader(tc.body), nil)
				if code != tc.code || !strings.Contains(string(b), tc.want) {
					t.Fatalf("got %d %s, want %d naming %q", code, b, tc.code, tc.want)
				}
			})
		}
		// A client's job spec may not be a batch.
		var e api.ErrorBody
		if code := c.do("POST", "/v1/jobs", `{"batch": {"deployment": "iris", "input": "x", "total": 1, "max_concurrency": 1}}`, &e); code != 422 || !strings.Contains(e.Error.Message, "batch") {
			t.Fatalf("job with batch: %d %+v, want 422 naming batch", code, e)
		}
	})

	t.Run("error_threshold", func(t *testing.T) {
		rows := make([]string, 30)
		bad := map[int]bool{7: true, 19: true}
		for i := range rows {
			rows[i] = batchRow(i)
			if bad[i] {
				rows[i] = badRow(i)
			}
		}
		// As JSON ("error_threshold") and as JSON lines (?error_threshold=).
		for _, tc := range []struct {
			threshold int
			ndjson    bool
			want      api.BatchStatus
		}{{2, false, api.BatchSucceeded}, {1, false, api.BatchFailed}, {2, true, api.BatchSucceeded}, {1, true, api.BatchFailed}} {
			body := fmt.Sprintf(`{"requests": [%s], "error_threshold": %d}`, strings.Join(rows, ","), tc.threshold)
			ct, query := "application/json", ""
			if tc.ndjson {
				body = strings.Join(rows, "\n") + "\n"
				ct, query = "application/x-ndjson", fmt.Sprintf("?error_threshold=%d", tc.threshold)
			}
			code, _, b := c.postBatch("iris", query, ct, strings.NewReader(body), nil)
			var acc api.BatchAccepted
			if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
				t.Fatalf("submit: %d %s", code, b)
			}
			got := c.waitBatch(acc.ID, 60*time.Second, "ended", func(b api.Batch) bool {
				return b.Status != api.BatchQueued && b.Status != api.BatchRunning
			})
			if got.Status != tc.want || got.Done != 30 || got.Failed != 2 {
				t.Fatalf("threshold %d (%s): %+v, want %s with 30 done, 2 failed", tc.threshold, ct, got, tc.want)
			}
			if tc.want == api.BatchFailed && !strings.Contains(got.Reason, "2 of 30 rows failed") {
				t.Errorf("reason %q, want the counts", got.Reason)
			}
			if err := checkAnswers(c.batchResults(acc.ID), bad); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("CLI", func(t *testing.T) {
		var body strings.Builder
		for i := range 250 {
			body.WriteString(batchRow(i) + "\n")
		}
		file := filepath.Join(t.TempDir(), "rows.jsonl")
		if err := os.WriteFile(file, []byte(body.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": c.token}
		res := runCLI(t, env, "", "batch", "submit", "iris", "-f", file, "--wait")
		if res.err != nil {
			t.Fatalf("batch submit --wait: %v\n%s%s", res.err, res.stdout, res.stderr)
		}
		id := strings.TrimSpace(res.stdout)
		// Not a terminal: plain progress lines, the last one the end.
		if !strings.Contains(res.stderr, "succeeded [##############################] 250/250 rows, 0 failed") {
			t.Errorf("progress on stderr:\n%s", res.stderr)
		}
		res = runCLI(t, env, "", "batch", "results", id)
		if res.err != nil {
			t.Fatal(res.err)
		}
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 250 {
			t.Fatalf("batch results: %d lines, want 250", len(lines))
		}
		if err := checkAnswers(lines, nil); err != nil {
			t.Fatal(err)
		}
		res = runCLI(t, env, "", "batch", "get", id, "--json")
		var b api.Batch
		if res.err != nil || json.Unmarshal([]byte(res.stdout), &b) != nil || b.Done != 250 || b.Status != api.BatchSucceeded {
			t.Fatalf("batch get: %v %s", res.err, res.stdout)
		}
		res = runCLI(t, env, "", "batch", "cancel", id)
		if res.err != nil || !strings.Contains(res.stdout, "succeeded (250 of 250 rows done)") {
			t.Fatalf("cancel of an ended batch: %v %s%s", res.err, res.stdout, res.stderr)
		}
	})

	t.Run("callback signed", func(t *testing.T) {
		secret := webhook.NewSecret()
		got := make(chan string, 4)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if err := webhook.VerifyStandard([]string{secret}, r.Header, body, time.Now(), 0); err != nil {
				got <- "bad signature: " + err.Error()
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			got <- string(body)
			w.WriteHeader(http.StatusNoContent)
		}))
		defer receiver.Close()
		// As JSON ("callback") and as JSON lines (?callback_url= and the
		// Jobgate-Callback-Secret header).
		for _, ndjson := range []bool{false, true} {
			body := fmt.Sprintf(`{"requests": [%s, %s], "callback": {"url": %q, "secret": %q}}`, batchRow(0), batchRow(1), receiver.URL, secret)
			ct, query, hdr := "application/json", "", map[string]string(nil)
			if ndjson {
				body = batchRow(0) + "\n" + batchRow(1) + "\n"
				ct, query, hdr = "application/x-ndjson", "?callback_url="+url.QueryEscape(receiver.URL), map[string]string{"Jobgate-Callback-Secret": secret}
			}
			code, _, b := c.postBatch("iris", query, ct, strings.NewReader(body), hdr)
			var acc api.BatchAccepted
			if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
				t.Fatalf("submit: %d %s", code, b)
			}
			select {
			case msg := <-got:
				if !strings.Contains(msg, `"job.succeeded"`) || !strings.Contains(msg, acc.ID) {
					t.Fatalf("callback (%s): %s, want job.succeeded of batch %s, signed", ct, msg, acc.ID)
				}
				// The batch itself, with its counts, as GET /v1/batches/{id} has it.
				var payload struct {
					Batch *api.Batch `json:"batch"`
				}
				if err := json.Unmarshal([]byte(msg), &payload); err != nil || payload.Batch == nil || payload.Batch.ID != acc.ID ||
					payload.Batch.Status != api.BatchSucceeded || payload.Batch.Total != 2 || payload.Batch.Done != 2 || payload.Batch.Failed != 0 {
					t.Fatalf("callback (%s): %s, want the batch: succeeded, 2 of 2 done, 0 failed", ct, msg)
				}
			case <-time.After(60 * time.Second): // a bound on the wait, not a sleep
				t.Fatalf("no callback (%s) for batch %s: %+v", ct, acc.ID, c.batch(acc.ID))
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		var body bytes.Buffer
		for i := range 20000 {
			body.WriteString(batchRow(i) + "\n")
		}
		code, _, b := c.postBatch("iris", "?max_concurrency=1", "application/x-ndjson", &body, nil)
		var acc api.BatchAccepted
		if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
			t.Fatalf("submit: %d %s", code, b)
		}
		c.waitBatch(acc.ID, 60*time.Second, "running with rows done", func(b api.Batch) bool { return b.Done > 0 })
		var after api.Batch
		if code := c.do("POST", "/v1/batches/"+acc.ID+"/cancel", "", &after); code != http.StatusOK {
			t.Fatalf("cancel: %d %+v", code, after)
		}
		got := c.waitBatch(acc.ID, 30*time.Second, "canceled", func(b api.Batch) bool { return b.Status == api.BatchCanceled })
		if got.Done >= 20000 {
			t.Fatalf("canceled batch did all its rows: %+v", got)
		}
		lines := c.batchResults(acc.ID)
		if len(lines) != got.Done {
			t.Fatalf("results: %d lines, want the %d rows done", len(lines), got.Done)
		}
		if err := checkAnswers(lines, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatchWorkerKilledResumes SIGKILLs the `jobgate worker` process that
// scores a batch of 20,000 rows, mid-batch, and starts it again under the
// same ID: attempt 2 resumes at the first chunk not written (its log says
// at which row, past 0), and the results hold every row once, in order,
// each answer right. The replica runs on another, in-process worker of one
// slot, which the replica fills, so the batch goes to the one killed.
func TestBatchWorkerKilledResumes(t *testing.T) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("svc", "--slots", "1")
	c.deployIris()
	spool, ckpt := t.TempDir(), t.TempDir()
	w := c.startWorkerProcess("crashy", spool, ckpt, "--scoring-url", c.scoringURL, "--gateway-url", c.gwURL)

	const n = 20000
	var body bytes.Buffer
	for i := range n {
		body.WriteString(batchRow(i) + "\n")
	}
	code, _, b := c.postBatch("iris", "?max_concurrency=1", "application/x-ndjson", &body, nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
		t.Fatalf("submit: %d %s", code, b)
	}
	c.waitBatch(acc.ID, 60*time.Second, "300 rows done", func(b api.Batch) bool { return b.Done >= 300 })
	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	killedAt := c.batch(acc.ID).Done
	if killedAt >= n {
		t.Fatalf("the batch ended before the worker was killed")
	}
	c.startWorkerProcess("crashy", spool, ckpt, "--scoring-url", c.scoringURL, "--gateway-url", c.gwURL)
	got := c.waitBatch(acc.ID, 180*time.Second, "succeeded", func(b api.Batch) bool {
		if b.Status == api.BatchFailed || b.Status == api.BatchCanceled {
			t.Fatalf("batch ended %+v", b)
		}
		return b.Status == api.BatchSucceeded
	})
	if got.Done != n || got.Failed != 0 {
		t.Fatalf("batch %+v, want %d done", got, n)
	}
	lines := c.batchResults(acc.ID)
	if len(lines) != n {
		t.Fatalf("results: %d lines, want %d (each row once)", len(lines), n)
	}
	if err := checkAnswers(lines, nil); err != nil {
		t.Fatal(err)
	}
	j := c.get(acc.ID)
	logs := c.logs(acc.ID)
	if j.Attempt < 2 || !strings.Contains(logs, "jobgate: batch resumes at row ") {
		t.Fatalf("attempt %d, log %q: want a second attempt that resumed", j.Attempt, logs)
	}
	t.Logf("killed with %d rows recorded done; %s", killedAt, logs[strings.Index(logs, "jobgate: batch resumes"):])
}

// streamResults reads batch id's results line by line, never holding them
// all, calling each with every line and its 0-based index; it returns how
// many lines there were, or each's first error.
func (c *cluster) streamResults(id string, each func(i int, line string) error) (int, error) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.gwURL+"/v1/batches/"+id+"/results", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("results of %s: %d %s", id, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	n := 0
	for ; sc.Scan(); n++ {
		if err := each(n, sc.Text()); err != nil {
			return n, err
		}
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return n, nil
}

// checkResults streams batch id's results and fails t unless every line is
// the right answer to its row of batchRow; it returns how many there were.
func (c *cluster) checkResults(id string) int {
	c.t.Helper()
	n, err := c.streamResults(id, func(i int, l string) error { return checkAnswer(i, l, false) })
	if err != nil {
		c.t.Fatalf("results of batch %s: %v", id, err)
	}
	return n
}

// rowsBody is rows 0..n-1 of batchRow as JSON lines, written as they are
// read (never held whole).
func rowsBody(t *testing.T, n int) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		for i := range n {
			if _, err := bw.WriteString(batchRow(i) + "\n"); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	return pr
}

// TestBatchLargeUpload uploads 100,000 rows as JSON lines, streamed from a
// generator (the test never holds them either), to a 2-replica deployment:
// the batch completes, and its results, read line by line, are 100,000
// answers in order, each correct; what they show while it runs is a
// correct prefix.
func TestBatchLargeUpload(t *testing.T) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--slots", "8", "--scoring-url", c.scoringURL)
	c.deployIrisReplicas(2)

	const n = 100_000
	began := time.Now()
	code, _, b := c.postBatch("iris", "?max_concurrency=8", "application/x-ndjson", rowsBody(t, n), nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ID == "" {
		t.Fatalf("submit: %d %s, want 202 {id}", code, b)
	}
	uploaded := time.Since(began)
	if bt := c.batch(acc.ID); bt.Total != n {
		t.Fatalf("batch %+v, want %d rows", bt, n)
	}
	// While it runs, now and then (each read streams what is done):
	// the results are a correct prefix, as long as the rows done then.
	partial, lastRead := 0, -1
	final := c.waitBatch(acc.ID, 10*time.Minute, "succeeded", func(bt api.Batch) bool {
		if bt.Status == api.BatchFailed || bt.Status == api.BatchCanceled {
			t.Fatalf("batch ended %+v", bt)
		}
		if bt.Status == api.BatchRunning && bt.Done > 0 && bt.Done < n && (lastRead < 0 || bt.Done-lastRead >= n/5) {
			got := c.checkResults(acc.ID)
			if got < bt.Done || got > n {
				t.Fatalf("results while running: %d lines, with %d rows done before the read", got, bt.Done)
			}
			if got < n {
				partial++
			}
			lastRead = bt.Done
		}
		return bt.Status == api.BatchSucceeded
	})
	if final.Total != n || final.Done != n || final.Failed != 0 {
		t.Fatalf("batch ended %+v, want %d done, 0 failed", final, n)
	}
	if partial == 0 {
		t.Errorf("the results were never read while the batch ran")
	}
	if got := c.checkResults(acc.ID); got != n {
		t.Fatalf("results: %d lines, want %d", got, n)
	}
	t.Logf("%d rows: uploaded in %v, done in %v (%.0f rows/s); partial results read and checked %d times while running",
		n, uploaded.Round(time.Millisecond), time.Since(began).Round(time.Second), final.RowsPerSecond, partial)
}

// TestBatchReplicaKilled SIGKILLs one replica's model server while a batch
// of 20,000 rows is scored through the deployment, after some rows are done
// and well before all: the batch succeeds in its first attempt with every
// row answered once, in order, correctly, none failed, and the controller
// restarts the replica. With 2 replicas the router sends a row whose
// replica died to the other one; with 1, the batch waits (502, then 503
// until the replica is back) and sends it again.
func TestBatchReplicaKilled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"2 replicas", 2}, {"1 replica", 1}} {
		replicas := tc.replicas
		t.Run(tc.name, func(t *testing.T) {
			batchReplicaKilled(t, replicas)
		})
	}
}

func batchReplicaKilled(t *testing.T, replicas int) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--slots", "8", "--scoring-url", c.scoringURL)
	d := c.deployIrisReplicas(replicas)

	const n = 20_000
	code, _, b := c.postBatch("iris", "?max_concurrency=8", "application/x-ndjson", rowsBody(t, n), nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
		t.Fatalf("submit: %d %s", code, b)
	}
	c.waitBatch(acc.ID, 120*time.Second, "1,000 rows done", func(b api.Batch) bool { return b.Done >= 1000 })
	victim := d.Replicas[0]
	c.killReplica(victim.JobID)
	killedAt := c.batch(acc.ID).Done
	if killedAt >= n/2 {
		t.Fatalf("%d of %d rows were done when the replica was killed: not mid-batch", killedAt, n)
	}
	got := c.waitBatch(acc.ID, 5*time.Minute, "succeeded", func(b api.Batch) bool {
		if b.Status == api.BatchFailed || b.Status == api.BatchCanceled {
			t.Fatalf("batch ended %+v", b)
		}
		return b.Status == api.BatchSucceeded
	})
	if got.Done != n || got.Failed != 0 {
		t.Fatalf("batch %+v, want %d done, 0 failed", got, n)
	}
	if lines := c.checkResults(acc.ID); lines != n {
		t.Fatalf("results: %d lines, want %d (each row once)", lines, n)
	}
	c.waitDeployment("iris", 90*time.Second, "restarted its killed replica", func(d api.Deployment) bool {
		for _, r := range d.Replicas {
			if r.ID == victim.ID && r.Restarts >= 1 && r.State == api.ReplicaReady && r.JobID != victim.JobID {
				return d.ReadyReplicas == replicas
			}
		}
		return false
	})
	if j := c.get(acc.ID); j.Attempt != 1 {
		t.Errorf("batch job took %d attempts, want 1: the kill cost the worker nothing", j.Attempt)
	}
	t.Logf("replica %s killed with %d of %d rows done; the batch ended %s, %d done, 0 failed, at %.0f rows/s",
		victim.JobID, killedAt, n, got.Status, got.Done, got.RowsPerSecond)
}
