package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestMLflowArtifactProxy: a tracked run's artifact_uri is the proxy, whose
// uploads land in the run's outputs (seen by GET /v1/jobs/{id}/artifacts),
// list and download from them, and, once the run has finished, register
// as a model version; the refusals answer in MLflow's words.
func TestMLflowArtifactProxy(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	run := f.mlflowRunIn(tok, "0", "notebook", 1764200000000)
	info := f.mlflowOK("GET", "runs/get?run_id="+run, tok, "")["run"].(map[string]any)["info"].(map[string]any)
	if info["artifact_uri"] != "mlflow-artifacts:/"+run {
		t.Fatalf("artifact_uri = %v", info["artifact_uri"])
	}
	art := func(method, p, body string) (int, string) {
		t.Helper()
		return f.call(method, mlflowArtifactsPrefix+"artifacts"+p, tok, body)
	}
	for p, body := range map[string]string{"/" + run + "/model/MLmodel": "flavors: {}", "/" + run + "/model/w.bin": "123", "/" + run + "/notes.txt": "hi"} {
		if code, out := art("PUT", p, body); code != http.StatusOK || out != "{}\n" {
			t.Fatalf("PUT %s: %d %s", p, code, out)
		}
	}
	list := func(p string) string {
		t.Helper()
		code, out := art("GET", "?path="+p, "")
		var l struct {
			Files []mlflowFileInfo `json:"files"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(out), &l) != nil {
			t.Fatalf("list %s: %d %s", p, code, out)
		}
		var names []string
		for _, fi := range l.Files {
			n := fi.Path
			if fi.IsDir {
				n += "/"
			}
			names = append(names, n)
		}
		return strings.Join(names, ",")
	}
	if got := list(run); got != "model/,notes.txt" {
		t.Errorf("list root = %s", got)
	}
	if got := list(run + "/model"); got != "MLmodel,w.bin" {
		t.Errorf("list model = %s", got)
	}
	if code, body := art("GET", "/"+run+"/model/w.bin", ""); code != http.StatusOK || body != "123" {
		t.Errorf("download: %d %q", code, body)
	}
	var files struct {
		Artifacts []struct{ Path string }
	}
	f.mustCall("GET", "/v1/jobs/"+run+"/artifacts", tok, "", &files)
	if len(files.Artifacts) != 3 {
		t.Errorf("the run's artifacts through /v1 = %+v", files)
	}

	for _, bad := range []struct {
		method, path, body string
		status             int
		code, names        string
	}{
		{"GET", "?path=", "", 400, "INVALID_PARAMETER_VALUE", "'path'"},
		{"GET", "?path=" + run + "/../x", "", 400, "INVALID_PARAMETER_VALUE", "'path'"},
		{"GET", "/" + run + "/missing.bin", "", 404, "RESOURCE_DOES_NOT_EXIST", "missing.bin"},
		{"GET", "/nope/x", "", 404, "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"PUT", "/" + run, "x", 400, "INVALID_PARAMETER_VALUE", "'path'"},
	} {
		code, out := art(bad.method, bad.path, bad.body)
		var e mlflowError
		_ = json.Unmarshal([]byte(out), &e)
		if code != bad.status || e.ErrorCode != bad.code || !strings.Contains(e.Message, bad.names) {
			t.Errorf("%s %s: %d %s, want %d %s naming %s", bad.method, bad.path, code, out, bad.status, bad.code, bad.names)
		}
	}

	// An upload is streamed, so it may be larger than the request body cap
	// (1 MiB); what bounds it is the run's room, here 3 MiB in all.
	f.g.cfg.MaxRunArtifactBytes = 3 << 20
	big := strings.Repeat("x", 1<<20+1)
	if code, out := art("PUT", "/"+run+"/big.bin", big); code != http.StatusOK {
		t.Fatalf("PUT of 1 MiB + 1: %d %s", code, out)
	}
	if code, out := art("PUT", "/"+run+"/big.bin", big); code != http.StatusOK {
		t.Fatalf("PUT of the same file again (it replaces itself, not adds): %d %s", code, out)
	}
	tooBig := func(what string, code int, out string) {
		t.Helper()
		var e mlflowError
		_ = json.Unmarshal([]byte(out), &e)
		if code != http.StatusRequestEntityTooLarge || e.ErrorCode != "INVALID_PARAMETER_VALUE" || !strings.Contains(e.Message, "--max-run-artifacts-mb") {
			t.Errorf("%s: %d %s, want 413 INVALID_PARAMETER_VALUE naming --max-run-artifacts-mb", what, code, out)
		}
	}
	code, out := art("PUT", "/"+run+"/bigger.bin", strings.Repeat("y", 2<<20))
	tooBig("PUT of 2 MiB with a Content-Length past the room", code, out)
	// Without a Content-Length the cap stops the stream, and nothing of it
	// is stored.
	req, err := http.NewRequest("PUT", f.ts.URL+mlflowArtifactsPrefix+"artifacts/"+run+"/chunked.bin", io.MultiReader(strings.NewReader(strings.Repeat("z", 2<<20))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	refused, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tooBig("chunked PUT of 2 MiB past the room", resp.StatusCode, string(refused))
	if got := list(run); got != "big.bin,model/,notes.txt" {
		t.Errorf("after the refused uploads, list root = %s", got)
	}

	// Another workspace reaches none of it.
	f.workspace("team-b", api.Quotas{})
	b := f.token("team-b", api.ScopeRead, api.ScopeSubmit).Secret
	for _, c := range []struct{ method, path, body string }{
		{"GET", "?path=" + run, ""}, {"GET", "/" + run + "/notes.txt", ""}, {"PUT", "/" + run + "/evil.txt", "x"},
	} {
		if code, out := f.call(c.method, mlflowArtifactsPrefix+"artifacts"+c.path, b, c.body); code != http.StatusNotFound || !strings.Contains(out, "RESOURCE_DOES_NOT_EXIST") {
			t.Errorf("B: %s %s: %d %s", c.method, c.path, code, out)
		}
	}

	// Finished, the run takes no more uploads, and its files register.
	f.mlflowOK("POST", "runs/update", tok, `{"run_id":"`+run+`","status":"FINISHED"}`)
	if code, out := art("PUT", "/"+run+"/late.txt", "x"); code != http.StatusBadRequest || !strings.Contains(out, "INVALID_STATE") {
		t.Errorf("upload to a finished run: %d %s", code, out)
	}
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"nb"}`)
	mv := f.mlflowOK("POST", "model-versions/create", tok, `{"name":"nb","source":"mlflow-artifacts:/`+run+`/model","run_id":"`+run+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "1" {
		t.Fatalf("version from the proxy's files = %v", mv)
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/nb", tok, "", &m)
	if len(m.Versions) != 1 || len(m.Versions[0].Files) != 2 {
		t.Fatalf("/v1/models/nb = %+v", m)
	}
}

// TestMLflowJobTokenReach: a job's own token logs a tracked run's files
// through the proxy (the run is its child), and is refused the registry,
// which is the workspace's and in no job tree, as /v1/models refuses it.
func TestMLflowJobTokenReach(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &j)
	jobTok := f.jobToken(DefaultWorkspace, j.ID)
	run := f.mlflowRunIn(jobTok, "0", "in-a-job", 1764200000000)
	if code, out := f.call("PUT", mlflowArtifactsPrefix+"artifacts/"+run+"/notes.txt", jobTok, "hi"); code != http.StatusOK {
		t.Fatalf("job token uploads to its own tracked run: %d %s", code, out)
	}
	if code, out := f.call("GET", mlflowArtifactsPrefix+"artifacts/"+run+"/notes.txt", jobTok, ""); code != http.StatusOK || out != "hi" {
		t.Fatalf("job token downloads its own run's file: %d %q", code, out)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "registered-models/search", ""},
		{"POST", "registered-models/create", `{"name":"from-a-job"}`},
		{"POST", "model-versions/create", `{"name":"from-a-job","source":"runs:/` + run + `/notes.txt","run_id":"` + run + `"}`},
	} {
		code, out := f.call(c.method, mlflowPrefix+c.path, jobTok, c.body)
		var e mlflowError
		if code != http.StatusForbidden || json.Unmarshal([]byte(out), &e) != nil || e.ErrorCode != "PERMISSION_DENIED" {
			t.Errorf("%s %s with a job token: %d %s, want 403 PERMISSION_DENIED", c.method, c.path, code, out)
		}
	}
}
