package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestTrainingReadsADatastore: a datastore registered with the CLI feeds a
// container job (read-only mount) and a host-process training job
// (download) on a `jobgate worker --mount`, through a real gateway, worker,
// Redis and podman; another workspace cannot use it; a job queued before
// the datastore was deleted fails with input_unavailable.
func TestTrainingReadsADatastore(t *testing.T) {
	c := newCluster(t)
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, shared := filepath.Join(base, "data"), filepath.Join(base, "shared")
	const csv = "x,y\n1,2\n3,4\n5,6\n"
	for p, body := range map[string]string{filepath.Join(data, "sets/v1/train.csv"): csv, filepath.Join(shared, "readme.txt"): "labels v3\n"} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.startWorker("w1", "--mount", "shared="+shared)

	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": c.token}
	if res := runCLI(t, env, "", "datastores", "create", "train", data); res.err != nil || res.stdout != "created datastore train ("+data+")\n" {
		t.Fatalf("jobgate datastores create: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "", "datastores"); res.err != nil || !strings.Contains(res.stdout, "train") || !strings.Contains(res.stdout, data) {
		t.Fatalf("jobgate datastores: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	// This gateway has no --datastore-root: a workspace admin may register none.
	teamB := c.asToken(c.workspaceAdmin("team-b", api.Quotas{}))
	res := runCLI(t, map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": teamB.token}, "", "datastores", "create", "mine", data)
	if res.err == nil || !strings.Contains(res.err.Error(), "only the system admin token may register its datastores") {
		t.Fatalf("team-b admin registered a datastore without roots: %v\n%s", res.err, res.stdout)
	}

	input := map[string]api.Input{"data": {Datastore: "train", Path: "sets/v1"}}
	reader := c.submit(api.JobSpec{Command: toolbox("cat", "/inputs/data/train.csv"), Inputs: input})
	mount := c.submit(api.JobSpec{Command: toolbox("cat", "/mounts/shared/readme.txt")})
	download := map[string]api.Input{"data": {Datastore: "train", Path: "sets/v1", Mode: api.InputDownload}}
	train := c.submit(api.JobSpec{Mode: api.ModeProcess, Inputs: download, Command: []string{"/bin/sh", "-c", `set -e
rows=$(tail -n +2 "$JOBGATE_INPUTS/data/train.csv" | wc -l)
echo "::metric name=rows value=$rows"
awk -F, 'NR > 1 { s += $2 } END { print "sum_y=" s }' "$JOBGATE_INPUT_DATA/train.csv" > "$JOBGATE_OUTPUTS/model.txt"
echo scratch >> "$JOBGATE_INPUT_DATA/train.csv"
cat "$JOBGATE_MOUNT_SHARED/readme.txt"`}})

	for _, tt := range []struct {
		job *api.Job
		log string
	}{{reader, csv}, {mount, "labels v3\n"}, {train, "labels v3\n"}} {
		j := c.waitEnded(tt.job.ID)
		logs := c.logs(j.ID)
		if j.Status != api.StatusSucceeded || !strings.Contains(logs, tt.log) {
			t.Fatalf("job %s: %s (%s), log %q; want succeeded with %q", j.ID, j.Status, j.Reason, logs, tt.log)
		}
	}
	if logs := c.logs(reader.ID); logs != csv {
		t.Errorf("reader's log = %q, want the file alone", logs)
	}
	if j := c.get(train.ID); j.Metrics["rows"] != 3 {
		t.Errorf("training job's rows metric = %v, want 3", j.Metrics)
	}
	r, err := c.api.Artifact(context.Background(), train.ID, "model.txt")
	if err != nil {
		t.Fatal(err)
	}
	model, _ := io.ReadAll(r)
	r.Close()
	if string(model) != "sum_y=12\n" {
		t.Errorf("model.txt = %q, want sum_y=12", model)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "sets/v1/train.csv")); string(b) != csv {
		t.Errorf("the job's write to its copy reached the datastore: %q", b)
	}
	var workers struct{ Workers []struct{ Mounts []string } }
	if code := c.do("GET", "/v1/workers", "", &workers); code != http.StatusOK || len(workers.Workers) != 1 ||
		strings.Join(workers.Workers[0].Mounts, ",") != "shared" {
		t.Errorf("GET /v1/workers: %d %+v, want w1 with mount shared", code, workers)
	}

	// Another workspace neither sees nor uses it.
	var ce *client.Error
	_, err = teamB.api.Submit(context.Background(), api.JobSpec{Image: testenv.ExampleImage, Command: toolbox("ls", "/inputs/data"), Inputs: input}, "")
	if !errors.As(err, &ce) || ce.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(ce.Message, `no datastore "train" in workspace team-b`) {
		t.Fatalf("team-b submitted with default's datastore: %v", err)
	}
	if list, err := teamB.api.ListDatastores(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("team-b's datastores: %v, %v", list, err)
	}

	// Deleted while a job that needs it waits: the job fails, once.
	c.stopWorker("w1")
	waiting := c.submit(api.JobSpec{Command: toolbox("ls", "/inputs/data"), Inputs: input, MaxRetries: 2})
	if res := runCLI(t, env, "", "datastores", "delete", "train"); res.err != nil || res.stdout != "deleted datastore train\n" {
		t.Fatalf("jobgate datastores delete: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	c.startWorker("w1", "--mount", "shared="+shared)
	j := c.waitEnded(waiting.ID)
	if j.Status != api.StatusFailed || j.Reason != api.ReasonInputUnavailable+`: inputs.data: datastore "train" was deleted` || j.Attempt != 1 {
		t.Fatalf("job of a deleted datastore: %s (%s) attempt %d", j.Status, j.Reason, j.Attempt)
	}
	if logs := c.logs(j.ID); !strings.Contains(logs, "was deleted") {
		t.Errorf("the job's log does not say why: %q", logs)
	}
}

// TestChildInputCannotFollowALinkOutOfItsParent: a running container job
// with input path a submits children with its job token, through a real
// gateway, worker, Redis and podman. The data holds a/latest -> ../b, which
// the job's own mount cannot follow (it ends at a): a child asking for
// a/latest, mounted or downloaded, fails with input_unavailable instead of
// getting b; one asking for a link that stays below a gets its data.
func TestChildInputCannotFollowALinkOutOfItsParent(t *testing.T) {
	c := newCluster(t)
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	const csv, private = "x,y\n1,2\n", "not the parent's data\n"
	for p, body := range map[string]string{filepath.Join(data, "a/v1/train.csv"): csv, filepath.Join(data, "b/private.txt"): private} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"a/latest": "../b", "a/current": "v1"} {
		if err := os.Symlink(target, filepath.Join(data, link)); err != nil {
			t.Fatal(err)
		}
	}
	if code := c.do("POST", "/v1/datastores", `{"name":"train","path":"`+data+`"}`, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/datastores: %d", code)
	}
	c.startWorker("w1")

	in := func(path string, mode api.InputMode) map[string]api.Input {
		return map[string]api.Input{"data": {Datastore: "train", Path: path, Mode: mode}}
	}
	// What the parent sees through its own mount: a/latest leads nowhere.
	peek := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("cat", "/inputs/data/latest/private.txt"), Inputs: in("a", "")}).ID)
	if peek.Status != api.StatusFailed || strings.Contains(c.logs(peek.ID), private) {
		t.Fatalf("a job with input a read a/latest/private.txt: %s (%s) %q", peek.Status, peek.Reason, c.logs(peek.ID))
	}

	parent := c.runningJob(api.JobSpec{Command: toolbox("sleep", "600"), Inputs: in("a", "")})
	defer c.do("POST", "/v1/jobs/"+parent.ID+"/cancel", "", nil)
	// The token the worker gave the attempt is in the container only; one
	// minted for the same attempt stands for the same job.
	tok, err := store.New(c.redisClient(), store.Config{}).CreateJobToken(context.Background(), parent.ID, parent.Workspace, parent.Attempt, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kid := c.asToken(tok)
	const refused = api.ReasonInputUnavailable + ": inputs.data: datastore train on worker w1: "
	tests := []struct {
		name   string
		spec   api.JobSpec
		status api.Status
		reason string
		log    string
	}{
		{"a link out of the parent's path, mounted", api.JobSpec{Command: toolbox("cat", "/inputs/data/private.txt"), Inputs: in("a/latest", "")},
			api.StatusFailed, refused + filepath.Join(data, "a/latest") + " leads out of " + filepath.Join(data, "a") + ", the input of the job that submitted this one", ""},
		{"a link out of the parent's path, downloaded", api.JobSpec{Command: toolbox("cat", "/inputs/data/private.txt"), Inputs: in("a/latest", api.InputDownload)},
			api.StatusFailed, refused + filepath.Join(data, "a/latest") + " leads out of " + filepath.Join(data, "a") + ",", ""},
		{"a link below the parent's path", api.JobSpec{Command: toolbox("cat", "/inputs/data/train.csv"), Inputs: in("a/current", "")},
			api.StatusSucceeded, "", csv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Image = testenv.ExampleImage
			j, err := kid.api.Submit(context.Background(), tt.spec, "")
			if err != nil {
				t.Fatalf("submit with the job token: %v", err)
			}
			j = c.waitEnded(j.ID)
			logs := c.logs(j.ID)
			if j.Status != tt.status || !strings.HasPrefix(j.Reason, tt.reason) || !strings.Contains(logs, tt.log) || strings.Contains(logs, private) {
				t.Fatalf("child %s (%s), log %q; want %s (%s...) and %q", j.Status, j.Reason, logs, tt.status, tt.reason, tt.log)
			}
			if j.Spec.ParentID != parent.ID {
				t.Fatalf("child's parent %q, want %s", j.Spec.ParentID, parent.ID)
			}
		})
	}
}
