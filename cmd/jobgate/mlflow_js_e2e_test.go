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
// README example, then every call it offers (compat.js). npm ci fetches the
// pinned package from npm's registry (or its cache), so the test runs under
// JOBGATE_INTEGRATION=1 only, and is skipped where node or npm is missing.
func TestMLflowJSClient(t *testing.T) {
	if os.Getenv("JOBGATE_INTEGRATION") == "" {
		t.Skip("set JOBGATE_INTEGRATION=1 to run the npm mlflow client against the gateway (npm ci needs the registry or its cache)")
	}
	node, nerr := exec.LookPath("node")
	npm, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		t.Skip("node and npm are needed to run the npm mlflow client; install Node.js to run this test")
	}
	// A copy, so node_modules lands outside the repository.
	dir := t.TempDir()
	src := filepath.Join(testenv.RepoRoot(), "cmd", "jobgate", "testdata", "mlflow-js")
	for _, name := range []string{"package.json", "package-lock.json", "compat.js"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install := exec.Command(npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	c := newCluster(t)
	run := exec.Command(node, "compat.js")
	run.Dir = dir
	run.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+c.gwURL, "MLFLOW_TRACKING_TOKEN="+testToken)
	out, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "MLFLOW-JS-COMPAT-OK") {
		t.Fatalf("the npm mlflow client against the gateway: %v\n%s", err, out)
	}
}
