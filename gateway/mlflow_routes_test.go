package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// mlflowRunIn makes a tracked run in experiment exp and returns its ID.
func (f *fixture) mlflowRunIn(tok, exp, name string, start int64) string {
	f.t.Helper()
	run := f.mlflowOK("POST", "runs/create", tok, fmt.Sprintf(`{"experiment_id":%q,"run_name":%q,"start_time":%d}`, exp, name, start))["run"].(map[string]any)
	return run["info"].(map[string]any)["run_id"].(string)
}

// runIDs is the run IDs of a runs/search answer, in order.
func runIDs(out map[string]any) []string {
	var ids []string
	for _, r := range out["runs"].([]any) {
		ids = append(ids, r.(map[string]any)["info"].(map[string]any)["run_id"].(string))
	}
	return ids
}

func expNames(out map[string]any) []string {
	var names []string
	for _, e := range out["experiments"].([]any) {
		names = append(names, e.(map[string]any)["name"].(string))
	}
	return names
}

func TestMLflowExperimentLifecycle(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	for _, name := range []string{"alpha", "beta", "gamma"} {
		f.mlflowOK("POST", "experiments/create", tok, `{"name":"`+name+`"}`)
	}
	if got := expNames(f.mlflowOK("GET", "experiments/list", tok, "")); strings.Join(got, ",") != "Default,alpha,beta,gamma" {
		t.Fatalf("experiments/list = %v", got)
	}
	f.mlflowOK("POST", "experiments/set-experiment-tag", tok, `{"experiment_id":"beta","key":"team","value":"vision"}`)
	f.mlflowOK("POST", "experiments/delete", tok, `{"experiment_id":"gamma"}`)

	exp := f.mlflowOK("GET", "experiments/get?experiment_id=gamma", tok, "")["experiment"].(map[string]any)
	if exp["lifecycle_stage"] != "deleted" {
		t.Fatalf("deleted experiment = %v", exp)
	}
	beta := f.mlflowOK("GET", "experiments/get-by-name?experiment_name=beta", tok, "")["experiment"].(map[string]any)
	if tags := beta["tags"].([]any); len(tags) != 1 || tags[0].(map[string]any)["value"] != "vision" {
		t.Fatalf("beta's tags = %v", beta["tags"])
	}
	if got := expNames(f.mlflowOK("GET", "experiments/list", tok, "")); strings.Join(got, ",") != "Default,alpha,beta" {
		t.Fatalf("experiments/list hides the deleted one: %v", got)
	}
	if got := expNames(f.mlflowOK("GET", "experiments/list?view_type=DELETED_ONLY", tok, "")); strings.Join(got, ",") != "gamma" {
		t.Fatalf("DELETED_ONLY = %v", got)
	}
	if code, out := f.mlflowCall("POST", "runs/create", tok, `{"experiment_id":"gamma"}`); code != 400 || out["error_code"] != "INVALID_STATE" {
		t.Fatalf("a run in a deleted experiment: %d %v", code, out)
	}
	// search: filter on tags and names, order, paging, view type.
	out := f.mlflowOK("POST", "experiments/search", tok, `{"filter":"tags.team = 'vision'"}`)
	if got := expNames(out); strings.Join(got, ",") != "beta" {
		t.Fatalf("search by tag = %v", got)
	}
	out = f.mlflowOK("POST", "experiments/search", tok, `{"filter":"attributes.name LIKE '%a'","order_by":["name DESC"],"max_results":1,"view_type":"ALL"}`)
	if got := expNames(out); strings.Join(got, ",") != "gamma" || out["next_page_token"] == nil {
		t.Fatalf("first page = %v %v", got, out["next_page_token"])
	}
	seen := expNames(out)
	for tokn := out["next_page_token"]; tokn != nil; tokn = out["next_page_token"] {
		out = f.mlflowOK("POST", "experiments/search", tok, `{"filter":"attributes.name LIKE '%a'","order_by":["name DESC"],"max_results":1,"view_type":"ALL","page_token":"`+tokn.(string)+`"}`)
		seen = append(seen, expNames(out)...)
	}
	if strings.Join(seen, ",") != "gamma,beta,alpha" {
		t.Fatalf("pages = %v", seen)
	}
	if got := expNames(f.mlflowOK("GET", "experiments/search?filter=name+%3D+%27alpha%27", tok, "")); strings.Join(got, ",") != "alpha" {
		t.Fatalf("GET search = %v", got)
	}
	for _, bad := range []struct{ body, names string }{
		{`{"filter":"metrics.acc > 1"}`, "attributes and tags only"},
		{`{"filter":"name = "}`, "needs a string or number"},
		{`{"order_by":["colour"]}`, "colour"},
		{`{"page_token":"nope"}`, "page token"},
		{`{"max_results":0}`, "max_results"},
		{`{"view_type":"SOME"}`, "view_type"},
	} {
		code, out := f.mlflowCall("POST", "experiments/search", tok, bad.body)
		if code != 400 || out["error_code"] != "INVALID_PARAMETER_VALUE" || !strings.Contains(out["message"].(string), bad.names) {
			t.Errorf("search %s: %d %v", bad.body, code, out)
		}
	}
	// restore, update, and their refusals.
	f.mlflowOK("POST", "experiments/restore", tok, `{"experiment_id":"gamma"}`)
	if exp := f.mlflowOK("GET", "experiments/get?experiment_id=gamma", tok, "")["experiment"].(map[string]any); exp["lifecycle_stage"] != "active" {
		t.Fatalf("restored experiment = %v", exp)
	}
	f.mlflowOK("POST", "experiments/update", tok, `{"experiment_id":"gamma","new_name":"gamma"}`)
	for _, bad := range []struct{ endpoint, body, code string }{
		{"experiments/update", `{"experiment_id":"gamma","new_name":"delta"}`, "INVALID_PARAMETER_VALUE"},
		{"experiments/delete", `{"experiment_id":"0"}`, "INVALID_PARAMETER_VALUE"},
		{"experiments/delete", `{"experiment_id":"nope"}`, "RESOURCE_DOES_NOT_EXIST"},
		{"experiments/restore", `{}`, "INVALID_PARAMETER_VALUE"},
		{"experiments/set-experiment-tag", `{"experiment_id":"nope","key":"k","value":"v"}`, "RESOURCE_DOES_NOT_EXIST"},
		{"experiments/set-experiment-tag", `{"experiment_id":"beta","key":"","value":"v"}`, "INVALID_PARAMETER_VALUE"},
	} {
		if code, out := f.mlflowCall("POST", bad.endpoint, tok, bad.body); out["error_code"] != bad.code || (code != 400 && code != 404) {
			t.Errorf("%s %s: %d %v, want %s", bad.endpoint, bad.body, code, out, bad.code)
		}
	}
}

func TestMLflowSearchRunsAndLifecycle(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	f.mlflowOK("POST", "experiments/create", tok, `{"name":"cifar"}`)
	a := f.mlflowRunIn(tok, "cifar", "a", 1764200000000)
	b := f.mlflowRunIn(tok, "cifar", "b", 1764200001000)
	c := f.mlflowRunIn(tok, "cifar", "c", 1764200002000)
	for id, v := range map[string]struct{ acc, lr, x string }{a: {"0.95", "0.01", "y"}, b: {"0.85", "0.01", "y"}, c: {"0.99", "0.1", "z"}} {
		f.mlflowOK("POST", "runs/log-batch", tok, `{"run_id":"`+id+`","metrics":[{"key":"acc","value":`+v.acc+`,"timestamp":1764200003000,"step":1}],"params":[{"key":"lr","value":"`+v.lr+`"}],"tags":[{"key":"x","value":"`+v.x+`"}]}`)
	}
	f.mlflowOK("POST", "runs/update", tok, `{"run_id":"`+a+`","status":"FINISHED"}`)

	search := func(body string) []string {
		t.Helper()
		return runIDs(f.mlflowOK("POST", "runs/search", tok, body))
	}
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"experiment_ids":["cifar"]}`, []string{c, b, a}},
		{`{"experiment_ids":["cifar"],"filter":"metrics.acc > 0.9 and params.lr = '0.01' and tags.x = 'y' and attributes.status = 'FINISHED'"}`, []string{a}},
		{`{"experiment_ids":["cifar"],"filter_string":"metrics.acc > 0.9","order_by":["metrics.acc ASC"]}`, []string{a, c}},
		{`{"experiment_ids":["cifar"],"filter_string":"attributes.run_name IN ('a', 'c')","order_by":["attributes.run_name"]}`, []string{a, c}},
		{`{"experiment_ids":["cifar"],"filter_string":"tags.mlflow.runName = 'b'"}`, []string{b}},
		{`{"experiment_ids":["nope"]}`, nil},
	} {
		if got := search(tc.body); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("search %s = %v, want %v", tc.body, got, tc.want)
		}
	}
	// Paging: one run a page, with the token of the page before.
	var paged []string
	out := f.mlflowOK("POST", "runs/search", tok, `{"experiment_ids":["cifar"],"max_results":2,"order_by":["metrics.acc DESC"]}`)
	paged = append(paged, runIDs(out)...)
	next, _ := out["next_page_token"].(string)
	if next == "" {
		t.Fatalf("first page has no next_page_token: %v", out)
	}
	out = f.mlflowOK("POST", "runs/search", tok, `{"experiment_ids":["cifar"],"max_results":2,"order_by":["metrics.acc DESC"],"page_token":"`+next+`"}`)
	paged = append(paged, runIDs(out)...)
	if strings.Join(paged, ",") != strings.Join([]string{c, a, b}, ",") || out["next_page_token"] != nil {
		t.Fatalf("pages = %v, last token %v", paged, out["next_page_token"])
	}
	for _, bad := range []struct{ body, names string }{
		{`{"experiment_ids":["cifar"],"filter":"metrics.acc > 0.9 OR params.lr = '1'"}`, "OR"},
		{`{"experiment_ids":["cifar"],"filter":"params.lr > '1'"}`, "params.lr"},
		{`{"experiment_ids":["cifar"],"order_by":["metrics.acc SIDEWAYS"]}`, "SIDEWAYS"},
		{`{"experiment_ids":["cifar"],"page_token":"!!"}`, "page token"},
		{`{"experiment_ids":["cifar"],"run_view_type":"NONE"}`, "run_view_type"},
		{`{"experiment_ids":["cifar"],"max_results":50001}`, "max_results"},
		{`{}`, "experiment_ids"},
	} {
		code, out := f.mlflowCall("POST", "runs/search", tok, bad.body)
		if code != 400 || out["error_code"] != "INVALID_PARAMETER_VALUE" || !strings.Contains(out["message"].(string), bad.names) {
			t.Errorf("search %s: %d %v", bad.body, code, out)
		}
	}

	// delete / restore: hidden from search unless run_view_type asks.
	f.mlflowOK("POST", "runs/delete", tok, `{"run_id":"`+b+`"}`)
	if info := f.mlflowOK("GET", "runs/get?run_id="+b, tok, "")["run"].(map[string]any)["info"].(map[string]any); info["lifecycle_stage"] != "deleted" {
		t.Fatalf("deleted run = %v", info)
	}
	if got := search(`{"experiment_ids":["cifar"]}`); strings.Join(got, ",") != c+","+a {
		t.Fatalf("active runs = %v", got)
	}
	if got := search(`{"experiment_ids":["cifar"],"run_view_type":"DELETED_ONLY"}`); strings.Join(got, ",") != b {
		t.Fatalf("deleted runs = %v", got)
	}
	if got := search(`{"experiment_ids":["cifar"],"run_view_type":"ALL"}`); len(got) != 3 {
		t.Fatalf("all runs = %v", got)
	}
	f.mlflowOK("POST", "runs/restore", tok, `{"run_id":"`+b+`"}`)
	if got := search(`{"experiment_ids":["cifar"]}`); len(got) != 3 {
		t.Fatalf("after restore = %v", got)
	}
	if code, out := f.mlflowCall("POST", "runs/delete", tok, `{"run_id":"01aaaaaaaaaaaaaaaaaaaaaaaa"}`); code != 404 || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("deleting no run: %d %v", code, out)
	}

	// delete-tag and run_name.
	f.mlflowOK("POST", "runs/delete-tag", tok, `{"run_id":"`+c+`","key":"x"}`)
	if code, out := f.mlflowCall("POST", "runs/delete-tag", tok, `{"run_id":"`+c+`","key":"x"}`); code != 404 || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("deleting a missing tag: %d %v", code, out)
	}
	f.mlflowOK("POST", "runs/update", tok, `{"run_id":"`+c+`","run_name":"renamed"}`)
	run := f.mlflowOK("GET", "runs/get?run_id="+c, tok, "")["run"].(map[string]any)
	if run["info"].(map[string]any)["run_name"] != "renamed" || strings.Contains(fmt.Sprint(run["data"]), "key:x ") {
		t.Fatalf("renamed run = %v", run)
	}
	if got := search(`{"experiment_ids":["cifar"],"filter":"attributes.run_name = 'renamed' and tags.mlflow.runName = 'renamed'"}`); strings.Join(got, ",") != c {
		t.Fatalf("search by the new name = %v", got)
	}
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+c, tok, "", &j)
	if j.Name != "renamed" || j.Experiment != "cifar" {
		t.Fatalf("renamed job = %s in %s", j.Name, j.Experiment)
	}
	if code, out := f.mlflowCall("POST", "runs/update", tok, `{"run_id":"`+c+`","run_name":"a\nb"}`); code != 400 || !strings.Contains(out["message"].(string), "run_name") {
		t.Fatalf("bad run_name: %d %v", code, out)
	}
}

func TestMLflowMetricHistoryAndArtifacts(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	id := f.mlflowRunIn(tok, "0", "r", 1764200000000)
	for step := 1; step <= 5; step++ {
		f.mlflowOK("POST", "runs/log-metric", tok, fmt.Sprintf(`{"run_id":%q,"key":"loss","value":%d,"timestamp":%d,"step":%d}`, id, 10-step, 1764200000000+step, step))
	}
	out := f.mlflowOK("GET", "metrics/get-history?run_id="+id+"&metric_key=loss&max_results=3", tok, "")
	ms := out["metrics"].([]any)
	if len(ms) != 3 || ms[0].(map[string]any)["step"] != float64(1) || ms[0].(map[string]any)["value"] != float64(9) || ms[0].(map[string]any)["timestamp"] != float64(1764200000001) {
		t.Fatalf("first page of the history = %v", out)
	}
	out = f.mlflowOK("GET", "metrics/get-history?run_id="+id+"&metric_key=loss&max_results=3&page_token="+out["next_page_token"].(string), tok, "")
	if ms := out["metrics"].([]any); len(ms) != 2 || ms[1].(map[string]any)["step"] != float64(5) || out["next_page_token"] != nil {
		t.Fatalf("second page = %v", out)
	}
	if out := f.mlflowOK("GET", "metrics/get-history?run_uuid="+id+"&metric_key=nope", tok, ""); len(out["metrics"].([]any)) != 0 {
		t.Fatalf("history of a metric the run lacks = %v", out)
	}
	if code, out := f.mlflowCall("GET", "metrics/get-history?run_id="+id, tok, ""); code != 400 || !strings.Contains(out["message"].(string), "metric_key") {
		t.Fatalf("no metric_key: %d %v", code, out)
	}

	ctx := context.Background()
	for _, p := range []string{"model/MLmodel", "model/data/weights.bin", "metrics.json"} {
		if err := f.g.artifacts.Put(ctx, "jobs/"+id+"/outputs/"+p, strings.NewReader("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	files := func(q string) string {
		out := f.mlflowOK("GET", "artifacts/list?run_id="+id+q, tok, "")
		var s []string
		for _, fi := range out["files"].([]any) {
			m := fi.(map[string]any)
			s = append(s, fmt.Sprintf("%v:%v:%v", m["path"], m["is_dir"], m["file_size"]))
		}
		return strings.Join(s, " ")
	}
	if got := files(""); got != "metrics.json:false:10 model:true:<nil>" {
		t.Fatalf("artifacts at the root = %s", got)
	}
	if got := files("&path=model"); got != "model/MLmodel:false:10 model/data:true:<nil>" {
		t.Fatalf("artifacts under model = %s", got)
	}
	if code, out := f.mlflowCall("GET", "artifacts/list?run_id="+id+"&path=../x", tok, ""); code != 400 || !strings.Contains(out["message"].(string), "path") {
		t.Fatalf("path ../x: %d %v", code, out)
	}
}

// TestMLflowWorkspaceIsolation: a token of workspace B sees none of A's
// experiments or runs through the new routes.
func TestMLflowWorkspaceIsolation(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-b", api.Quotas{})
	a := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	b := f.token("team-b", api.ScopeRead, api.ScopeSubmit).Secret
	f.mlflowOK("POST", "experiments/create", a, `{"name":"secret-exp"}`)
	f.mlflowOK("POST", "experiments/set-experiment-tag", a, `{"experiment_id":"secret-exp","key":"k","value":"v"}`)
	run := f.mlflowRunIn(a, "secret-exp", "r", 1764200000000)
	f.mlflowOK("POST", "runs/log-metric", a, `{"run_id":"`+run+`","key":"acc","value":1,"timestamp":1764200000000,"step":1}`)

	if got := expNames(f.mlflowOK("GET", "experiments/list?view_type=ALL", b, "")); strings.Join(got, ",") != "Default" {
		t.Fatalf("B's experiments/list = %v", got)
	}
	if got := expNames(f.mlflowOK("POST", "experiments/search", b, `{"view_type":"ALL"}`)); strings.Join(got, ",") != "Default" {
		t.Fatalf("B's experiments/search = %v", got)
	}
	if got := runIDs(f.mlflowOK("POST", "runs/search", b, `{"experiment_ids":["secret-exp","0"],"run_view_type":"ALL"}`)); len(got) != 0 {
		t.Fatalf("B's runs/search = %v", got)
	}
	for _, c := range []struct{ method, endpoint, body string }{
		{"POST", "experiments/delete", `{"experiment_id":"secret-exp"}`},
		{"POST", "experiments/restore", `{"experiment_id":"secret-exp"}`},
		{"POST", "experiments/update", `{"experiment_id":"secret-exp","new_name":"x"}`},
		{"POST", "experiments/set-experiment-tag", `{"experiment_id":"secret-exp","key":"k","value":"w"}`},
		{"POST", "runs/delete", `{"run_id":"` + run + `"}`},
		{"POST", "runs/restore", `{"run_id":"` + run + `"}`},
		{"POST", "runs/delete-tag", `{"run_id":"` + run + `","key":"mlflow.runName"}`},
		{"GET", "metrics/get-history?metric_key=acc&run_id=" + run, ""},
		{"GET", "artifacts/list?run_id=" + run, ""},
	} {
		if code, out := f.mlflowCall(c.method, c.endpoint, b, c.body); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
			t.Errorf("B: %s %s: %d %v", c.method, c.endpoint, code, out)
		}
	}
	if exp := f.mlflowOK("GET", "experiments/get?experiment_id=secret-exp", a, "")["experiment"].(map[string]any); exp["lifecycle_stage"] != "active" || len(exp["tags"].([]any)) != 1 {
		t.Fatalf("A's experiment after B's calls = %v", exp)
	}
}

// TestMLflowUnknownEndpoints: what jobgate does not serve answers MLflow's
// ENDPOINT_NOT_FOUND, under both of MLflow's prefixes.
func TestMLflowUnknownEndpoints(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead).Secret
	for _, p := range []string{mlflowPrefix + "runs/log-inputs", mlflowPrefix + "model-versions/transition-stage",
		mlflowPreviewPrefix + "experiments/list", mlflowPrefix + "experimentsset-experiment-tag"} {
		code, body := f.call("GET", p, tok, "")
		if code != http.StatusNotFound || !strings.Contains(body, `"error_code":"ENDPOINT_NOT_FOUND"`) {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	// A served path with another method is still a 405, in MLflow's words.
	if code, body := f.call("GET", mlflowPrefix+"runs/delete", tok, ""); code != http.StatusMethodNotAllowed || !strings.Contains(body, `"error_code":"ENDPOINT_NOT_FOUND"`) {
		t.Errorf("GET runs/delete: %d %s", code, body)
	}
}

// TestMLflowSearchWithAJobToken: a job's own token finds the runs of its
// job tree only.
func TestMLflowSearchWithAJobToken(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	var j api.Job
	f.mustCall("POST", "/v1/jobs", tok, jobBody, &j)
	jobTok := f.jobToken(DefaultWorkspace, j.ID)
	mine := f.mlflowRunIn(jobTok, "0", "nested", 1764200000000)
	other := f.mlflowRunIn(tok, "0", "notebook", 1764200001000)
	// Newest first: the job (created now), then the runs by start_time.
	if got := runIDs(f.mlflowOK("POST", "runs/search", jobTok, `{"experiment_ids":["0"]}`)); strings.Join(got, ",") != j.ID+","+mine {
		t.Fatalf("the job token's search = %v, want its job and %s", got, mine)
	}
	if got := runIDs(f.mlflowOK("POST", "runs/search", tok, `{"experiment_ids":["0"]}`)); strings.Join(got, ",") != j.ID+","+other+","+mine {
		t.Fatalf("the workspace token's search = %v", got)
	}
}

// TestMLflowBulkHistory: metrics/get-history-bulk-interval answers each
// run's points of one metric, sampled down to max_results with the first
// and last kept, and refuses what it cannot read.
func TestMLflowBulkHistory(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret
	a := f.mlflowRunIn(tok, "0", "a", 1764200000000)
	b := f.mlflowRunIn(tok, "0", "b", 1764200000000)
	for step := 1; step <= 9; step++ {
		for _, id := range []string{a, b} {
			f.mlflowOK("POST", "runs/log-metric", tok, fmt.Sprintf(`{"run_id":%q,"key":"loss","value":%d,"timestamp":1764200000000,"step":%d}`, id, step, step))
		}
	}
	got := func(q string) []string {
		t.Helper()
		var pts []string
		for _, m := range f.mlflowOK("GET", "metrics/get-history-bulk-interval?metric_key=loss&"+q, tok, "")["metrics"].([]any) {
			m := m.(map[string]any)
			who := "a"
			if m["run_id"] == b {
				who = "b"
			}
			pts = append(pts, fmt.Sprintf("%s%v", who, m["step"]))
		}
		return pts
	}
	for q, want := range map[string]string{
		"run_ids=" + a + "&run_ids=" + b + "&max_results=3": "a1,a5,a9,b1,b5,b9",
		"run_ids=" + a + "&start_step=2&end_step=4":         "a2,a3,a4",
		"run_ids=" + b + "&max_results=1":                   "b9",
	} {
		if g := strings.Join(got(q), ","); g != want {
			t.Errorf("%s = %s, want %s", q, g, want)
		}
	}
	for q, names := range map[string]string{
		"metric_key=loss": "'run_ids'",
		"run_ids=" + a:    "'metric_key'",
		"metric_key=loss&run_ids=" + a + "&max_results=0": "'max_results'",
		"metric_key=loss&run_ids=" + a + "&start_step=3":  "'start_step'",
	} {
		code, out := f.mlflowCall("GET", "metrics/get-history-bulk-interval?"+q, tok, "")
		if code != http.StatusBadRequest || out["error_code"] != "INVALID_PARAMETER_VALUE" || !strings.Contains(out["message"].(string), names) {
			t.Errorf("%s: %d %v", q, code, out)
		}
	}
	if code, out := f.mlflowCall("GET", "metrics/get-history-bulk-interval?metric_key=loss&run_ids=nope", tok, ""); code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Errorf("unknown run: %d %v", code, out)
	}
}
