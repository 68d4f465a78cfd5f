package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// buildTrain builds examples/train for the host, for host-process jobs.
func buildTrain(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "train")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/train")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build examples/train: %v\n%s", err, out)
	}
	return bin
}

// TestJobTokenAndMLflowFromAJob: a job reaches the API with the token its
// worker gave it: the example trainer logs params and accuracy through the
// MLflow API (MLFLOW_* set by the worker) and its loss through stdout; the
// token is redacted from the job's log and stops working when the attempt
// ends. (What a job token may reach is tested route by route in gateway.)
func TestJobTokenAndMLflowFromAJob(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	train := buildTrain(t)

	j := c.waitEnded(c.submit(api.JobSpec{Name: "train", Experiment: "e2e-tracking", Mode: api.ModeProcess,
		Command: []string{train, "-epochs", "8", "-data", filepath.Join(testenv.RepoRoot(), "examples", "data")}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("train: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}
	if j.Params["lr"] != "0.5" || j.Params["epochs"] != "8" || j.Tags["mlflow.source.name"] != "examples/train" {
		t.Fatalf("params %v tags %v: want lr, epochs and the source tag logged through MLflow", j.Params, j.Tags)
	}
	if acc := j.Metrics["accuracy"]; acc < 0.8 {
		t.Fatalf("accuracy (through MLflow) = %v; want it recorded and > 0.8", acc)
	}
	var m api.JobMetrics
	c.do("GET", "/v1/jobs/"+j.ID+"/metrics?name=loss", "", &m)
	if loss := m.Metrics["loss"]; len(loss) != 8 || loss[7].Step != 7 || loss[7].Value >= loss[0].Value {
		t.Fatalf("loss curve = %+v; want 8 falling points", loss)
	}

	// The CLI shows it: params in `get`, the experiment sorted by accuracy.
	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": testToken}
	res := runCLI(t, env, "", "get", j.ID)
	if res.err != nil || !strings.Contains(res.stdout, "params:      epochs=8 lr=0.5") {
		t.Fatalf("jobgate get: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "experiments")
	if res.err != nil || !strings.Contains(res.stdout, "e2e-tracking") {
		t.Fatalf("jobgate experiments: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	res = runCLI(t, env, "", "experiments", "e2e-tracking", "--sort", "-accuracy")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "JOB") || !strings.Contains(lines[0], "ACCURACY") ||
		!strings.HasPrefix(lines[1], j.ID) || !strings.Contains(lines[1], "loss=") {
		t.Fatalf("jobgate experiments e2e-tracking --sort -accuracy: %v\n%s%s", res.err, res.stdout, res.stderr)
	}

	// The job's token: usable while it runs, for its own tree only, and
	// never shown in its log.
	const script = `echo "token=$JOBGATE_JOB_TOKEN"; echo "run=$MLFLOW_RUN_ID url=$JOBGATE_URL"; echo "outputs=$JOBGATE_OUTPUTS"; echo "$JOBGATE_JOB_TOKEN" > "$JOBGATE_OUTPUTS/../token-$JOBGATE_JOB_ID"`
	dir := t.TempDir()
	j2 := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		strings.Replace(script, `"$JOBGATE_OUTPUTS/../token-$JOBGATE_JOB_ID"`, dir+"/token", 1)}}).ID)
	if j2.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j2.Status, j2.Reason)
	}
	logs := c.logs(j2.ID)
	if !strings.Contains(logs, "token=***\n") || !strings.Contains(logs, "run="+j2.ID+" url="+c.gwURL) {
		t.Fatalf("log = %q; want the token redacted and MLFLOW_RUN_ID, JOBGATE_URL set", logs)
	}
	// MLflow's artifact calls (log_artifact, log_model) go to the job's
	// outputs folder, which jobgate collects.
	var run struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			}
		}
	}
	if code := c.do("GET", "/api/2.0/mlflow/runs/get?run_id="+j2.ID, "", &run); code != http.StatusOK ||
		!strings.Contains(logs, "outputs="+strings.TrimPrefix(run.Run.Info.ArtifactURI, "file://")+"\n") || !strings.HasPrefix(run.Run.Info.ArtifactURI, "file:///") {
		t.Fatalf("artifact_uri %q (%d); want file:// and the job's JOBGATE_OUTPUTS: %s", run.Run.Info.ArtifactURI, code, logs)
	}
	tok := strings.TrimSpace(readFile(t, filepath.Join(dir, "token")))
	if !strings.HasPrefix(tok, "jgj_") {
		t.Fatalf("JOBGATE_JOB_TOKEN = %q", tok)
	}
	if code := c.asToken(tok).do("GET", "/v1/jobs/"+j2.ID, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("the job token after its attempt ended: %d, want 401", code)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
