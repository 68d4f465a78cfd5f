package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/testenv"
)

// scoreFile is one CSV file of a batch-score test's datastore: path, and
// how many Iris rows it holds (row i is irisRows[i%3], of class i%3).
type scoreFile struct {
	path string
	rows int
}

// batchScoreData writes files under a header row, and a file that is not
// scored, into a folder registered as datastore "scores".
func (c *cluster) batchScoreData(files ...scoreFile) {
	c.t.Helper()
	data := filepath.Join(c.t.TempDir(), "scores")
	write := func(rel, body string) {
		p := filepath.Join(data, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, f := range files {
		var b strings.Builder
		b.WriteString("sepal_length,sepal_width,petal_length,petal_width\n")
		for i := range f.rows {
			b.WriteString(strings.Trim(strings.ReplaceAll(irisRows[i%3], " ", ""), "[]") + "\n")
		}
		write(f.path, b.String())
	}
	write("README.txt", "not rows\n")
	if code := c.do("POST", "/v1/datastores", `{"name":"scores","path":"`+data+`"}`, nil); code != http.StatusCreated {
		c.t.Fatalf("POST /v1/datastores: %d", code)
	}
}

// registerIris trains iris and registers it as iris:1.
func (c *cluster) registerIris() {
	c.t.Helper()
	train := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if train.Status != api.StatusSucceeded {
		c.t.Fatalf("iris-train: %s (%s)\n%s", train.Status, train.Reason, c.logs(train.ID))
	}
	if _, err := c.api.RegisterModel(context.Background(), "iris", train.ID, "model.json"); err != nil {
		c.t.Fatal(err)
	}
}

// submitBatchScore submits the job spec (JSON, as a user writes it), with
// the W3C traceparent unless it is "", and returns the job and its
// partitions.
func (c *cluster) submitBatchScore(spec, traceparent string) (*api.Job, []api.Job) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.gwURL+"/v1/jobs", strings.NewReader(spec))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var j api.Job
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("submit %s: %d %+v %v", spec, resp.StatusCode, j, err)
	}
	var kids struct {
		Jobs []api.Job `json:"jobs"`
	}
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/children", "", &kids); code != http.StatusOK {
		c.t.Fatalf("children of %s: %d", j.ID, code)
	}
	return &j, kids.Jobs
}

// predictions reads the job's predictions.jsonl, one line each.
func (c *cluster) predictions(id string) []string {
	c.t.Helper()
	code, _, body := c.rawGet("/v1/jobs/"+id+"/artifacts/predictions.jsonl", nil)
	if code != http.StatusOK {
		c.t.Fatalf("GET predictions.jsonl of %s: %d %s", id, code, body)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// label is the class in a prediction's first output: a number, a
// one-number array, or a V2 tensor whose data is one.
func label(raw json.RawMessage) (int, bool) {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n, true
	}
	var ns []int
	if json.Unmarshal(raw, &ns) == nil && len(ns) == 1 {
		return ns[0], true
	}
	var t struct {
		Name string `json:"name"`
		Data []int  `json:"data"`
	}
	if json.Unmarshal(raw, &t) == nil && len(t.Data) == 1 && (t.Name == "" || t.Name == "label") {
		return t.Data[0], true
	}
	return 0, false
}

// checkPredictions says what is wrong with lines as the predictions of
// every row of files, once each, in input order (file, row), each class
// right.
func checkPredictions(lines []string, files []scoreFile) error {
	want := 0
	for _, f := range files {
		want += f.rows
	}
	if len(lines) != want {
		return fmt.Errorf("%d predictions, want %d (each row once)", len(lines), want)
	}
	i := 0
	for _, f := range files {
		for row := range f.rows {
			var p api.BatchScorePrediction
			if err := json.Unmarshal([]byte(lines[i]), &p); err != nil {
				return fmt.Errorf("line %d: %s: %v", i, lines[i], err)
			}
			if p.File != f.path || p.Row != row || p.Error != "" || len(p.Outputs) == 0 {
				return fmt.Errorf("line %d: %s, want %s row %d with outputs", i, lines[i], f.path, row)
			}
			if got, ok := label(p.Outputs[0]); !ok || got != row%3 {
				return fmt.Errorf("line %d: %s, want class %d", i, lines[i], row%3)
			}
			i++
		}
	}
	return nil
}

// irisScoreFiles are the files of TestBatchScoreJob: three CSV files, one
// in a subfolder, in the order their paths sort.
var irisScoreFiles = []scoreFile{{"day1.csv", 300}, {"day2.csv", 200}, {"more/day3.csv", 500}}

// TestBatchScoreJob is issue 13's batch-score job on a real cluster: iris
// trained and registered, a datastore folder of 3 CSV files (and a file
// that is not scored), a job of kind batch-score with instance_count 2 —
// the job and its one child each start /bin/modelserver with the model
// mounted and claim the files. The job succeeds, its predictions.jsonl
// holds every row once, in input order, each class right, and the child
// succeeded. The job is one trace in a real Jaeger, the submitting
// request's: a batch-score span per partition under the gateway's span, a
// span per mini-batch under those, and the model server's spans under
// the mini-batches' requests.
func TestBatchScoreJob(t *testing.T) {
	jaeger := tracedToJaeger(t)
	c := newCluster(t)
	c.startWorker("w1", "--slots", "4")
	c.registerIris()
	c.batchScoreData(irisScoreFiles...)

	const traceID, clientSpan = "7c1e5a0f3b8d4e2a9c6b1d0f7e3a2b99", "00f067aa0ba902b7"
	j, kids := c.submitBatchScore(fmt.Sprintf(`{"kind": "batch-score", "image": %q, "command": ["/bin/modelserver"],
		"inputs": {"data": {"datastore": "scores"}},
		"env": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": %q, "OTEL_BSP_SCHEDULE_DELAY": "100"},
		"batch_score": {"model": "iris:1", "instance_count": 2, "mini_batch_size": 10}}`, testenv.ExampleImage, jaeger.OTLPEndpoint),
		"00-"+traceID+"-"+clientSpan+"-01")
	if len(kids) != 1 || kids[0].Spec.BatchScore == nil || kids[0].Spec.BatchScore.Partition != 1 {
		t.Fatalf("partitions %+v, want one child of partition 1", kids)
	}
	done := c.waitFor(j.ID, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	if done.Status != api.StatusSucceeded {
		t.Fatalf("batch-score job %s (%s)\n%s", done.Status, done.Reason, c.logs(j.ID))
	}
	if err := checkPredictions(c.predictions(j.ID), irisScoreFiles); err != nil {
		t.Fatalf("%v\n%s", err, c.logs(j.ID))
	}
	kid := c.waitFor(kids[0].ID, 60*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	if kid.Status != api.StatusSucceeded {
		t.Fatalf("partition 1: %s (%s)\n%s", kid.Status, kid.Reason, c.logs(kid.ID))
	}
	// Each file was scored once, by one of the two.
	logs := c.logs(j.ID) + c.logs(kid.ID)
	for i, f := range irisScoreFiles {
		if n := strings.Count(logs, fmt.Sprintf("file %d of 3 claimed: %s ", i+1, f.path)); n != 1 {
			t.Errorf("%s claimed %d times, want once:\n%s", f.path, n, logs)
		}
	}
	if !strings.Contains(c.logs(j.ID), "jobgate: batch-score done: 3 files, 1000 rows, 0 failed, in predictions.jsonl") {
		t.Errorf("the job's log does not sum up:\n%s", c.logs(j.ID))
	}
	if !strings.Contains(logs, "skipped 1 entries of inputs.data that are not regular *.csv, *.jsonl or *.ndjson files: README.txt") {
		t.Errorf("the logs do not say README.txt was skipped:\n%s", logs)
	}

	// One trace: both partitions' spans, their mini-batches, the servers'.
	var tr *testenv.JaegerTrace
	var why string
	testenv.Eventually(t, 30*time.Second, func() bool {
		tr, _ = jaeger.Trace(traceID)
		why = traceShape(tr, clientSpan)
		return why == ""
	}, "trace %s: %s", traceID, lazy(func() string { return why }))
	t.Logf("trace %s: %d spans", traceID, len(tr.Spans))
}

// traceShape says what is missing from tr as a batch-score job's trace
// of two partitions under the client's span; "" when nothing is.
func traceShape(tr *testenv.JaegerTrace, clientSpan string) string {
	if tr == nil {
		return "no trace yet"
	}
	byID := map[string]*testenv.JaegerSpan{}
	for i := range tr.Spans {
		byID[tr.Spans[i].SpanID] = &tr.Spans[i]
	}
	// under says whether span s has an ancestor named name (or with the
	// span ID id, for name "").
	under := func(s *testenv.JaegerSpan, name, id string) bool {
		for p := s.Parent(); p != ""; {
			if p == id {
				return true
			}
			ps := byID[p]
			if ps == nil {
				return false
			}
			if name != "" && ps.OperationName == name {
				return true
			}
			p = ps.Parent()
		}
		return false
	}
	attempts, miniBatches, servers := 0, 0, 0
	// A mini-batch's request is the worker's client span (tracedTransport),
	// the model server's span under it.
	for i := range tr.Spans {
		s := &tr.Spans[i]
		switch {
		case s.OperationName == "batch-score" && under(s, "", clientSpan):
			attempts++
		case s.OperationName == "batch-score mini-batch" && under(s, "batch-score", ""):
			miniBatches++
		case tr.Service(*s) == "modelserver" && under(s, "batch-score mini-batch", ""):
			servers++
		}
	}
	if attempts < 2 || miniBatches == 0 || servers == 0 {
		return fmt.Sprintf("%d batch-score spans under the client's (want 2), %d mini-batch spans under them, %d model server spans under those",
			attempts, miniBatches, servers)
	}
	return ""
}

// TestBatchScoreWorkerKilledResumes SIGKILLs the `jobgate worker` process
// that runs a batch-score job (instance_count 2: the job and its child
// both on it) once at least one file is done and before all are, and
// starts it again under the same ID. The job succeeds on a later attempt
// whose log says how many files were already scored (more than 0); the
// results of the files done before the kill are not written again (their
// objects in the artifact store keep their modification time), and the
// predictions hold every row once, in order.
func TestBatchScoreWorkerKilledResumes(t *testing.T) {
	c := newCluster(t)
	c.startWorker("trainer")
	c.registerIris()
	c.stopWorker("trainer")
	files := []scoreFile{{"a.csv", 3000}, {"b.csv", 3000}, {"c.csv", 3000}}
	c.batchScoreData(files...)
	spool, ckpt := t.TempDir(), t.TempDir()
	w := c.startWorkerProcess("crashy", spool, ckpt, "--gateway-url", c.gwURL)

	j, kids := c.submitBatchScore(fmt.Sprintf(`{"kind": "batch-score", "image": %q, "command": ["/bin/modelserver"],
		"inputs": {"data": {"datastore": "scores"}},
		"batch_score": {"model": "iris:1", "instance_count": 2, "mini_batch_size": 5, "max_concurrency": 1}}`, testenv.ExampleImage), "")
	rdb := c.redisClient()
	doneKey := "{jobgate}:bscore:" + j.ID + ":done"
	var atKill int64
	testenv.Eventually(t, 90*time.Second, func() bool {
		atKill = rdb.HLen(context.Background(), doneKey).Val()
		return atKill >= 1
	}, "no file of %s was done\n%s", j.ID, lazy(func() string { return c.logs(j.ID) }))
	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	doneBefore := rdb.HKeys(context.Background(), doneKey).Val()
	if len(doneBefore) >= len(files) {
		t.Fatalf("all %d files were done before the worker was killed: make them bigger", len(files))
	}
	mtimes := map[string]time.Time{}
	for _, k := range doneBefore {
		var i int
		fmt.Sscan(k, &i)
		fi, err := os.Stat(filepath.Join(c.artifacts, filepath.FromSlash(artifact.BatchScoreKey(j.ID, i))))
		if err != nil {
			t.Fatal(err)
		}
		mtimes[k] = fi.ModTime()
	}

	c.startWorkerProcess("crashy", spool, ckpt, "--gateway-url", c.gwURL)
	got := c.waitFor(j.ID, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	logs := c.logs(j.ID)
	if got.Status != api.StatusSucceeded || got.Attempt < 2 {
		t.Fatalf("job after the kill: %s (%s) attempt %d, want succeeded on a later attempt\n%s", got.Status, got.Reason, got.Attempt, logs)
	}
	m := regexp.MustCompile(`jobgate: batch-score resumes: (\d+) of 3 files already scored`).FindStringSubmatch(logs)
	if m == nil || m[1] == "0" {
		t.Fatalf("the resumed attempt does not say it skipped the files done:\n%s", logs)
	}
	// Nor scored again: each was claimed once, by the job or its child.
	both := logs + c.logs(kids[0].ID)
	for _, k := range doneBefore {
		var i int
		fmt.Sscan(k, &i)
		if n := strings.Count(both, fmt.Sprintf("file %d of 3 claimed: %s ", i+1, files[i].path)); n != 1 {
			t.Errorf("%s, done before the kill, claimed %d times, want once", files[i].path, n)
		}
	}
	for k, before := range mtimes {
		var i int
		fmt.Sscan(k, &i)
		fi, err := os.Stat(filepath.Join(c.artifacts, filepath.FromSlash(artifact.BatchScoreKey(j.ID, i))))
		if err != nil || !fi.ModTime().Equal(before) {
			t.Errorf("the results of file %d, done before the kill, were written again (%v, %v -> %v)", i, err, before, fi.ModTime())
		}
	}
	if err := checkPredictions(c.predictions(j.ID), files); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	kid := c.waitFor(kids[0].ID, 60*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	// The killed attempts' spool folders went with the worker's next life.
	if left, _ := filepath.Glob(filepath.Join(spool, "batch-score", "*")); len(left) != 0 {
		t.Errorf("batch-score spool folders left: %v", left)
	}
	t.Logf("killed with %d of 3 files done; resumed: %s; the child %s on attempt %d", atKill, m[0], kid.Status, kid.Attempt)
}

// TestBatchScoreThroughDeployment: a batch-score job naming a deployment
// runs no model server of its own (no image or command): its rows go
// through the scoring router to the deployment's replica, and its
// predictions are the same.
func TestBatchScoreThroughDeployment(t *testing.T) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--slots", "4", "--scoring-url", c.scoringURL)
	c.deployIris()
	files := []scoreFile{{"x.csv", 120}, {"y.csv", 80}}
	c.batchScoreData(files...)

	j, _ := c.submitBatchScore(`{"kind": "batch-score", "inputs": {"data": {"datastore": "scores"}},
		"batch_score": {"model": "iris:1", "deployment": "iris", "mini_batch_size": 7}}`, "")
	done := c.waitFor(j.ID, 90*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	logs := c.logs(j.ID)
	if done.Status != api.StatusSucceeded {
		t.Fatalf("batch-score job %s (%s)\n%s", done.Status, done.Reason, logs)
	}
	if !strings.Contains(logs, "scoring through deployment iris") || strings.Contains(logs, "model server") {
		t.Errorf("the log does not say it scored through the deployment alone:\n%s", logs)
	}
	if err := checkPredictions(c.predictions(j.ID), files); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
}
