package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestIrisExample is issue 12's reference example end to end, on a real
// worker and podman: /bin/iris-train trains in a container job and writes
// model.json to its outputs; the model is registered (iris:1) and
// downloaded; /bin/modelserver serves that file from a second container job
// (host networking, a free loopback port, the model as a read-only input);
// an infer of rows 1, 51 and 101 of Fisher's table answers setosa,
// versicolor and virginica, naming iris version 1.
func TestIrisExample(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	ctx := context.Background()

	j := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("iris-train: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}
	m, err := c.api.Metrics(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	loss, acc := m.Metrics["loss"], m.Metrics["accuracy"]
	if len(loss) != 50 || loss[49].Value >= loss[0].Value || len(acc) != 1 || acc[0].Value < 0.95 {
		t.Fatalf("metrics: %d loss points, accuracy %+v; want 50 falling and accuracy at least 0.95\n%s", len(loss), acc, c.logs(j.ID))
	}

	v, err := c.api.RegisterModel(ctx, "iris", j.ID, "model.json")
	if err != nil || v.Version != 1 {
		t.Fatalf("register: %+v, %v", v, err)
	}
	body, err := c.api.DownloadModel(ctx, "iris:1")
	if err != nil {
		t.Fatal(err)
	}
	model, err := io.ReadAll(body)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.json"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.CreateDatastore(ctx, "models", dir); err != nil {
		t.Fatal(err)
	}

	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := c.submit(api.JobSpec{
		Command: []string{"/bin/modelserver"},
		Env: map[string]string{
			"MODEL_PATH": "/inputs/model", "MODEL_NAME": "iris", "MODEL_VERSION": "1",
			"HOST": "127.0.0.1", "PORT": strconv.Itoa(port),
		},
		Inputs: map[string]api.Input{"model": {Datastore: "models"}},
	})
	t.Cleanup(func() { _, _ = c.api.Cancel(context.Background(), srv.ID) })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.Eventually(t, 60*time.Second, func() bool {
		if c.get(srv.ID).Status.Terminal() {
			t.Fatalf("modelserver ended: %+v\n%s", c.get(srv.ID), c.logs(srv.ID))
		}
		resp, err := http.Get(base + "/v2/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "modelserver never became ready")

	req, err := http.NewRequest("POST", base+"/v2/models/iris/infer", strings.NewReader(`{"id": "e2e", "inputs": [{"name": "input",
		"datatype": "FP32", "shape": [3, 4], "data": [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		ID           string `json:"id"`
		Outputs      []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("infer: %d, %v", resp.StatusCode, err)
	}
	if got.ModelName != "iris" || got.ModelVersion != "1" || got.ID != "e2e" || len(got.Outputs) != 2 {
		t.Fatalf("infer answered %+v", got)
	}
	if diff := cmp.Diff([]float64{0, 1, 2}, got.Outputs[0].Data); got.Outputs[0].Name != "label" || diff != "" {
		t.Errorf("labels of rows 1, 51, 101 (-want +got):\n%s", diff)
	}
	if p := got.Outputs[1]; p.Name != "probabilities" || !cmp.Equal(p.Shape, []int{3, 3}) || len(p.Data) != 9 {
		t.Errorf("probabilities: %+v", p)
	}

	if _, err := c.api.Cancel(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	if j := c.waitEnded(srv.ID); j.Status != api.StatusCanceled {
		t.Errorf("modelserver job: %s (%s), want canceled", j.Status, j.Reason)
	}
}
