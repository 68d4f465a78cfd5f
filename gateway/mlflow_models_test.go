package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestMLflowModelRegistry: register_model's flow (create the registered
// model, then a version from a run's artifacts) lands a version in
// jobgate's registry, seen through /v1/models too; aliases, search, latest
// versions and the refusals answer in MLflow's words.
func TestMLflowModelRegistry(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	j := f.endedJob(DefaultWorkspace, tok, api.StatusSucceeded, map[string]string{"model/MLmodel": "flavors: {}", "model/w.bin": "123"})

	rm := f.mlflowOK("POST", "registered-models/create", tok, `{"name":"iris","description":"a flower"}`)["registered_model"].(map[string]any)
	if rm["name"] != "iris" || rm["description"] != "a flower" {
		t.Fatalf("create = %v", rm)
	}
	mv := f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"runs:/`+j.ID+`/model","run_id":"`+j.ID+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "1" || mv["run_id"] != j.ID || mv["status"] != "READY" {
		t.Fatalf("model-versions/create = %v", mv)
	}
	// The source may be a path below the run's artifact_uri.
	run := f.mlflowOK("GET", "runs/get?run_id="+j.ID, tok, "")["run"].(map[string]any)
	uri := run["info"].(map[string]any)["artifact_uri"].(string)
	mv = f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"`+uri+`/model/w.bin","run_id":"`+j.ID+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "2" {
		t.Fatalf("second version = %v", mv)
	}
	var m api.Model
	f.mustCall("GET", "/v1/models/iris", tok, "", &m)
	if len(m.Versions) != 2 || m.Versions[0].Kind != api.ModelFolderKind || len(m.Versions[0].Files) != 2 || m.Versions[1].SourcePath != "model/w.bin" {
		t.Fatalf("/v1/models/iris = %+v", m)
	}

	f.mlflowOK("POST", "registered-models/alias", tok, `{"name":"iris","alias":"champion","version":"1"}`)
	if got := f.mlflowOK("GET", "registered-models/alias?name=iris&alias=champion", tok, "")["model_version"].(map[string]any); got["version"] != "1" {
		t.Fatalf("get by alias = %v", got)
	}
	if got := f.mlflowOK("GET", "model-versions/get?name=iris&version=2", tok, "")["model_version"].(map[string]any); got["source"] != "runs:/"+j.ID+"/model/w.bin" {
		t.Fatalf("model-versions/get = %v", got)
	}
	latest := f.mlflowOK("POST", "registered-models/get-latest-versions", tok, `{"name":"iris"}`)["model_versions"].([]any)
	if len(latest) != 1 || latest[0].(map[string]any)["version"] != "2" {
		t.Fatalf("latest = %v", latest)
	}
	f.mlflowOK("PATCH", "registered-models/update", tok, `{"name":"iris","description":"petals"}`)
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"mnist"}`)
	search := func(q string) []string {
		t.Helper()
		var names []string
		for _, r := range f.mlflowOK("GET", "registered-models/search?"+q, tok, "")["registered_models"].([]any) {
			d, _ := r.(map[string]any)["description"].(string)
			names = append(names, r.(map[string]any)["name"].(string)+":"+d)
		}
		return names
	}
	for q, want := range map[string]string{
		"":                             "iris:petals,mnist:",
		"filter=name+LIKE+%27ir%25%27": "iris:petals",
		"filter=name+%3D+%27mnist%27":  "mnist:",
		"order_by=name+DESC":           "mnist:,iris:petals",
		"max_results=1&page_token=1":   "mnist:",
	} {
		if got := strings.Join(search(q), ","); got != want {
			t.Errorf("search %q = %s, want %s", q, got, want)
		}
	}
	vs := f.mlflowOK("GET", "model-versions/search?filter=name%3D%27iris%27", tok, "")["model_versions"].([]any)
	if len(vs) != 2 {
		t.Fatalf("model-versions/search = %v", vs)
	}
	if u := f.mlflowOK("GET", "model-versions/get-download-uri?name=iris&version=1", tok, "")["artifact_uri"].(string); !strings.HasSuffix(u, "/v1/models/iris/versions/1/download") {
		t.Fatalf("download uri = %s", u)
	}
	f.mlflowOK("DELETE", "registered-models/alias", tok, `{"name":"iris","alias":"champion"}`)

	for _, bad := range []struct{ method, endpoint, body, code, names string }{
		{"POST", "registered-models/create", `{"name":"iris"}`, "RESOURCE_ALREADY_EXISTS", "iris"},
		{"POST", "registered-models/create", `{}`, "INVALID_PARAMETER_VALUE", "'name'"},
		{"GET", "registered-models/get?name=nope", "", "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"GET", "registered-models/search?filter=tags.x+%3D+%271%27", "", "INVALID_PARAMETER_VALUE", "'filter'"},
		{"GET", "registered-models/search?order_by=version", "", "INVALID_PARAMETER_VALUE", "'order_by'"},
		{"PATCH", "registered-models/update", `{"name":"nope","description":"x"}`, "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"PATCH", "registered-models/update", `{"name":"iris","description":"` + strings.Repeat("d", mlflowMaxDescription+1) + `"}`, "INVALID_PARAMETER_VALUE", "'description'"},
		{"POST", "registered-models/create", `{"name":"big","description":"` + strings.Repeat("d", mlflowMaxDescription+1) + `"}`, "INVALID_PARAMETER_VALUE", "'description'"},
		{"POST", "registered-models/get-latest-versions", `{"name":"nope"}`, "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"POST", "registered-models/alias", `{"name":"iris","alias":"a","version":"9"}`, "RESOURCE_DOES_NOT_EXIST", "version=9"},
		{"POST", "registered-models/alias", `{"name":"iris","alias":"","version":"1"}`, "INVALID_PARAMETER_VALUE", "'alias'"},
		{"DELETE", "registered-models/alias", `{"name":"iris","alias":"champion"}`, "RESOURCE_DOES_NOT_EXIST", "champion"},
		{"GET", "registered-models/alias?name=iris&alias=gone", "", "RESOURCE_DOES_NOT_EXIST", "gone"},
		{"POST", "model-versions/create", `{"name":"iris","run_id":"` + j.ID + `"}`, "INVALID_PARAMETER_VALUE", "'source'"},
		{"POST", "model-versions/create", `{"name":"iris","source":"s3://b/x","run_id":"` + j.ID + `"}`, "INVALID_PARAMETER_VALUE", "'source'"},
		{"POST", "model-versions/create", `{"name":"iris","source":"runs:/` + j.ID + `/nothing"}`, "INVALID_PARAMETER_VALUE", "nothing"},
		{"POST", "model-versions/create", `{"name":"nope","source":"runs:/` + j.ID + `/model"}`, "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"GET", "model-versions/get?name=iris&version=x", "", "INVALID_PARAMETER_VALUE", "'version'"},
		{"GET", "model-versions/get?name=iris&version=7", "", "RESOURCE_DOES_NOT_EXIST", "version=7"},
		{"GET", "model-versions/get-download-uri?name=nope&version=1", "", "RESOURCE_DOES_NOT_EXIST", "nope"},
		{"PATCH", "model-versions/update", `{"name":"iris","version":"1","description":"d"}`, "INVALID_PARAMETER_VALUE", "description"},
		{"POST", "registered-models/rename", `{"name":"iris","new_name":"lily"}`, "ENDPOINT_NOT_FOUND", "does not serve"},
		{"POST", "model-versions/transition-stage", `{"name":"iris","version":"1","stage":"Production"}`, "ENDPOINT_NOT_FOUND", "does not serve"},
	} {
		code, out := f.mlflowCall(bad.method, bad.endpoint, tok, bad.body)
		msg, _ := out["message"].(string)
		if out["error_code"] != bad.code || (code != http.StatusBadRequest && code != http.StatusNotFound) || !strings.Contains(msg, bad.names) {
			t.Errorf("%s %s %s: %d %v, want %s naming %s", bad.method, bad.endpoint, bad.body, code, out, bad.code, bad.names)
		}
	}

	// Another workspace sees none of it.
	f.workspace("team-b", api.Quotas{})
	b := f.token("team-b", api.ScopeRead, api.ScopeSubmit).Secret
	if got := f.mlflowOK("GET", "registered-models/search", b, "")["registered_models"].([]any); len(got) != 0 {
		t.Fatalf("B's search = %v", got)
	}
	for _, c := range []struct{ method, endpoint, body string }{
		{"GET", "registered-models/get?name=iris", ""},
		{"GET", "model-versions/get?name=iris&version=1", ""},
		{"POST", "model-versions/create", `{"name":"iris","source":"runs:/` + j.ID + `/model"}`},
		{"DELETE", "model-versions/delete", `{"name":"iris","version":"1"}`},
		{"DELETE", "registered-models/delete", `{"name":"iris"}`},
	} {
		if code, out := f.mlflowCall(c.method, c.endpoint, b, c.body); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
			t.Errorf("B: %s %s: %d %v", c.method, c.endpoint, code, out)
		}
	}
	// B's own model of the same name cannot take A's run's artifacts.
	f.mlflowOK("POST", "registered-models/create", b, `{"name":"iris"}`)
	if code, out := f.mlflowCall("POST", "model-versions/create", b, `{"name":"iris","source":"runs:/`+j.ID+`/model"}`); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Errorf("B registers A's run: %d %v", code, out)
	}

	// DeleteModelVersion, with a JSON body (MLflow's Python client) or the
	// query: the version is gone from both APIs, and a second delete is
	// MLflow's not-found.
	f.mlflowOK("DELETE", "model-versions/delete", tok, `{"name":"iris","version":"1"}`)
	if code, out := f.mlflowCall("GET", "model-versions/get?name=iris&version=1", tok, ""); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Errorf("get after delete: %d %v", code, out)
	}
	if code, out := f.mlflowCall("DELETE", "model-versions/delete", tok, `{"name":"iris","version":"1"}`); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Errorf("second delete: %d %v", code, out)
	}
	f.mlflowOK("DELETE", "model-versions/delete?name=iris&version=2", tok, "")
	f.mustCall("GET", "/v1/models/iris", tok, "", &m)
	if len(m.Versions) != 0 {
		t.Fatalf("/v1/models/iris after both deletes = %+v", m.Versions)
	}
}

// TestMLflowDeleteVersionInUse: a version a deployment serves is not
// deleted through MLflow either, and stays.
func TestMLflowDeleteVersionInUse(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin).Secret
	o := f.objectsIn("team-a", admin) // its deployment serves o.model version 2
	code, out := f.mlflowCall("DELETE", "model-versions/delete", admin, `{"name":"`+o.model+`","version":"2"}`)
	if msg, _ := out["message"].(string); code != http.StatusBadRequest || out["error_code"] != "INVALID_STATE" || !strings.Contains(msg, o.deployment) {
		t.Fatalf("delete of a served version: %d %v, want 400 INVALID_STATE naming deployment %s", code, out, o.deployment)
	}
	f.mlflowOK("GET", "model-versions/get?name="+o.model+"&version=2", admin, "")
}

// TestMLflowDeleteRegisteredModel: registered-models/delete removes the
// model with its versions and description (DELETE, the name in the body
// or the query, as MLflow's clients send it); a version in use refuses it
// with INVALID_STATE and leaves the whole model; the errors are MLflow's.
func TestMLflowDeleteRegisteredModel(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	j := f.endedJob(DefaultWorkspace, tok, api.StatusSucceeded, map[string]string{"model/w.bin": "123"})
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"iris","description":"a flower"}`)
	f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"runs:/`+j.ID+`/model","run_id":"`+j.ID+`"}`)
	f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"runs:/`+j.ID+`/model","run_id":"`+j.ID+`"}`)
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"empty"}`)

	f.g.modelUsers = usedModels{name: "iris"} // iris:1 is in use
	code, out := f.mlflowCall("DELETE", "registered-models/delete", tok, `{"name":"iris"}`)
	if msg, _ := out["message"].(string); code != http.StatusBadRequest || out["error_code"] != "INVALID_STATE" || !strings.Contains(msg, "iris:1") {
		t.Fatalf("delete of a model with a version in use: %d %v, want 400 INVALID_STATE naming iris:1", code, out)
	}
	f.mlflowOK("GET", "model-versions/get?name=iris&version=2", tok, "")
	f.g.modelUsers = usedModels{}

	f.mlflowOK("DELETE", "registered-models/delete", tok, `{"name":"iris"}`)
	f.mlflowOK("DELETE", "registered-models/delete?name=empty", tok, "")
	for _, name := range []string{"iris", "empty"} {
		if code, out := f.mlflowCall("GET", "registered-models/get?name="+name, tok, ""); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
			t.Errorf("get %s after delete: %d %v, want 404 RESOURCE_DOES_NOT_EXIST", name, code, out)
		}
	}
	if got := f.mlflowOK("GET", "registered-models/search", tok, "")["registered_models"]; got != nil && len(got.([]any)) != 0 {
		t.Errorf("search after the deletes = %v", got)
	}
	for _, bad := range []struct {
		body, query string
		status      int
		code        string
	}{
		{`{"name":"iris"}`, "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"", "", 400, "INVALID_PARAMETER_VALUE"},
		{`{"name":`, "", 400, "INVALID_PARAMETER_VALUE"},
	} {
		code, out := f.mlflowCall("DELETE", "registered-models/delete"+bad.query, tok, bad.body)
		if code != bad.status || out["error_code"] != bad.code {
			t.Errorf("delete %q: %d %v, want %d %s", bad.body, code, out, bad.status, bad.code)
		}
	}
	// Made again, the model has no old description and goes on from the
	// last version number.
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"iris"}`)
	rm := f.mlflowOK("GET", "registered-models/get?name=iris", tok, "")["registered_model"].(map[string]any)
	if d, _ := rm["description"].(string); d != "" {
		t.Errorf("description of the model made again = %q", d)
	}
	mv := f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"runs:/`+j.ID+`/model","run_id":"`+j.ID+`"}`)["model_version"].(map[string]any)
	if mv["version"] != "3" {
		t.Errorf("version of the model made again = %v, want 3", mv["version"])
	}
}

// TestMLflowModelTags: set-tag and delete-tag on a registered model and on
// a version show in every answer that shows them (get, search, latest,
// by alias), are bounded in number, are another workspace's 404, and go
// with the version or model they tag.
func TestMLflowModelTags(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	j := f.endedJob(DefaultWorkspace, tok, api.StatusSucceeded, map[string]string{"model/w.bin": "123"})
	f.mlflowOK("POST", "registered-models/create", tok, `{"name":"iris"}`)
	f.mlflowOK("POST", "model-versions/create", tok, `{"name":"iris","source":"runs:/`+j.ID+`/model","run_id":"`+j.ID+`"}`)
	f.mlflowOK("POST", "registered-models/alias", tok, `{"name":"iris","alias":"champion","version":"1"}`)

	f.mlflowOK("POST", "registered-models/set-tag", tok, `{"name":"iris","key":"team","value":"vision"}`)
	f.mlflowOK("POST", "registered-models/set-tag", tok, `{"name":"iris","key":"owner","value":"ana"}`)
	f.mlflowOK("POST", "model-versions/set-tag", tok, `{"name":"iris","version":"1","key":"validated","value":"yes"}`)
	tagsOf := func(v any) string {
		t.Helper()
		var parts []string
		list, _ := v.(map[string]any)["tags"].([]any)
		for _, kv := range list {
			parts = append(parts, kv.(map[string]any)["key"].(string)+"="+kv.(map[string]any)["value"].(string))
		}
		return strings.Join(parts, ",")
	}
	rm := f.mlflowOK("GET", "registered-models/get?name=iris", tok, "")["registered_model"]
	if got := tagsOf(rm); got != "owner=ana,team=vision" {
		t.Errorf("the model's tags = %q", got)
	}
	if got := tagsOf(rm.(map[string]any)["latest_versions"].([]any)[0]); got != "validated=yes" {
		t.Errorf("its latest version's tags = %q", got)
	}
	for what, v := range map[string]any{
		"model-versions/get":                    f.mlflowOK("GET", "model-versions/get?name=iris&version=1", tok, "")["model_version"],
		"registered-models/alias":               f.mlflowOK("GET", "registered-models/alias?name=iris&alias=champion", tok, "")["model_version"],
		"model-versions/search":                 f.mlflowOK("GET", "model-versions/search", tok, "")["model_versions"].([]any)[0],
		"registered-models/get-latest-versions": f.mlflowOK("POST", "registered-models/get-latest-versions", tok, `{"name":"iris"}`)["model_versions"].([]any)[0],
	} {
		if got := tagsOf(v); got != "validated=yes" {
			t.Errorf("%s: the version's tags = %q", what, got)
		}
	}
	if got := tagsOf(f.mlflowOK("GET", "registered-models/search", tok, "")["registered_models"].([]any)[0]); got != "owner=ana,team=vision" {
		t.Errorf("registered-models/search: the model's tags = %q", got)
	}

	// delete-tag takes a JSON body or the query, as MLflow's clients send it.
	f.mlflowOK("DELETE", "registered-models/delete-tag", tok, `{"name":"iris","key":"owner"}`)
	f.mlflowOK("DELETE", "model-versions/delete-tag?name=iris&version=1&key=validated", tok, "")
	if got := tagsOf(f.mlflowOK("GET", "registered-models/get?name=iris", tok, "")["registered_model"]); got != "team=vision" {
		t.Errorf("the model's tags after delete-tag = %q", got)
	}
	if got := tagsOf(f.mlflowOK("GET", "model-versions/get?name=iris&version=1", tok, "")["model_version"]); got != "" {
		t.Errorf("the version's tags after delete-tag = %q", got)
	}
	for _, bad := range []struct {
		method, endpoint, body string
		status                 int
		code                   string
	}{
		{"DELETE", "registered-models/delete-tag", `{"name":"iris","key":"owner"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "registered-models/set-tag", `{"name":"iris","key":"","value":"v"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/set-tag", `{"name":"nope","key":"k","value":"v"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "model-versions/set-tag", `{"name":"iris","version":"9","key":"k","value":"v"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "model-versions/set-tag", `{"name":"iris","version":"x","key":"k","value":"v"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/set-tag", `{"name":"iris","key":"k","value":"` + strings.Repeat("v", 8001) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
	} {
		if code, out := f.mlflowCall(bad.method, bad.endpoint, tok, bad.body); code != bad.status || out["error_code"] != bad.code {
			t.Errorf("%s %s %.80s: %d %v, want %d %s", bad.method, bad.endpoint, bad.body, code, out, bad.status, bad.code)
		}
	}
	// Bounded, so that a client cannot grow one model's record without end.
	for i := range store.MaxExperimentTags - 1 {
		f.mlflowOK("POST", "registered-models/set-tag", tok, fmt.Sprintf(`{"name":"iris","key":"k%d","value":"v"}`, i))
	}
	if code, out := f.mlflowCall("POST", "registered-models/set-tag", tok, `{"name":"iris","key":"one-too-many","value":"v"}`); code != http.StatusBadRequest || out["error_code"] != "INVALID_PARAMETER_VALUE" {
		t.Errorf("tag %d: %d %v, want 400 INVALID_PARAMETER_VALUE", store.MaxExperimentTags+1, code, out)
	}
	f.mlflowOK("POST", "registered-models/set-tag", tok, `{"name":"iris","key":"team","value":"changed"}`) // a present key may change

	// Another workspace reaches none of it.
	f.workspace("team-b", api.Quotas{})
	b := f.token("team-b", api.ScopeRead, api.ScopeSubmit).Secret
	for _, c := range []struct{ method, endpoint, body string }{
		{"POST", "registered-models/set-tag", `{"name":"iris","key":"k","value":"v"}`},
		{"DELETE", "registered-models/delete-tag", `{"name":"iris","key":"team"}`},
		{"POST", "model-versions/set-tag", `{"name":"iris","version":"1","key":"k","value":"v"}`},
	} {
		if code, out := f.mlflowCall(c.method, c.endpoint, b, c.body); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
			t.Errorf("B: %s %s: %d %v", c.method, c.endpoint, code, out)
		}
	}

	// The tags go with what they tag.
	f.mlflowOK("POST", "model-versions/set-tag", tok, `{"name":"iris","version":"1","key":"validated","value":"yes"}`)
	f.mlflowOK("DELETE", "model-versions/delete", tok, `{"name":"iris","version":"1"}`)
	f.mlflowOK("DELETE", "registered-models/delete", tok, `{"name":"iris"}`)
	left, err := f.st.ModelTags(ctx, DefaultWorkspace, []store.ModelTagRef{{Name: "iris"}, {Name: "iris", Version: 1}})
	if err != nil || len(left) != 0 {
		t.Fatalf("tags after the version and the model were deleted: %v, %v", left, err)
	}
}
