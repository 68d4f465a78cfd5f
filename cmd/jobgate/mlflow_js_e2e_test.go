package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/internal/testenv"
)

// TestMLflowJSClient runs a third-party MLflow client, the npm package
// mlflow (pinned in testdata/mlflow-js), unchanged against a gateway: its
// README example, then every call it offers (compat.js). .ci/mlflow-js.sh
// installs the pinned package into the test cache folder outside the clone
// (make test runs it first; here it is instant once installed), so the test
// reaches no registry. Skipped where node or npm is missing.
func TestMLflowJSClient(t *testing.T) {
	if os.Getenv("JOBGATE_INTEGRATION") == "" {
		t.Skip("set JOBGATE_INTEGRATION=1 to run the npm mlflow client against the gateway")
	}
	node, nerr := exec.LookPath("node")
	_, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		t.Skip("node and npm are needed to run the npm mlflow client; install Node.js to run this test")
	}
	root := testenv.RepoRoot()
	install := exec.Command(filepath.Join(root, ".ci", "mlflow-js.sh"))
	install.Stderr = os.Stderr
	out, err := install.Output()
	if err != nil {
		t.Fatalf(".ci/mlflow-js.sh: %v", err)
	}
	modules := filepath.Join(strings.TrimSpace(string(out)), "node_modules")

	c := newCluster(t)
	run := exec.Command(node, filepath.Join(root, "cmd", "jobgate", "testdata", "mlflow-js", "compat.js"))
	run.Dir = t.TempDir()
	run.Env = append(os.Environ(), "NODE_PATH="+modules, "MLFLOW_TRACKING_URI="+c.gwURL, "MLFLOW_TRACKING_TOKEN="+testToken)
	got, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "MLFLOW-JS-COMPAT-OK") {
		t.Fatalf("the npm mlflow client against the gateway: %v\n%s", err, got)
	}
}
