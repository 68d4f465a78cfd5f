package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestTrainingExample is issue 4's "done when", as a user does it with the
// CLI: examples/train.json, unchanged, trains in a container on data from
// the "examples" datastore, logs its loss curve through stdout and its
// accuracy and params through the MLflow API, and writes its model to its
// outputs; `jobgate metrics`, `jobgate artifacts` and `jobgate experiments`
// show them, and `jobgate exec` looks around a second run while it holds.
func TestTrainingExample(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": testToken}
	cli := func(args ...string) string {
		t.Helper()
		res := runCLI(t, env, "", args...)
		if res.err != nil {
			t.Fatalf("jobgate %s: %v\n%s%s", strings.Join(args, " "), res.err, res.stdout, res.stderr)
		}
		return res.stdout
	}
	root := testenv.RepoRoot()
	cli("datastores", "create", "examples", filepath.Join(root, "examples", "data"))

	out := cli("submit", "-f", filepath.Join(root, "examples", "train.json"))
	id := regexp.MustCompile(`submitted job (\S+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("jobgate submit printed %q", out)
	}
	j := c.waitEnded(id[1])
	if j.Status != api.StatusSucceeded {
		t.Fatalf("train: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}
	if !strings.Contains(c.logs(j.ID), "training on 200 rows from /inputs/data/blobs.csv") {
		t.Fatalf("log does not show the datastore input:\n%s", c.logs(j.ID))
	}

	// The loss curve (stdout) and the accuracy (MLflow), through the CLI.
	var m api.JobMetrics
	if err := json.Unmarshal([]byte(cli("metrics", j.ID, "--json")), &m); err != nil {
		t.Fatal(err)
	}
	loss, acc := m.Metrics["loss"], m.Metrics["accuracy"]
	if len(loss) != 30 || loss[29].Value >= loss[0].Value || len(acc) != 1 || acc[0].Value < 0.9 {
		t.Fatalf("metrics: %d loss points (%v → %v), accuracy %+v; want 30 falling, and accuracy > 0.9", len(loss), loss[0].Value, loss[len(loss)-1].Value, acc)
	}
	summary := cli("metrics", j.ID)
	if !regexp.MustCompile(`(?m)^accuracy\s+0\.9\d*\s`).MatchString(summary) || !regexp.MustCompile(`(?m)^loss\s+.*\s30\s+0-29$`).MatchString(summary) {
		t.Fatalf("jobgate metrics:\n%s", summary)
	}
	if got := cli("get", j.ID); !strings.Contains(got, "epochs=30 lr=0.5") || !strings.Contains(got, "model=logistic-regression") {
		t.Fatalf("jobgate get shows no params or tags:\n%s", got)
	}

	// The model, as an artifact.
	if list := cli("artifacts", j.ID); !regexp.MustCompile(`(?m)^model\.json\s+\d+$`).MatchString(list) {
		t.Fatalf("jobgate artifacts:\n%s", list)
	}
	modelPath := filepath.Join(t.TempDir(), "model.json")
	cli("artifacts", j.ID, "model.json", "-o", modelPath)
	var model struct {
		Kind     string
		Weights  []float64
		Accuracy float64
	}
	if b, err := os.ReadFile(modelPath); err != nil || json.Unmarshal(b, &model) != nil || model.Kind != "logistic_regression" || len(model.Weights) != 2 || model.Accuracy != acc[0].Value {
		t.Fatalf("model.json: %v %+v (accuracy logged %v)", err, model, acc[0].Value)
	}
	if rows := cli("experiments", "blobs", "--sort", "-accuracy"); !strings.Contains(rows, j.ID) {
		t.Fatalf("jobgate experiments blobs:\n%s", rows)
	}

	// A second run holds after writing its model: exec looks at its outputs
	// and its input, then lets it finish.
	out = cli("submit", "-f", filepath.Join(root, "examples", "train-hold.json"))
	held := &api.Job{ID: regexp.MustCompile(`submitted job (\S+)`).FindStringSubmatch(out)[1]}
	c.waitFor(held.ID, 2*time.Minute, "the model to be written", func(*api.Job) bool {
		return strings.Contains(c.logs(held.ID), "holding until")
	})
	if got := cli("exec", held.ID, "--", "/bin/toolbox", "ls", "/outputs"); !regexp.MustCompile(`^model\.json \d+\n$`).MatchString(got) {
		t.Fatalf("jobgate exec ls /outputs: %q", got)
	}
	res := runCLI(t, env, "", "exec", held.ID, "--", "/bin/toolbox", "write", "/inputs/data/x", "no")
	if res.err == nil || !strings.Contains(res.stderr, "read-only") {
		t.Fatalf("exec writing to the read-only input: err %v, stderr %q", res.err, res.stderr)
	}
	cli("exec", held.ID, "--", "/bin/toolbox", "write", "/workdir/release", "go")
	if j := c.waitEnded(held.ID); j.Status != api.StatusSucceeded {
		t.Fatalf("held run: %s (%s)", j.Status, j.Reason)
	}
	if code := c.do("GET", "/v1/jobs/"+held.ID+"/artifacts/model.json", "", nil); code != http.StatusOK {
		t.Fatalf("held run's model: %d", code)
	}
}
