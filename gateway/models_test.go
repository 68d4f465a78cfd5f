package gateway

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// endedJob submits a job with token in ws, runs its first attempt on a
// made-up worker as the scheduler and a worker would, leaves outputs in its
// outputs folder (path → content) and a param and a metric, and ends it
// with status.
func (f *fixture) endedJob(ws, token string, status api.Status, outputs map[string]string) api.Job {
	f.t.Helper()
	ctx := context.Background()
	var j api.Job
	f.mustCall("POST", "/v1/jobs", token, `{"image":"localhost/x:1","command":["x"],"experiment":"iris"}`, &j)
	_, n, err := f.st.Reserve(ctx, j.ID, 1, "w-models", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Start(ctx, ws, j.ID, 1, "w-models", n, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.SetParams(ctx, j.ID, map[string]string{"lr": "0.1"}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.AppendMetrics(ctx, j.ID, []store.MetricPoint{{Name: "accuracy", Step: 0, Value: 0.5, Time: time.Now()},
		{Name: "accuracy", Step: 1, Value: 0.96, Time: time.Now()}}); err != nil {
		f.t.Fatal(err)
	}
	for p, content := range outputs {
		f.putOutput(j.ID, p, content)
	}
	code := 0
	if err := f.st.Finish(ctx, ws, j.ID, 1, store.Outcome{Status: status, ExitCode: &code}, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return j
}

func (f *fixture) putOutput(id, p, content string) {
	f.t.Helper()
	if err := f.g.artifacts.Put(context.Background(), artifact.OutputPrefix(id)+p, strings.NewReader(content)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) register(token, name, jobID, p string) api.ModelVersion {
	f.t.Helper()
	b, _ := json.Marshal(api.ModelRegister{Name: name, JobID: jobID, Path: p})
	code, body := f.call("POST", "/v1/models", token, string(b))
	if code != http.StatusCreated {
		f.t.Fatalf("register %s from %s:%s: %d %s, want 201", name, jobID, p, code, body)
	}
	var mv api.ModelVersion
	if err := json.Unmarshal([]byte(body), &mv); err != nil {
		f.t.Fatal(err)
	}
	return mv
}

func (f *fixture) download(token, path string) (int, string) {
	f.t.Helper()
	return f.call("GET", path, token, "")
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// folderDigest is the digest of a folder version computed as the API
// documents it: sha256sum's lines, sorted by path, hashed.
func folderDigest(files map[string]string) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var lines strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&lines, "%s  %s\n", sha(files[p]), p)
	}
	return sha(lines.String())
}

func untar(t *testing.T, body string) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(strings.NewReader(body))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// TestModelRegistry: a file and a folder of a job's outputs become versions
// 1 and 2 with their checksums and lineage; aliases resolve wherever a
// version is named; what the job's outputs become later changes no version;
// a deleted version's number is not given out again.
func TestModelRegistry(t *testing.T) {
	f := newFixture(t)
	folder := map[string]string{"weights.bin": "W1", "config/labels.txt": "setosa\nversicolor\nvirginica\n", "a.txt": "a"}
	outputs := map[string]string{"model.json": `{"w":[1,2,3]}`}
	for p, c := range folder {
		outputs["model/"+p] = c
	}
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, outputs)

	v1 := f.register(systemToken, "iris", j.ID, "model.json")
	want1 := api.ModelVersion{Name: "iris", Version: 1, SHA256: sha(outputs["model.json"]), Size: int64(len(outputs["model.json"])),
		Kind: api.ModelFileKind, SourceJob: j.ID, SourcePath: "model.json", Experiment: "iris",
		Params: map[string]string{"lr": "0.1"}, Metrics: map[string]float64{"accuracy": 0.96}, CreatedBy: "system-admin"}
	ignoreTime := func(mv api.ModelVersion) api.ModelVersion { mv.CreatedAt = time.Time{}; return mv }
	if diff := cmp.Diff(want1, ignoreTime(v1)); diff != "" {
		t.Fatalf("version 1 (-want +got):\n%s", diff)
	}
	v2 := f.register(systemToken, "iris", j.ID, "model/")
	if v2.Version != 2 || v2.Kind != api.ModelFolderKind || v2.SHA256 != folderDigest(folder) || v2.Size != 2+1+int64(len(folder["config/labels.txt"])) {
		t.Fatalf("version 2 = %+v; want the folder, sha256 %s", v2, folderDigest(folder))
	}
	if got := []string{v2.Files[0].Path, v2.Files[1].Path, v2.Files[2].Path}; !slices.Equal(got, []string{"a.txt", "config/labels.txt", "weights.bin"}) || v2.Files[2].SHA256 != sha("W1") {
		t.Fatalf("version 2 files = %+v", v2.Files)
	}

	// Aliases: set, moved, resolved by the versions route and the store's
	// resolver.
	var al api.ModelAlias
	f.mustCall("PUT", "/v1/models/iris/aliases/production", systemToken, `{"version":1}`, &al)
	if al != (api.ModelAlias{Name: "iris", Alias: "production", Version: 1}) {
		t.Fatalf("PUT alias answered %+v", al)
	}
	f.mustCall("PUT", "/v1/models/iris/aliases/production", systemToken, `{"version":2}`, nil)
	f.mustCall("PUT", "/v1/models/iris/aliases/staging", systemToken, `{"version":1}`, nil)
	var got api.ModelVersion
	f.mustCall("GET", "/v1/models/iris/versions/production", systemToken, "", &got)
	if got.Version != 2 || !slices.Equal(got.Aliases, []string{"production"}) {
		t.Fatalf("versions/production = version %d aliases %v, want 2 [production]", got.Version, got.Aliases)
	}
	for ref, want := range map[string]int{"iris@production": 2, "iris@staging": 1, "iris:1": 1, "iris:2": 2} {
		mv, err := f.st.ResolveModel(context.Background(), DefaultWorkspace, ref)
		if err != nil || mv.Version != want {
			t.Fatalf("ResolveModel(%s) = %+v, %v; want version %d", ref, mv, err, want)
		}
	}
	for _, ref := range []string{"iris@nope", "iris:9", "nope:1"} {
		if _, err := f.st.ResolveModel(context.Background(), DefaultWorkspace, ref); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ResolveModel(%s) = %v, want ErrNotFound", ref, err)
		}
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &m)
	if m.LatestVersion != 2 || len(m.Versions) != 2 || m.Versions[0].Version != 1 || !cmp.Equal(m.Aliases, map[string]int{"production": 2, "staging": 1}) {
		t.Fatalf("GET /v1/models/iris = %+v", m)
	}
	var list api.ModelList
	f.mustCall("GET", "/v1/models", systemToken, "", &list)
	if len(list.Models) != 1 || list.Models[0].Name != "iris" {
		t.Fatalf("GET /v1/models = %+v", list)
	}

	// Downloads: the file as it is, the folder as a tar.
	if code, body := f.download(systemToken, "/v1/models/iris/versions/1/download"); code != http.StatusOK || body != outputs["model.json"] {
		t.Fatalf("download 1: %d %q", code, body)
	}
	code, body := f.download(systemToken, "/v1/models/iris/versions/production/download")
	if code != http.StatusOK {
		t.Fatalf("download production: %d %s", code, body)
	}
	if diff := cmp.Diff(folder, untar(t, body)); diff != "" {
		t.Fatalf("download of the folder version (-want +got):\n%s", diff)
	}

	// Immutable: the job's outputs changed or gone change no version.
	f.putOutput(j.ID, "model.json", `{"w":"changed"}`)
	f.putOutput(j.ID, "model/weights.bin", "W2")
	if err := f.g.artifacts.(artifact.Deleter).DeletePrefix(context.Background(), artifact.OutputPrefix(j.ID)+"model/config/"); err != nil {
		t.Fatal(err)
	}
	if code, body := f.download(systemToken, "/v1/models/iris/versions/1/download"); code != http.StatusOK || body != outputs["model.json"] {
		t.Fatalf("download 1 after the job's output changed: %d %q, want the registered bytes", code, body)
	}
	if _, body := f.download(systemToken, "/v1/models/iris/versions/2/download"); !cmp.Equal(folder, untar(t, body)) {
		t.Fatalf("download 2 after the job's outputs changed: %v", untar(t, body))
	}
	var again api.ModelVersion
	f.mustCall("GET", "/v1/models/iris/versions/1", systemToken, "", &again)
	if again.SHA256 != want1.SHA256 {
		t.Fatalf("sha256 of version 1 became %s", again.SHA256)
	}
	v3 := f.register(systemToken, "iris", j.ID, "model.json")
	if v3.Version != 3 || v3.SHA256 != sha(`{"w":"changed"}`) {
		t.Fatalf("version 3 = %d %s; want 3 with the new bytes' checksum", v3.Version, v3.SHA256)
	}

	// Delete: the version and its aliases go; its number is never reused.
	if code, body := f.call("DELETE", "/v1/models/iris/versions/2", systemToken, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE version 2: %d %s", code, body)
	}
	if code, body := f.call("GET", "/v1/models/iris/versions/2", systemToken, ""); code != http.StatusNotFound {
		t.Fatalf("GET deleted version: %d %s, want 404", code, body)
	}
	if code, body := f.call("GET", "/v1/models/iris/versions/production", systemToken, ""); code != http.StatusNotFound {
		t.Fatalf("alias of a deleted version: %d %s, want 404", code, body)
	}
	if code, body := f.call("DELETE", "/v1/models/iris/versions/2", systemToken, ""); code != http.StatusNotFound {
		t.Fatalf("DELETE version 2 again: %d %s, want 404", code, body)
	}
	if keys, _ := f.g.artifacts.List(context.Background(), artifact.ModelPrefix(DefaultWorkspace, "iris", 2)); len(keys) != 0 {
		t.Fatalf("files of the deleted version are left: %v", keys)
	}
	f.mustCall("DELETE", "/v1/models/iris/versions/3", systemToken, "", nil)
	if v := f.register(systemToken, "iris", j.ID, "model.json"); v.Version != 4 {
		t.Fatalf("after deleting 2 and 3 the next version is %d, want 4", v.Version)
	}
	f.mustCall("DELETE", "/v1/models/iris/aliases/staging", systemToken, "", nil)
	var after api.Model // a fresh one: decoding into m would merge its maps
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &after)
	if len(after.Aliases) != 0 || after.LatestVersion != 4 || len(after.Versions) != 2 || after.Versions[1].Version != 4 {
		t.Fatalf("after deletes: %+v", after)
	}

	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", systemToken, "", &audit)
	var actions []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "model.") {
			actions = append(actions, e.Action+" "+strings.Fields(e.Target)[0])
		}
	}
	slices.Reverse(actions) // newest first
	wantActions := []string{"model.register iris:1", "model.register iris:2", "model.alias iris@production",
		"model.alias iris@production", "model.alias iris@staging", "model.register iris:3", "model.delete iris:2",
		"model.delete iris:3", "model.register iris:4", "model.alias.delete iris@staging"}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Fatalf("audit log (-want +got):\n%s", diff)
	}
}

// TestModelBadInputs: every bad input is a 4xx JSON error naming its field.
func TestModelBadInputs(t *testing.T) {
	f := newFixture(t)
	ok := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": "m", "dir/a": "a"})
	failed := f.endedJob(DefaultWorkspace, systemToken, api.StatusFailed, map[string]string{"model.json": "m"})
	var queued api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &queued)
	f.register(systemToken, "iris", ok.ID, "model.json")
	reg := func(name, job, p string) string {
		b, _ := json.Marshal(api.ModelRegister{Name: name, JobID: job, Path: p})
		return string(b)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		field                    string // the message names it
	}{
		{"not JSON", "POST", "/v1/models", `{"name":`, 400, "JSON"},
		{"unknown field", "POST", "/v1/models", `{"name":"iris","job_id":"` + ok.ID + `","path":"model.json","version":3}`, 422, "version"},
		{"wrong type", "POST", "/v1/models", `{"name":"iris","job_id":"` + ok.ID + `","path":7}`, 422, "path"},
		{"no name", "POST", "/v1/models", reg("", ok.ID, "model.json"), 422, "name"},
		{"bad name", "POST", "/v1/models", reg("iris:2", ok.ID, "model.json"), 422, "name"},
		{"name with a slash", "POST", "/v1/models", reg("a/b", ok.ID, "model.json"), 422, "name"},
		{"no job", "POST", "/v1/models", reg("iris", "", "model.json"), 422, "job_id"},
		{"unknown job", "POST", "/v1/models", reg("iris", "01abc", "model.json"), 404, "job_id"},
		{"failed job", "POST", "/v1/models", reg("iris", failed.ID, "model.json"), 409, "job_id"},
		{"queued job", "POST", "/v1/models", reg("iris", queued.ID, "model.json"), 409, "job_id"},
		{"no path", "POST", "/v1/models", reg("iris", ok.ID, ""), 422, "path"},
		{"dot dot", "POST", "/v1/models", reg("iris", ok.ID, ".."), 422, "path"},
		{"escaping path", "POST", "/v1/models", reg("iris", ok.ID, "../../other/outputs/x"), 422, "path"},
		{"inner dot dot", "POST", "/v1/models", reg("iris", ok.ID, "dir/../model.json"), 422, "path"},
		{"absolute path", "POST", "/v1/models", reg("iris", ok.ID, "/etc/passwd"), 422, "path"},
		{"backslash", "POST", "/v1/models", reg("iris", ok.ID, `..\x`), 422, "path"},
		{"empty segment", "POST", "/v1/models", reg("iris", ok.ID, "dir//a"), 422, "path"},
		{"missing file", "POST", "/v1/models", reg("iris", ok.ID, "nope.json"), 422, "path"},
		{"unknown model", "GET", "/v1/models/nope", "", 404, "nope"},
		{"a reference is not a model", "GET", "/v1/models/iris@production", "", 404, "/v1/models/iris/versions/production"},
		{"unknown version", "GET", "/v1/models/iris/versions/9", "", 404, "9"},
		{"unknown alias", "GET", "/v1/models/iris/versions/prod", "", 404, "prod"},
		{"version zero", "GET", "/v1/models/iris/versions/0", "", 404, "0"},
		{"download unknown", "GET", "/v1/models/iris/versions/9/download", "", 404, "9"},
		{"alias without version", "PUT", "/v1/models/iris/aliases/prod", `{}`, 422, "version"},
		{"alias version zero", "PUT", "/v1/models/iris/aliases/prod", `{"version":0}`, 422, "version"},
		{"alias version string", "PUT", "/v1/models/iris/aliases/prod", `{"version":"1"}`, 422, "version"},
		{"alias of a missing version", "PUT", "/v1/models/iris/aliases/prod", `{"version":5}`, 422, "version"},
		{"alias that is a number", "PUT", "/v1/models/iris/aliases/2", `{"version":1}`, 422, "alias"},
		{"alias of an unknown model", "PUT", "/v1/models/nope/aliases/prod", `{"version":1}`, 404, "nope"},
		{"delete by alias", "DELETE", "/v1/models/iris/versions/prod", "", 422, "version"},
		{"delete unknown version", "DELETE", "/v1/models/iris/versions/7", "", 404, "7"},
		{"delete unknown alias", "DELETE", "/v1/models/iris/aliases/prod", "", 404, "prod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call(tt.method, tt.path, systemToken, tt.body)
			var e api.ErrorBody
			if code != tt.code || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code.Status() != tt.code || !strings.Contains(e.Error.Message, tt.field) {
				t.Fatalf("%s %s %s: %d %s; want %d naming %s", tt.method, tt.path, tt.body, code, body, tt.code, tt.field)
			}
		})
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &m)
	if len(m.Versions) != 1 || len(m.Aliases) != 0 {
		t.Fatalf("refused requests changed the model: %+v", m)
	}
}

// TestModelVersionsAreAllocatedAtomically: concurrent registrations of one
// model get distinct versions 1..n.
func TestModelVersionsAreAllocatedAtomically(t *testing.T) {
	f := newFixture(t)
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": "m"})
	const n = 12
	var wg sync.WaitGroup
	versions := make([]int, n)
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", f.ts.URL+"/v1/models", strings.NewReader(`{"name":"iris","job_id":"`+j.ID+`","path":"model.json"}`))
			req.Header.Set("Authorization", "Bearer "+systemToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var mv api.ModelVersion
			if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&mv) != nil {
				errs[i] = resp.Status
				return
			}
			versions[i] = mv.Version
		}()
	}
	wg.Wait()
	slices.Sort(versions)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("versions %v (errors %q), want %v", versions, errs, want)
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &m)
	if len(m.Versions) != n || m.LatestVersion != n {
		t.Fatalf("model after %d registrations: %d versions, latest %d", n, len(m.Versions), m.LatestVersion)
	}
}

// TestModelsAreWorkspaceScoped: another workspace's model is a 404 on every
// route, its jobs cannot be registered from, and the same name in two
// workspaces is two models.
func TestModelsAreWorkspaceScoped(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	a, b := f.token("team-a", api.ScopeAdmin), f.token("team-b", api.ScopeAdmin)
	ja := f.endedJob("team-a", a.Secret, api.StatusSucceeded, map[string]string{"model.json": "A"})
	jb := f.endedJob("team-b", b.Secret, api.StatusSucceeded, map[string]string{"model.json": "B"})
	f.register(a.Secret, "iris", ja.ID, "model.json")
	f.register(a.Secret, "iris", ja.ID, "model.json")
	f.mustCall("PUT", "/v1/models/iris/aliases/production", a.Secret, `{"version":1}`, nil)

	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/models/iris", ""},
		{"GET", "/v1/models/iris/versions/1", ""},
		{"GET", "/v1/models/iris/versions/production", ""},
		{"GET", "/v1/models/iris/versions/1/download", ""},
		{"PUT", "/v1/models/iris/aliases/production", `{"version":2}`},
		{"DELETE", "/v1/models/iris/aliases/production", ""},
		{"DELETE", "/v1/models/iris/versions/1", ""},
		{"POST", "/v1/models", `{"name":"iris","job_id":"` + ja.ID + `","path":"model.json"}`},
	} {
		if code, body := f.call(c.method, c.path, b.Secret, c.body); code != http.StatusNotFound {
			t.Fatalf("team-b %s %s: %d %s, want 404", c.method, c.path, code, body)
		}
	}
	var list api.ModelList
	f.mustCall("GET", "/v1/models", b.Secret, "", &list)
	if len(list.Models) != 0 {
		t.Fatalf("team-b lists %+v", list)
	}
	if v := f.register(b.Secret, "iris", jb.ID, "model.json"); v.Version != 1 || v.SHA256 != sha("B") {
		t.Fatalf("team-b's own iris: version %d sha %s, want 1 of its own bytes", v.Version, v.SHA256)
	}
	var got api.ModelVersion
	f.mustCall("GET", "/v1/models/iris/versions/production", a.Secret, "", &got)
	if got.Version != 1 || got.SHA256 != sha("A") {
		t.Fatalf("team-a's iris@production after team-b's calls: %+v", got)
	}
	if code, body := f.download(a.Secret, "/v1/models/iris/versions/1/download"); code != 200 || body != "A" {
		t.Fatalf("team-a's download: %d %q", code, body)
	}
	if code, _ := f.call("GET", "/v1/models", f.token("team-a", api.ScopeScore).Secret, ""); code != http.StatusForbidden {
		t.Fatalf("a score-only token lists models: %d, want 403", code)
	}
	if code, _ := f.call("POST", "/v1/models", f.token("team-a", api.ScopeRead).Secret, `{"name":"x","job_id":"`+ja.ID+`","path":"model.json"}`); code != http.StatusForbidden {
		t.Fatalf("a read-only token registers: %d, want 403", code)
	}
}

// usedModels is a modelUsers that reports one version in use.
type usedModels struct{ name string }

func (u usedModels) ModelVersionInUse(_ context.Context, _, name string, v int) (string, error) {
	if name == u.name && v == 1 {
		return "deployment iris-prod", nil
	}
	return "", nil
}

// TestModelInUseIsNotDeleted: a version in use is a 409 and stays.
func TestModelInUseIsNotDeleted(t *testing.T) {
	f := newFixture(t)
	f.g.modelUsers = usedModels{name: "iris"}
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": "m"})
	f.register(systemToken, "iris", j.ID, "model.json")
	f.register(systemToken, "iris", j.ID, "model.json")
	code, body := f.call("DELETE", "/v1/models/iris/versions/1", systemToken, "")
	if code != http.StatusConflict || !strings.Contains(body, "deployment iris-prod") {
		t.Fatalf("DELETE of a version in use: %d %s, want 409 naming its user", code, body)
	}
	f.mustCall("GET", "/v1/models/iris/versions/1", systemToken, "", nil)
	f.mustCall("DELETE", "/v1/models/iris/versions/2", systemToken, "", nil)
}

// TestDeleteModel: DELETE /v1/models/{name} removes every version, its
// files and aliases; one version in use refuses it and leaves all of it;
// the name may be registered again and goes on from the last number.
func TestDeleteModel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.g.modelUsers = usedModels{name: "iris"} // iris:1 is in use
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": "m"})
	f.register(systemToken, "iris", j.ID, "model.json")
	f.register(systemToken, "iris", j.ID, "model.json")
	f.mustCall("PUT", "/v1/models/iris/aliases/prod", systemToken, `{"version":2}`, nil)

	code, body := f.call("DELETE", "/v1/models/iris", systemToken, "")
	if code != http.StatusConflict || !strings.Contains(body, "iris:1") || !strings.Contains(body, "deployment iris-prod") {
		t.Fatalf("DELETE of a model with a version in use: %d %s, want 409 naming iris:1 and its user", code, body)
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &m)
	if len(m.Versions) != 2 || m.Aliases["prod"] != 2 {
		t.Fatalf("after the refused delete: %+v, want both versions and the alias", m)
	}

	f.g.modelUsers = usedModels{}
	if code, body := f.call("DELETE", "/v1/models/iris", f.token(DefaultWorkspace, api.ScopeRead).Secret, ""); code != http.StatusForbidden {
		t.Fatalf("DELETE with a read token: %d %s, want 403", code, body)
	}
	f.workspace("team-b", api.Quotas{})
	if code, body := f.call("DELETE", "/v1/models/iris", f.token("team-b", api.ScopeSubmit).Secret, ""); code != http.StatusNotFound {
		t.Fatalf("DELETE from another workspace: %d %s, want 404", code, body)
	}
	f.mustCall("DELETE", "/v1/models/iris", systemToken, "", nil)
	if code, body := f.call("GET", "/v1/models/iris", systemToken, ""); code != http.StatusNotFound {
		t.Fatalf("GET after delete: %d %s, want 404", code, body)
	}
	var list api.ModelList
	f.mustCall("GET", "/v1/models", systemToken, "", &list)
	if len(list.Models) != 0 {
		t.Fatalf("models after delete: %+v", list.Models)
	}
	for _, v := range []int{1, 2} {
		if keys, err := f.g.artifacts.List(ctx, artifact.ModelPrefix(DefaultWorkspace, "iris", v)); err != nil || len(keys) != 0 {
			t.Errorf("files of iris:%d after delete: %v, %v", v, keys, err)
		}
	}
	if code, body := f.call("DELETE", "/v1/models/iris", systemToken, ""); code != http.StatusNotFound || !strings.Contains(body, "iris") {
		t.Fatalf("DELETE again: %d %s, want 404 naming the model", code, body)
	}
	if mv := f.register(systemToken, "iris", j.ID, "model.json"); mv.Version != 3 {
		t.Fatalf("registered again as version %d, want 3: a number never names two sets of files", mv.Version)
	}
	var again api.Model // not m: decoding into its map would keep the old keys
	f.mustCall("GET", "/v1/models/iris", systemToken, "", &again)
	if len(again.Aliases) != 0 || len(again.Versions) != 1 {
		t.Fatalf("the model made again: %+v, want one version and no old alias", again)
	}
}
