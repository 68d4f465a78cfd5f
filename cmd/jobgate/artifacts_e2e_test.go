package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// rawGet sends GET path exactly as written (no cleaning, escapes kept) and
// returns the status, the Content-Type and the body.
func (c *cluster) rawGet(path string, h http.Header) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.gwURL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestJobOutputsBecomeArtifacts(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")

	var weights strings.Builder
	for i := 1; i <= 2000; i++ {
		weights.WriteString(strconv.Itoa(i) + "\n")
	}
	const metrics = `{"accuracy": 0.9}`
	// Links out of the folder must not be followed, nor collected.
	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", `set -e
cd "$JOBGATE_OUTPUTS"
mkdir model
seq 1 2000 > model/weights.bin
printf '%s' '` + metrics + `' > metrics.json
ln -s /etc/passwd passwd
ln -s / root
echo trained`}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}

	want := []api.Artifact{{Path: "metrics.json", Size: int64(len(metrics))}, {Path: "model/weights.bin", Size: int64(weights.Len())}}
	var list api.ArtifactList
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/artifacts", "", &list); code != http.StatusOK {
		t.Fatalf("GET artifacts: %d", code)
	}
	if diff := cmp.Diff(want, list.Artifacts); diff != "" {
		t.Fatalf("artifacts (-want +got):\n%s", diff)
	}
	if got, err := c.api.Artifacts(context.Background(), j.ID); err != nil || !cmp.Equal(got, want) {
		t.Fatalf("client Artifacts = %v, %v", got, err)
	}
	if logs := c.logs(j.ID); !strings.Contains(logs, "trained\n") || !strings.Contains(logs, "jobgate: collected 2 output files") {
		t.Fatalf("log = %q", logs)
	}

	for path, body := range map[string]string{"model/weights.bin": weights.String(), "metrics.json": metrics} {
		r, err := c.api.Artifact(context.Background(), j.ID, path)
		if err != nil {
			t.Fatalf("download %s: %v", path, err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != body {
			t.Fatalf("%s: got %d bytes, want %d", path, len(b), len(body))
		}
	}
	if code, h, _ := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/metrics.json", nil); code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("metrics.json: %d, Content-Type %q", code, h.Get("Content-Type"))
	}
	code, h, body := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/model/weights.bin", http.Header{"Range": {"bytes=10-19"}})
	if code != http.StatusPartialContent || body != weights.String()[10:20] {
		t.Fatalf("range: %d %q, want 206 %q", code, body, weights.String()[10:20])
	}
	if cr := h.Get("Content-Range"); cr != "bytes 10-19/"+strconv.Itoa(weights.Len()) {
		t.Fatalf("Content-Range = %q", cr)
	}

	// Every way out of the outputs folder is refused, and none answers with
	// a file: not /etc/passwd, not the job's log (which is in the store too).
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, p := range []string{
		"../../../../../../etc/passwd",
		"%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"%2e%2e/%2e%2e/logs/000001.log",
		"..%2flogs%2f000001.log",
		"model/..%2f..%2flogs%2f000001.log",
		"model/../../logs/000001.log",
		"%2fetc%2fpasswd",
		"..%5c..%5cetc%5cpasswd",
		"metrics.json%00.txt",
		"model//weights.bin",
		"./metrics.json",
		"",
		"passwd",
		"root/etc/passwd",
		"model",
	} {
		code, _, body := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/"+p, nil)
		if code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("%q: %d %q, want 400 or 404", p, code, body)
		}
		if strings.Contains(body, "trained") || len(passwd) > 0 && strings.Contains(body, string(passwd[:min(len(passwd), 20)])) {
			t.Errorf("%q answered with a file outside the outputs: %q", p, body)
		}
	}
	if code, _, _ := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/%2e%2e%2flogs%2f000001.log", nil); code != http.StatusBadRequest {
		t.Errorf("encoded traversal: %d, want 400", code)
	}

	// CLI: list, then download to a file and to stdout.
	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": c.token}
	res := runCLI(t, env, "", "artifacts", j.ID)
	if res.err != nil || !strings.Contains(res.stdout, "model/weights.bin") || !strings.Contains(res.stdout, strconv.Itoa(weights.Len())) {
		t.Fatalf("jobgate artifacts: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	out := filepath.Join(t.TempDir(), "w.bin")
	if res := runCLI(t, env, "", "artifacts", j.ID, "model/weights.bin", "-o", out); res.err != nil {
		t.Fatalf("jobgate artifacts -o: %v %s", res.err, res.stderr)
	}
	if b, _ := os.ReadFile(out); string(b) != weights.String() {
		t.Fatalf("downloaded file has %d bytes, want %d", len(b), weights.Len())
	}
	if res := runCLI(t, env, "", "artifacts", j.ID, "metrics.json"); res.err != nil || res.stdout != metrics {
		t.Fatalf("jobgate artifacts ID metrics.json: %v %q", res.err, res.stdout)
	}

	// Another workspace sees nothing of it.
	other := c.asToken(c.workspaceAdmin("team-b", api.Quotas{}))
	for _, p := range []string{"/v1/jobs/" + j.ID + "/artifacts", "/v1/jobs/" + j.ID + "/artifacts/metrics.json"} {
		if code, _, body := other.rawGet(p, nil); code != http.StatusNotFound {
			t.Errorf("team-b GET %s: %d %q, want 404", p, code, body)
		}
	}
}

func TestContainerJobGetsOutputsFolder(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	// The toolbox image cannot write files; this proves the folder is bound
	// into the container where JOBGATE_OUTPUTS says.
	j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("env", "JOBGATE_OUTPUTS")}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}
	if logs := c.logs(j.ID); logs != "/outputs\n" {
		t.Fatalf("log = %q, want /outputs", logs)
	}
	var list api.ArtifactList
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/artifacts", "", &list); code != http.StatusOK || list.Artifacts == nil || len(list.Artifacts) != 0 {
		t.Fatalf("GET artifacts: %d %+v, want 200 and an empty list", code, list)
	}
}

func TestOutputsOverTheCapFailTheJob(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1", "--max-output-mb", "1")
	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, MaxRetries: 2, Command: []string{"/bin/sh", "-c",
		`head -c 1000 /dev/zero > "$JOBGATE_OUTPUTS/small.bin"; head -c 2097152 /dev/zero > "$JOBGATE_OUTPUTS/big.bin"`}}).ID)
	if j.Status != api.StatusFailed || !strings.HasPrefix(j.Reason, api.ReasonOutputsTooLarge+": ") || j.Attempt != 1 {
		t.Fatalf("job: %s (%s) attempt %d, want failed outputs_too_large in attempt 1", j.Status, j.Reason, j.Attempt)
	}
	var list api.ArtifactList
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/artifacts", "", &list); code != http.StatusOK || len(list.Artifacts) != 0 {
		t.Fatalf("GET artifacts: %d %+v, want none collected", code, list)
	}
	if logs := c.logs(j.ID); !strings.Contains(logs, "exceed the worker's cap") {
		t.Fatalf("log = %q", logs)
	}
}
