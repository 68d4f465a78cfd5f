package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// TestModelsFromARealJob: a real worker runs a host-process job that writes
// a file and a folder to $JOBGATE_OUTPUTS and reports a metric; `jobgate
// models register|list|get|alias|download` and the Go client register and
// read them through a real gateway and Redis; a second run's outputs make
// version 3 and leave versions 1 and 2 as they were.
func TestModelsFromARealJob(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	train := func(weights string) *api.Job {
		t.Helper()
		j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Experiment: "iris", Command: []string{"/bin/sh", "-c", `set -e
cd "$JOBGATE_OUTPUTS"
printf '{"weights":"` + weights + `"}' > model.json
mkdir -p model/meta
printf '` + weights + `' > model/weights.bin
printf 'setosa\n' > model/meta/labels.txt
echo "::metric name=accuracy value=0.96"`}}).ID)
		if j.Status != api.StatusSucceeded {
			t.Fatalf("training job: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
		}
		return j
	}
	j := train("w1")
	if code := c.do("POST", "/v1/jobs/"+j.ID+"/params", `{"params":{"lr":"0.1"}}`, nil); code != http.StatusOK {
		t.Fatalf("POST params: %d", code)
	}

	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": c.token}
	cli := func(args ...string) string {
		t.Helper()
		res := runCLI(t, env, "", args...)
		if res.err != nil {
			t.Fatalf("jobgate %s: %v\n%s%s", strings.Join(args, " "), res.err, res.stdout, res.stderr)
		}
		return res.stdout
	}
	fileSum := sha256.Sum256([]byte(`{"weights":"w1"}`))
	if out := cli("models", "register", "iris", "--job", j.ID, "--path", "model.json"); out != "registered iris:1 (file, 16 bytes, sha256 "+hex.EncodeToString(fileSum[:])+") from job "+j.ID+"\n" {
		t.Fatalf("models register: %q", out)
	}
	var v2 api.ModelVersion
	if err := json.Unmarshal([]byte(cli("models", "register", "iris", "--job", j.ID, "--path", "model", "--json")), &v2); err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Kind != api.ModelFolderKind || len(v2.Files) != 2 || v2.Files[0].Path != "meta/labels.txt" ||
		v2.Experiment != "iris" || v2.Metrics["accuracy"] != 0.96 || v2.Params["lr"] != "0.1" {
		t.Fatalf("version 2 = %+v", v2)
	}
	if out := cli("models", "alias", "iris", "production", "2"); out != "iris@production -> iris:2\n" {
		t.Fatalf("models alias: %q", out)
	}
	if out := cli("models", "list"); !strings.Contains(out, "iris") || !strings.Contains(out, "production=2") {
		t.Fatalf("models list: %q", out)
	}
	if out := cli("models", "get", "iris"); !strings.Contains(out, "iris:1") || !strings.Contains(out, "iris:2") {
		t.Fatalf("models get iris: %q", out)
	}
	out := cli("models", "get", "iris@production")
	for _, want := range []string{"iris:2", "sha256:", v2.SHA256, "metric accuracy:", "0.96", "param lr:", j.ID + " model"} {
		if !strings.Contains(out, want) {
			t.Fatalf("models get iris@production lacks %q:\n%s", want, out)
		}
	}
	if out := cli("models", "download", "iris:1"); out != `{"weights":"w1"}` {
		t.Fatalf("models download iris:1: %q", out)
	}
	files := map[string]string{}
	tr := tar.NewReader(strings.NewReader(cli("models", "download", "iris@production")))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if diff := cmp.Diff(map[string]string{"weights.bin": "w1", "meta/labels.txt": "setosa\n"}, files); diff != "" {
		t.Fatalf("the folder's tar (-want +got):\n%s", diff)
	}
	res := runCLI(t, env, "", "models", "register", "iris", "--job", j.ID, "--path", "../x")
	if res.err == nil || !strings.Contains(res.err.Error(), `path "../x"`) {
		t.Fatalf("register ../x: %v %s", res.err, res.stdout)
	}

	// The Go client; a second job's outputs are version 3, and 1 and 2 keep
	// their bytes.
	ctx := context.Background()
	j2 := train("w2")
	v3, err := c.api.RegisterModel(ctx, "iris", j2.ID, "model.json")
	if err != nil || v3.Version != 3 || v3.SourceJob != j2.ID {
		t.Fatalf("client RegisterModel: %+v, %v", v3, err)
	}
	if _, err := c.api.SetModelAlias(ctx, "iris", "staging", 3); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]int{"iris@staging": 3, "iris@production": 2, "iris:1": 1} {
		if mv, err := c.api.ModelVersion(ctx, ref); err != nil || mv.Version != want {
			t.Fatalf("client ModelVersion(%s) = %+v, %v; want version %d", ref, mv, err, want)
		}
	}
	body, err := c.api.DownloadModel(ctx, "iris:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != `{"weights":"w1"}` {
		t.Fatalf("iris:1 after a second run = %q", b)
	}
	if ms, err := c.api.Models(ctx); err != nil || len(ms) != 1 || ms[0].LatestVersion != 3 || len(ms[0].Versions) != 3 {
		t.Fatalf("client Models = %+v, %v", ms, err)
	}
	if err := c.api.DeleteModelVersion(ctx, "iris", 3); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if _, err := c.api.ModelVersion(ctx, "iris@staging"); !errors.As(err, &ce) || ce.StatusCode != http.StatusNotFound {
		t.Fatalf("alias of a deleted version: %v, want 404", err)
	}
	if m, err := c.api.Model(ctx, "iris"); err != nil || m.LatestVersion != 2 || len(m.Aliases) != 1 {
		t.Fatalf("client Model after delete = %+v, %v", m, err)
	}

	// The CLI deletes a version by number (not by alias, which moves), then
	// the whole model.
	if res := runCLI(t, env, "", "models", "delete", "iris@production"); res.err == nil || !strings.Contains(res.err.Error(), "by its number") {
		t.Fatalf("models delete iris@production: %v %s, want a refusal", res.err, res.stdout)
	}
	if out := cli("models", "delete", "iris:1"); out != "deleted model version iris:1\n" {
		t.Fatalf("models delete iris:1: %q", out)
	}
	if out := cli("models", "delete", "iris"); out != "deleted model iris\n" {
		t.Fatalf("models delete iris: %q", out)
	}
	if ms, err := c.api.Models(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("models after the CLI's delete = %+v, %v", ms, err)
	}
	if res := runCLI(t, env, "", "models", "delete", "iris"); res.err == nil || !strings.Contains(res.err.Error(), "404") && !strings.Contains(res.err.Error(), "no model") {
		t.Fatalf("models delete of a deleted model: %v, want a 404", res.err)
	}
}
