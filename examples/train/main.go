// Command train is jobgate's example training job: a logistic regression on a
// CSV file, written the way a real training script uses jobgate.
//
//   - It reads its data from a datastore input (JOBGATE_INPUT_DATA, the folder
//     the job's "inputs": {"data": ...} appears at).
//   - It reports the loss of every epoch by printing "::metric" lines on
//     stdout: no library needed.
//   - It logs its params and final accuracy through the MLflow tracking API,
//     with the same requests MLflow's Python client sends (runs/get at
//     start_run, log-parameter, log-metric, set-tag, runs/update at end_run),
//     using MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN and MLFLOW_RUN_ID,
//     which jobgate sets in every job.
//   - It writes the model to JOBGATE_OUTPUTS, which jobgate collects as the
//     job's artifacts.
//
// Usage: train [-epochs N] [-lr RATE] [-epoch-seconds S] [-data DIR] [-file NAME] [-hold-until FILE]
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	epochs := flag.Int("epochs", 30, "passes over the data")
	lr := flag.Float64("lr", 0.5, "learning rate")
	file := flag.String("file", "blobs.csv", "CSV file in the data folder: x1,x2,label")
	epochSeconds := flag.Float64("epoch-seconds", 0, "sleep this long after each epoch (to stand in for real training in tests and benchmarks)")
	holdUntil := flag.String("hold-until", "", "after writing the model, wait until this file exists (to look around with jobgate exec)")
	data := flag.String("data", cmpOr(os.Getenv("JOBGATE_INPUT_DATA"), "/inputs/data"), "data folder (default: the job's input named data)")
	flag.Parse()

	dataDir := *data
	xs, ys, err := load(filepath.Join(dataDir, *file))
	if err != nil {
		fail("read data: %v", err)
	}
	fmt.Printf("training on %d rows from %s\n", len(xs), filepath.Join(dataDir, *file))

	ml := newMLflow()
	ml.startRun()
	ml.logParam("epochs", strconv.Itoa(*epochs))
	ml.logParam("lr", strconv.FormatFloat(*lr, 'g', -1, 64))
	ml.setTag("mlflow.source.name", "examples/train")

	w := make([]float64, len(xs[0])+1) // weights, bias last
	// A retried, preempted or promoted run goes on from the epochs its
	// checkpoint holds, and reports only the epochs it runs.
	ckpt := ""
	if dir := os.Getenv("JOBGATE_CHECKPOINT_DIR"); dir != "" {
		ckpt = filepath.Join(dir, "train.json")
	}
	first := 0
	if saved, ok := loadCheckpoint(ckpt, len(w)); ok {
		first, w = saved.Epochs, saved.Weights
		fmt.Printf("resumed from checkpoint at epoch %d\n", first)
	}
	for epoch := first; epoch < *epochs; epoch++ {
		loss := step(w, xs, ys, *lr)
		fmt.Printf("::metric name=loss value=%.6f step=%d\n", loss, epoch)
		saveCheckpoint(ckpt, checkpoint{Epochs: epoch + 1, Weights: w})
		if *epochSeconds > 0 {
			time.Sleep(time.Duration(*epochSeconds * float64(time.Second)))
		}
	}
	acc := accuracy(w, xs, ys)
	fmt.Printf("accuracy %.4f\n", acc)
	ml.logMetric("accuracy", acc, 0)

	out := cmpOr(os.Getenv("JOBGATE_OUTPUTS"), ".")
	model, _ := json.MarshalIndent(map[string]any{"kind": "logistic_regression", "weights": w[:len(w)-1], "bias": w[len(w)-1], "accuracy": acc}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "model.json"), append(model, '\n'), 0o644); err != nil {
		fail("write model: %v", err)
	}
	fmt.Println("model written to", filepath.Join(out, "model.json"))
	if *holdUntil != "" {
		fmt.Println("holding until", *holdUntil, "exists")
		for {
			if _, err := os.Stat(*holdUntil); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	ml.endRun()
}

func load(path string) (xs [][]float64, ys []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	for i, r := range rows {
		if i == 0 && r[0] == "x1" {
			continue // header
		}
		v := make([]float64, len(r))
		for j, s := range r {
			if v[j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, nil, fmt.Errorf("row %d: %w", i+1, err)
			}
		}
		xs, ys = append(xs, v[:len(v)-1]), append(ys, v[len(v)-1])
	}
	if len(xs) == 0 {
		return nil, nil, fmt.Errorf("%s has no rows", path)
	}
	return xs, ys, nil
}

func predict(w, x []float64) float64 {
	z := w[len(w)-1]
	for i, xi := range x {
		z += w[i] * xi
	}
	return 1 / (1 + math.Exp(-z))
}

// step is one epoch of full-batch gradient descent; it returns the mean
// log loss before the update.
func step(w []float64, xs [][]float64, ys []float64, lr float64) float64 {
	grad := make([]float64, len(w))
	loss := 0.0
	for k, x := range xs {
		p := predict(w, x)
		p = math.Min(math.Max(p, 1e-12), 1-1e-12)
		loss -= ys[k]*math.Log(p) + (1-ys[k])*math.Log(1-p)
		for i, xi := range x {
			grad[i] += (p - ys[k]) * xi
		}
		grad[len(w)-1] += p - ys[k]
	}
	n := float64(len(xs))
	for i := range w {
		w[i] -= lr * grad[i] / n
	}
	return loss / n
}

func accuracy(w []float64, xs [][]float64, ys []float64) float64 {
	right := 0
	for k, x := range xs {
		if (predict(w, x) >= 0.5) == (ys[k] == 1) {
			right++
		}
	}
	return float64(right) / float64(len(xs))
}

// mlflow speaks the MLflow tracking REST API the way MLflow's Python client
// does; without MLFLOW_TRACKING_URI it does nothing.
type mlflow struct {
	uri, token, runID string
	http              *http.Client
}

func newMLflow() *mlflow {
	m := &mlflow{uri: os.Getenv("MLFLOW_TRACKING_URI"), token: os.Getenv("MLFLOW_TRACKING_TOKEN"),
		runID: os.Getenv("MLFLOW_RUN_ID"), http: &http.Client{Timeout: 10 * time.Second}}
	if m.uri == "" || m.runID == "" {
		fmt.Println("MLFLOW_TRACKING_URI or MLFLOW_RUN_ID not set: not logging to MLflow")
		m.uri = ""
	}
	return m
}

func (m *mlflow) call(method, endpoint string, body any) {
	if m.uri == "" {
		return
	}
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	// As MLflow's own client does: a refused connection, a 429 or a 5xx is
	// tried again with backoff (7 retries here, about 30 s in all), so a
	// tracking server that restarts does not fail the run.
	wait := 500 * time.Millisecond
	for try := 0; ; try++ {
		req, err := http.NewRequest(method, m.uri+"/api/2.0/mlflow/"+endpoint, bytes.NewReader(b))
		if err != nil {
			fail("mlflow %s: %v", endpoint, err)
		}
		req.Header.Set("Content-Type", "application/json")
		if m.token != "" {
			req.Header.Set("Authorization", "Bearer "+m.token)
		}
		resp, err := m.http.Do(req)
		var answer []byte
		if err == nil {
			answer, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		retry := err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
		if !retry || try == 7 {
			if err != nil {
				fail("mlflow %s: %v", endpoint, err)
			}
			fail("mlflow %s: %s: %s", endpoint, resp.Status, answer)
		}
		time.Sleep(wait)
		wait = min(2*wait, 8*time.Second)
	}
}

func (m *mlflow) startRun() {
	m.call("GET", "runs/get?run_uuid="+m.runID+"&run_id="+m.runID, nil)
	m.call("POST", "runs/update", map[string]any{"run_uuid": m.runID, "run_id": m.runID, "status": "RUNNING"})
}

func (m *mlflow) logParam(key, value string) {
	m.call("POST", "runs/log-parameter", map[string]any{"run_uuid": m.runID, "run_id": m.runID, "key": key, "value": value})
}

func (m *mlflow) setTag(key, value string) {
	m.call("POST", "runs/set-tag", map[string]any{"run_uuid": m.runID, "run_id": m.runID, "key": key, "value": value})
}

func (m *mlflow) logMetric(key string, value float64, step int) {
	m.call("POST", "runs/log-metric", map[string]any{"run_uuid": m.runID, "run_id": m.runID, "key": key, "value": value,
		"timestamp": time.Now().UnixMilli(), "step": step})
}

func (m *mlflow) endRun() {
	m.call("POST", "runs/update", map[string]any{"run_uuid": m.runID, "run_id": m.runID, "status": "FINISHED", "end_time": time.Now().UnixMilli()})
}

// checkpoint is what train keeps in JOBGATE_CHECKPOINT_DIR after each
// epoch.
type checkpoint struct {
	Epochs  int       `json:"epochs"`
	Weights []float64 `json:"weights"`
}

func loadCheckpoint(path string, n int) (checkpoint, bool) {
	var c checkpoint
	if path == "" {
		return c, false
	}
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &c) != nil || len(c.Weights) != n || c.Epochs < 1 {
		return c, false
	}
	return c, true
}

// saveCheckpoint writes c whole or not at all (a rename), so that a run
// killed mid-write resumes from the epoch before.
func saveCheckpoint(path string, c checkpoint) {
	if path == "" {
		return
	}
	b, _ := json.Marshal(c)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "checkpoint:", err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		fmt.Fprintln(os.Stderr, "checkpoint:", err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "train: "+format+"\n", args...)
	os.Exit(1)
}
