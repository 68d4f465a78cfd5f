package worker_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestBatchScoreJobProcess runs batch-score jobs as host processes on a
// real worker (real Redis; the model iris:1 in its registry): the model
// server is /bin/modelserver built for the host, given the cached model's
// host path; the input folder is the datastore's own (ro_mount) or the
// attempt's copy (download). A server that exits before it is ready fails
// the attempt with its exit code, and the log says so.
func TestBatchScoreJobProcess(t *testing.T) {
	f := newServiceFixture(t)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "modelserver")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/modelserver")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build modelserver: %v\n%s", err, out)
	}
	data := t.TempDir()
	const header = "sepal_length,sepal_width,petal_length,petal_width\n"
	for p, body := range map[string]string{
		"a.csv":       header + "5.1,3.5,1.4,0.2\n7.0,3.2,4.7,1.4\n",
		"sub/b.jsonl": "[6.3, 3.3, 6.0, 2.5]\n",
		"notes.txt":   "skipped\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(data, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.CreateDatastore(ctx, "default", store.Datastore{Datastore: api.Datastore{Name: "scores", Path: data, CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	spec := func(mode api.InputMode, command ...string) api.JobSpec {
		return api.JobSpec{Kind: api.KindBatchScore, Mode: api.ModeProcess, Command: command, TimeoutSeconds: 60,
			Inputs: map[string]api.Input{"data": {Datastore: "scores", Mode: mode}},
			BatchScore: &api.BatchScore{Model: "iris:1", ModelName: "iris", Version: 1, SHA256: f.model.SHA256, Input: "data",
				MiniBatchSize: 2, InstanceCount: 1, MaxConcurrency: 2, Output: "predictions.jsonl", InputName: "input"}}
	}
	log := func(j *api.Job) string {
		r, err := f.arts.Open(ctx, artifact.LogKey(j.ID, 1))
		if err != nil {
			return ""
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		return string(b)
	}

	for _, mode := range []api.InputMode{api.InputReadOnlyMount, api.InputDownload} {
		t.Run(string(mode), func(t *testing.T) {
			j := place(t, ctx, f.rdb, f.st, spec(mode, bin), serviceWorker)
			got := f.waitEnded(t, j)
			if got.Status != api.StatusSucceeded {
				t.Fatalf("%s (%s)\n%s", got.Status, got.Reason, log(j))
			}
			r, err := f.arts.Open(ctx, artifact.OutputPrefix(j.ID)+"predictions.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			want := []string{`"file":"a.csv","row":0`, `"file":"a.csv","row":1`, `"file":"sub/b.jsonl","row":0`}
			if len(lines) != len(want) {
				t.Fatalf("predictions:\n%s\nwant %d lines", b, len(want))
			}
			for i, l := range lines {
				if !strings.Contains(l, want[i]) || !strings.Contains(l, `"name":"label"`) || strings.Contains(l, `"error"`) {
					t.Errorf("line %d: %s, want %s with a label", i, l, want[i])
				}
			}
			if l := log(j); !strings.Contains(l, "skipped 1 entries of inputs.data") || !strings.Contains(l, "batch-score done: 2 files, 3 rows, 0 failed") {
				t.Errorf("log:\n%s", l)
			}
		})
	}

	t.Run("server exits first", func(t *testing.T) {
		j := place(t, ctx, f.rdb, f.st, spec("", "/bin/sh", "-c", "echo no model here; exit 3"), serviceWorker)
		got := f.waitEnded(t, j)
		if got.Status != api.StatusFailed || got.Reason != api.ReasonExitCode+": exited with 3" {
			t.Fatalf("%s (%s), want failed exit_code: exited with 3\n%s", got.Status, got.Reason, log(j))
		}
		if l := log(j); !strings.Contains(l, "jobgate: batch-score: the model server exited with 3 before it was ready") {
			t.Errorf("log:\n%s", l)
		}
	})
}
