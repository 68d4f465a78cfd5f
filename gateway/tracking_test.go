package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// jobToken starts job id's first attempt on a made-up worker, as the
// scheduler and a worker would, and mints its token the way the worker does.
func (f *fixture) jobToken(ws, id string) string {
	f.t.Helper()
	ctx := context.Background()
	_, placement, err := f.st.Reserve(ctx, id, 1, "w-test", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Start(ctx, ws, id, 1, "w-test", placement, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	tok, err := f.st.CreateJobToken(ctx, id, ws, 1, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// TestJobTokenRoutes walks every route with a job's own token: routes that
// do not allow job tokens answer 403; the others reach the job and its
// descendants, and 403 for a sibling job of the same workspace.
func TestJobTokenRoutes(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	adminA := f.token("team-a", api.ScopeAdmin)
	for key, rule := range f.g.rules {
		method, path, _ := strings.Cut(key, " ")
		if rule.Public {
			continue
		}
		for _, target := range []string{"own", "child", "sibling"} {
			t.Run(fmt.Sprintf("%s %s/%s", method, path, target), func(t *testing.T) {
				o := f.objectsIn("team-a", adminA.Secret)
				owner := o.job
				switch target {
				case "child":
					var parent api.Job
					f.mustCall("POST", "/v1/jobs", adminA.Secret, jobBody, &parent)
					var kid api.Job
					f.mustCall("POST", "/v1/jobs", adminA.Secret, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+parent.ID+`"}`, &kid)
					// Grandchild too: the tree is followed all the way up.
					var grandkid api.Job
					f.mustCall("POST", "/v1/jobs", adminA.Secret, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+kid.ID+`"}`, &grandkid)
					owner, o.job = parent.ID, grandkid.ID
					f.mustCall("POST", "/v1/jobs/"+grandkid.ID+"/tags", adminA.Secret, `{"tags":{"t":"1"}}`, nil)
					_ = f.g.artifacts.Put(context.Background(), "jobs/"+grandkid.ID+"/outputs/out.txt", strings.NewReader("out"))
				case "sibling":
					var other api.Job
					f.mustCall("POST", "/v1/jobs", adminA.Secret, jobBody, &other)
					owner = other.ID
				}
				tok := f.jobToken("team-a", owner)
				code, body := f.call(method, fill(method, path, o), tok, bodyFor(method, path, o))
				names := namesObject(method, path) && !strings.Contains(path, "experiment")
				switch {
				case !rule.Job:
					if code != http.StatusForbidden {
						t.Fatalf("got %d %s, want 403 (job tokens may not call this)", code, body)
					}
				case target == "sibling" && names:
					if code != http.StatusForbidden {
						t.Fatalf("got %d %s, want 403 (not the token's job tree)", code, body)
					}
				case method == http.MethodPut && strings.HasPrefix(path, mlflowArtifactsPrefix):
					// The job tree's job is no running tracked run: past
					// the token's reach, the proxy says so.
					if code != http.StatusBadRequest || !strings.Contains(body, "INVALID_STATE") {
						t.Fatalf("got %d %s, want 400 INVALID_STATE (not a running tracked run)", code, body)
					}
				default:
					if code/100 != 2 {
						t.Fatalf("got %d %s, want 2xx", code, body)
					}
				}
				if method == http.MethodPost && path == "/v1/jobs" {
					// A child asks for nothing the token's job lacks
					// (TestJobTokenChildCannotEscalate has every field).
					if code, body := f.call(method, path, tok, processBody); code != http.StatusForbidden {
						t.Fatalf("process child of a container job: %d %s, want 403", code, body)
					}
				}
			})
		}
	}
}

func TestJobTokenSubmitsChildrenAndDiesWhenRevoked(t *testing.T) {
	f := newFixture(t)
	var parent, other api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &parent)
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &other)
	tok := f.jobToken(DefaultWorkspace, parent.ID)

	var kid api.Job
	f.mustCall("POST", "/v1/jobs", tok, jobBody, &kid)
	if kid.Spec.ParentID != parent.ID {
		t.Fatalf("child submitted with the job token has parent %q, want %s", kid.Spec.ParentID, parent.ID)
	}
	var grandkid api.Job
	f.mustCall("POST", "/v1/jobs", tok, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+kid.ID+`"}`, &grandkid)
	if code, body := f.call("POST", "/v1/jobs", tok, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+other.ID+`"}`); code != http.StatusForbidden {
		t.Fatalf("child of another job with a job token: %d %s, want 403", code, body)
	}
	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", systemToken, "", &audit)
	if audit.Entries[0].Actor != "job:"+parent.ID {
		t.Fatalf("audit actor of a job-token submit = %q, want job:%s", audit.Entries[0].Actor, parent.ID)
	}
	// Two runs of one script sending the same Idempotency-Key each get a
	// child of their own.
	var sibling api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &sibling)
	siblingTok := f.jobToken(DefaultWorkspace, sibling.ID)
	idem := func(tok string) api.Job {
		req, _ := http.NewRequest("POST", f.ts.URL+"/v1/jobs", strings.NewReader(jobBody))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", "eval-step")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j api.Job
		if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&j) != nil {
			t.Fatalf("idempotent submit: %d", resp.StatusCode)
		}
		return j
	}
	a1, a2, b1 := idem(tok), idem(tok), idem(siblingTok)
	if a1.ID != a2.ID || b1.ID == a1.ID || a1.Spec.ParentID != parent.ID || b1.Spec.ParentID != sibling.ID {
		t.Fatalf("same key: job %s, again %s (parent %s); sibling's %s (parent %s)", a1.ID, a2.ID, a1.Spec.ParentID, b1.ID, b1.Spec.ParentID)
	}

	// The token is its attempt's: requeued (its worker lost), the job's old
	// token is dead, though not revoked.
	if err := f.st.Requeue(context.Background(), DefaultWorkspace, sibling.ID, 1,
		store.Outcome{Status: api.StatusFailed, Reason: api.ReasonWorkerLost}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, body := f.call("GET", "/v1/jobs/"+sibling.ID, siblingTok, ""); code != http.StatusUnauthorized {
		t.Fatalf("token of a requeued attempt: %d %s, want 401", code, body)
	}

	if err := f.st.RevokeJobToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if code, body := f.call("GET", "/v1/jobs/"+parent.ID, tok, ""); code != http.StatusUnauthorized || !strings.Contains(body, "job token") {
		t.Fatalf("revoked job token: %d %s, want 401 naming the job token", code, body)
	}
	if strings.Contains(testenv.RedisValues(t, f.st.Redis()), tok) {
		t.Fatal("redis holds a job token in clear")
	}
}

func TestPostMetricsParamsAndTags(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"tags":{"team":"vision"}}`, &j)
	tok := f.jobToken(DefaultWorkspace, j.ID)
	path := "/v1/jobs/" + j.ID

	f.mustCall("POST", path+"/metrics", tok, `{"metrics":[{"name":"loss","value":0.9},{"name":"loss","value":0.5},{"name":"acc","value":0.7,"step":10}]}`, nil)
	f.mustCall("POST", path+"/metrics", tok, `{"metrics":[{"name":"loss","value":0.3,"timestamp":"2026-01-02T03:04:05Z"}]}`, nil)
	var m api.JobMetrics
	f.mustCall("GET", path+"/metrics", tok, "", &m)
	loss := m.Metrics["loss"]
	if len(loss) != 3 || loss[0].Step != 0 || loss[1].Step != 1 || loss[2].Step != 2 || loss[2].Value != 0.3 ||
		!loss[2].Timestamp.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("loss = %+v; want steps 0,1,2 ending 0.3 at the given time", loss)
	}
	if acc := m.Metrics["acc"]; len(acc) != 1 || acc[0].Step != 10 {
		t.Fatalf("acc = %+v; want one point at step 10", acc)
	}

	f.mustCall("POST", path+"/params", tok, `{"params":{"lr":"0.01","epochs":"3"}}`, nil)
	f.mustCall("POST", path+"/params", tok, `{"params":{"lr":"0.01"}}`, nil) // the same again is fine
	if code, body := f.call("POST", path+"/params", tok, `{"params":{"lr":"0.1"}}`); code != http.StatusConflict || !strings.Contains(body, "lr") {
		t.Fatalf("changing a param: %d %s, want 409 naming it", code, body)
	}
	f.mustCall("POST", path+"/tags", tok, `{"tags":{"stage":"tuned"}}`, nil)
	f.mustCall("POST", path+"/tags", tok, `{"tags":{"stage":"final"}}`, nil)

	var got api.Job
	f.mustCall("GET", path, tok, "", &got)
	if got.Params["lr"] != "0.01" || got.Params["epochs"] != "3" || got.Tags["stage"] != "final" || got.Tags["team"] != "vision" {
		t.Fatalf("job params %v tags %v; want lr=0.01 epochs=3, stage=final team=vision", got.Params, got.Tags)
	}
	if got.Metrics["loss"] != 0.3 || got.Metrics["acc"] != 0.7 {
		t.Fatalf("job metrics (last values) = %v", got.Metrics)
	}

	bad := []struct{ name, path, body, mentions string }{
		{"no points", "/metrics", `{"metrics":[]}`, "metrics"},
		{"bad name", "/metrics", `{"metrics":[{"name":"1x","value":1}]}`, "metrics[0].name"},
		{"negative step", "/metrics", `{"metrics":[{"name":"x","value":1},{"name":"x","value":1,"step":-2}]}`, "metrics[1].step"},
		{"value not a number", "/metrics", `{"metrics":[{"name":"x","value":"high"}]}`, "value"},
		{"unknown field", "/metrics", `{"points":[]}`, "points"},
		{"no value", "/metrics", `{"metrics":[{"name":"x"}]}`, "metrics[0].value is required"},
		{"bad timestamp", "/metrics", `{"metrics":[{"name":"x","value":1,"timestamp":"yesterday"}]}`, "metrics[0].timestamp"},
		{"bad param key", "/params", `{"params":{"a|b":"1"}}`, "a|b"},
		{"long tag", "/tags", `{"tags":{"t":"` + strings.Repeat("x", 9000) + `"}}`, "at most"},
	}
	for _, tt := range bad {
		code, body := f.call("POST", path+tt.path, tok, tt.body)
		if code/100 != 4 || !strings.Contains(body, tt.mentions) {
			t.Errorf("%s: %d %s, want 4xx mentioning %q", tt.name, code, body, tt.mentions)
		}
	}
	if code, body := f.call("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"tags":{"bad key!":"v"}}`); code != http.StatusUnprocessableEntity || !strings.Contains(body, "bad key!") {
		t.Fatalf("spec with a bad tag key: %d %s", code, body)
	}
}

// mlflowCall posts (or gets) like MLflow's Python client: JSON bodies, a
// bearer token from MLFLOW_TRACKING_TOKEN.
func (f *fixture) mlflowCall(method, endpoint, token, body string) (int, map[string]any) {
	f.t.Helper()
	code, b := f.call(method, mlflowPrefix+endpoint, token, body)
	var out map[string]any
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		f.t.Fatalf("%s %s: %d, not JSON: %s", method, endpoint, code, b)
	}
	return code, out
}

func (f *fixture) mlflowOK(method, endpoint, token, body string) map[string]any {
	f.t.Helper()
	code, out := f.mlflowCall(method, endpoint, token, body)
	if code != http.StatusOK {
		f.t.Fatalf("%s %s: %d %v", method, endpoint, code, out)
	}
	return out
}

// TestMLflowClientInsideAJob replays the requests MLflow's Python client
// (2.x) sends for a script run with MLFLOW_RUN_ID set to the job:
// mlflow.start_run() → runs/get, runs/update RUNNING; log_param, log_metric,
// log_metrics/log_params/set_tags (log-batch), set_tag; end_run() →
// runs/update FINISHED. The bodies are the shapes the client sends.
func TestMLflowClientInsideAJob(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"name":"train","experiment":"mnist","image":"localhost/x:1","command":["x"]}`, &j)
	tok := f.jobToken(DefaultWorkspace, j.ID)

	run := f.mlflowOK("GET", "runs/get?run_uuid="+j.ID+"&run_id="+j.ID, tok, "")["run"].(map[string]any)
	info := run["info"].(map[string]any)
	if info["run_id"] != j.ID || info["experiment_id"] != "mnist" || info["status"] != "RUNNING" || info["lifecycle_stage"] != "active" ||
		info["artifact_uri"] != "file:///outputs" {
		t.Fatalf("runs/get info = %v", info)
	}
	f.mlflowOK("POST", "runs/update", tok, `{"run_uuid": "`+j.ID+`", "run_id": "`+j.ID+`", "status": "RUNNING"}`)
	f.mlflowOK("POST", "runs/log-parameter", tok, `{"run_uuid": "`+j.ID+`", "run_id": "`+j.ID+`", "key": "lr", "value": "0.01"}`)
	f.mlflowOK("POST", "runs/log-metric", tok, `{"run_uuid": "`+j.ID+`", "run_id": "`+j.ID+`", "key": "accuracy", "value": 0.91, "timestamp": 1764200000000, "step": 0}`)
	// Older clients send int64 fields as strings (proto3's JSON form).
	f.mlflowOK("POST", "runs/log-metric", tok, `{"run_id": "`+j.ID+`", "key": "accuracy", "value": 0.93, "timestamp": "1764200001000", "step": "1"}`)
	f.mlflowOK("POST", "runs/log-batch", tok, `{"run_id": "`+j.ID+`", "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1764200002000, "step": 0}, {"key": "loss", "value": 0.25, "timestamp": 1764200003000, "step": 1}], "params": [{"key": "epochs", "value": "2"}], "tags": [{"key": "framework", "value": "none"}]}`)
	f.mlflowOK("POST", "runs/set-tag", tok, `{"run_uuid": "`+j.ID+`", "run_id": "`+j.ID+`", "key": "mlflow.source.name", "value": "train.py"}`)

	run = f.mlflowOK("GET", "runs/get?run_id="+j.ID, tok, "")["run"].(map[string]any)
	data, _ := json.Marshal(run["data"])
	for _, want := range []string{`{"key":"accuracy","step":1,"timestamp":1764200001000,"value":0.93}`, `{"key":"loss","step":1,"timestamp":1764200003000,"value":0.25}`,
		`{"key":"lr","value":"0.01"}`, `{"key":"epochs","value":"2"}`, `{"key":"framework","value":"none"}`, `{"key":"mlflow.source.name","value":"train.py"}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("runs/get data lacks %s: %s", want, data)
		}
	}
	var m api.JobMetrics
	f.mustCall("GET", "/v1/jobs/"+j.ID+"/metrics", systemToken, "", &m)
	if acc := m.Metrics["accuracy"]; len(acc) != 2 || acc[1].Value != 0.93 || acc[1].Timestamp.UnixMilli() != 1764200001000 {
		t.Fatalf("accuracy through the jobgate API = %+v", acc)
	}
	// log_metric in a loop without a step (the client sends step 0) keeps
	// every value, at steps 0, 1, 2.
	for _, v := range []string{"0.1", "0.2", "0.3"} {
		f.mlflowOK("POST", "runs/log-metric", tok, `{"run_id": "`+j.ID+`", "key": "lr_now", "value": `+v+`, "timestamp": 1764200004000, "step": 0}`)
	}
	f.mustCall("GET", "/v1/jobs/"+j.ID+"/metrics?name=lr_now", systemToken, "", &m)
	if pts := m.Metrics["lr_now"]; len(pts) != 3 || pts[2].Step != 2 || pts[2].Value != 0.3 {
		t.Fatalf("three log_metric calls without a step = %+v, want steps 0, 1, 2", pts)
	}
	// end_run() on a job jobgate runs changes nothing: its process decides.
	out := f.mlflowOK("POST", "runs/update", tok, `{"run_uuid": "`+j.ID+`", "run_id": "`+j.ID+`", "status": "FINISHED", "end_time": 1764200009000}`)
	if out["run_info"].(map[string]any)["status"] != "RUNNING" {
		t.Fatalf("runs/update FINISHED on a jobgate job: %v", out)
	}

	// Errors come in MLflow's shape.
	errCases := []struct {
		name, method, endpoint, body string
		status                       int
		code                         string
	}{
		{"unknown run", "GET", "runs/get?run_id=01nosuchrun", "", 404, "RESOURCE_DOES_NOT_EXIST"},
		{"param changed", "POST", "runs/log-parameter", `{"run_id": "` + j.ID + `", "key": "lr", "value": "0.5"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"missing run id", "POST", "runs/log-metric", `{"key": "x", "value": 1, "timestamp": 1, "step": 0}`, 400, "INVALID_PARAMETER_VALUE"},
		{"NaN", "POST", "runs/log-metric", `{"run_id": "` + j.ID + `", "key": "x", "value": "NaN", "timestamp": 1, "step": 0}`, 400, "INVALID_PARAMETER_VALUE"},
		{"too many batch params", "POST", "runs/log-batch", `{"run_id": "` + j.ID + `", "params": [` + strings.Repeat(`{"key":"k","value":"v"},`, 100) + `{"key":"k","value":"v"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"bad status", "POST", "runs/update", `{"run_id": "` + j.ID + `", "status": "DONE"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"not JSON", "POST", "runs/set-tag", `{"run_id": `, 400, "INVALID_PARAMETER_VALUE"},
	}
	for _, tt := range errCases {
		code, out := f.mlflowCall(tt.method, tt.endpoint, tok, tt.body)
		if code != tt.status || out["error_code"] != tt.code || out["message"] == "" {
			t.Errorf("%s: %d %v, want %d %s with a message", tt.name, code, out, tt.status, tt.code)
		}
	}
}

// TestMLflowExperimentsAndTrackedRuns replays mlflow.set_experiment("name")
// and a run started outside any job (runs/create), nested runs included.
func TestMLflowExperimentsAndTrackedRuns(t *testing.T) {
	f := newFixture(t)
	tok := f.token(DefaultWorkspace, api.ScopeRead, api.ScopeSubmit).Secret

	code, out := f.mlflowCall("GET", "experiments/get-by-name?experiment_name=cifar", tok, "")
	if code != 404 || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("get-by-name of a new experiment: %d %v", code, out)
	}
	out = f.mlflowOK("POST", "experiments/create", tok, `{"name": "cifar"}`)
	if out["experiment_id"] != "cifar" {
		t.Fatalf("experiments/create = %v", out)
	}
	if code, out := f.mlflowCall("POST", "experiments/create", tok, `{"name": "cifar"}`); code != 400 || out["error_code"] != "RESOURCE_ALREADY_EXISTS" {
		t.Fatalf("creating it again: %d %v", code, out)
	}
	exp := f.mlflowOK("GET", "experiments/get-by-name?experiment_name=cifar", tok, "")["experiment"].(map[string]any)
	if exp["experiment_id"] != "cifar" || exp["name"] != "cifar" || exp["lifecycle_stage"] != "active" {
		t.Fatalf("get-by-name = %v", exp)
	}
	if def := f.mlflowOK("GET", "experiments/get-by-name?experiment_name=Default", tok, "")["experiment"].(map[string]any); def["experiment_id"] != "0" || def["creation_time"] != nil {
		t.Fatalf("Default experiment = %v", def)
	}

	run := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id": "cifar", "user_id": "ana", "start_time": 1764200000000, "tags": [{"key": "mlflow.user", "value": "ana"}, {"key": "mlflow.runName", "value": "baseline"}], "run_name": "baseline"}`)["run"].(map[string]any)
	info := run["info"].(map[string]any)
	id := info["run_id"].(string)
	if info["status"] != "RUNNING" || info["run_name"] != "baseline" || info["experiment_id"] != "cifar" || info["start_time"] != float64(1764200000000) ||
		info["artifact_uri"] != "mlflow-artifacts:/"+info["run_id"].(string) {
		t.Fatalf("runs/create info = %v", info)
	}
	nested := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id": "cifar", "start_time": 1764200001000, "tags": [{"key": "mlflow.parentRunId", "value": "`+id+`"}], "run_name": "fold-1"}`)["run"].(map[string]any)
	nestedID := nested["info"].(map[string]any)["run_id"].(string)
	f.mlflowOK("POST", "runs/log-metric", tok, `{"run_id": "`+id+`", "key": "accuracy", "value": 0.8, "timestamp": 1764200002000, "step": 0}`)

	var kids struct{ Jobs []api.Job }
	f.mustCall("GET", "/v1/jobs/"+id+"/children", tok, "", &kids)
	if len(kids.Jobs) != 1 || kids.Jobs[0].ID != nestedID {
		t.Fatalf("children of the parent run = %+v, want the nested run", kids.Jobs)
	}
	var rows struct{ Jobs []api.Job }
	f.mustCall("GET", "/v1/experiments/cifar/jobs?sort=-accuracy", tok, "", &rows)
	if len(rows.Jobs) != 2 || rows.Jobs[0].ID != id || rows.Jobs[0].Metrics["accuracy"] != 0.8 {
		t.Fatalf("experiment view = %+v", rows.Jobs)
	}

	// end_run(): FINISHED ends the tracked run; a second end changes nothing.
	out = f.mlflowOK("POST", "runs/update", tok, `{"run_uuid": "`+id+`", "run_id": "`+id+`", "status": "FINISHED", "end_time": 1764200009000}`)
	if out["run_info"].(map[string]any)["status"] != "FINISHED" {
		t.Fatalf("runs/update FINISHED = %v", out)
	}
	out = f.mlflowOK("POST", "runs/update", tok, `{"run_id": "`+id+`", "status": "FAILED"}`)
	if out["run_info"].(map[string]any)["status"] != "FINISHED" {
		t.Fatalf("a second end changed the run: %v", out)
	}
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+id, tok, "", &j)
	if j.Status != api.StatusSucceeded || j.Spec.Mode != api.ModeTracked {
		t.Fatalf("tracked run after FINISHED: %s %s", j.Status, j.Spec.Mode)
	}
	// Canceling a tracked run ends it at once (no worker would).
	f.mustCall("POST", "/v1/jobs/"+nestedID+"/cancel", tok, "", &j)
	if j.Status != api.StatusCanceled {
		t.Fatalf("canceled tracked run is %s", j.Status)
	}
	// No run in an experiment that does not exist, nor under a canceled parent.
	if code, out := f.mlflowCall("POST", "runs/create", tok, `{"experiment_id": "nope", "start_time": 1}`); code != 404 || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("run in an unknown experiment: %d %v", code, out)
	}
	if code, out := f.mlflowCall("POST", "runs/create", tok, `{"experiment_id": "cifar", "tags": [{"key": "mlflow.parentRunId", "value": "`+nestedID+`"}]}`); code != 400 || out["error_code"] != "INVALID_STATE" {
		t.Fatalf("run under a canceled parent: %d %v", code, out)
	}
	// A tracked run cannot be submitted as a job.
	if code, body := f.call("POST", "/v1/jobs", tok, `{"mode":"tracked","command":["x"]}`); code != http.StatusUnprocessableEntity {
		t.Fatalf("submitting mode tracked: %d %s", code, body)
	}
}

// TestEndTrackedRuns: when a job ends, the MLflow runs it opened and never
// ended (and theirs) end too; its child jobs are left to end by themselves.
func TestEndTrackedRuns(t *testing.T) {
	f := newFixture(t)
	var job, kid api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &job)
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+job.ID+`"}`, &kid)
	tok := f.jobToken(DefaultWorkspace, job.ID)
	run := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id": "0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"].(string)
	nested := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id": "0", "tags": [{"key": "mlflow.parentRunId", "value": "`+run+`"}]}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"].(string)
	closed := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id": "0"}`)["run"].(map[string]any)["info"].(map[string]any)["run_id"].(string)
	f.mlflowOK("POST", "runs/update", tok, `{"run_id": "`+closed+`", "status": "FINISHED"}`)

	n, err := f.st.EndTrackedRuns(context.Background(), DefaultWorkspace, job.ID, api.StatusFailed, "run_abandoned: test", time.Now())
	if err != nil || n != 2 {
		t.Fatalf("EndTrackedRuns = %d, %v; want the 2 open runs ended", n, err)
	}
	want := map[string]api.Status{run: api.StatusFailed, nested: api.StatusFailed, closed: api.StatusSucceeded, kid.ID: api.StatusQueued}
	for id, st := range want {
		var j api.Job
		f.mustCall("GET", "/v1/jobs/"+id, systemToken, "", &j)
		if j.Status != st {
			t.Errorf("%s (%s) is %s, want %s", id, j.Spec.Mode, j.Status, st)
		}
	}
}

// TestMLflowRefusalsKeepMLflowWords: the tracking code is shared by the
// REST API and the MLflow dialect, and each answers a refused param, tag or
// metric name in its own words: the REST API names the field ("params: ",
// "tags: ", "metrics: "), MLflow says what its server says, as it did before
// the adapter.
func TestMLflowRefusalsKeepMLflowWords(t *testing.T) {
	f := newFixture(t)
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	f.mustCall("POST", mlflowPrefix+"runs/create", systemToken, `{}`, &run)
	id := run.Run.Info.RunID
	f.mustCall("POST", mlflowPrefix+"runs/log-parameter", systemToken, `{"run_id":"`+id+`","key":"p","value":"1"}`, nil)
	var names []string
	for i := range store.MaxMetricNames + 1 {
		names = append(names, fmt.Sprintf(`{"key":"m%d","value":1,"timestamp":1,"step":0}`, i))
	}
	f.mustCall("POST", mlflowPrefix+"runs/log-batch", systemToken, `{"run_id":"`+id+`","metrics":[`+strings.Join(names[:mlflowMaxBatchMetrics], ",")+`]}`, nil)
	tests := []struct {
		name, path, body, want string
	}{
		{"param changed", "runs/log-parameter", `{"run_id":"` + id + `","key":"p","value":"2"}`,
			`param "p" of job ` + id + `: param already logged with another value ("2")`},
		{"bad tag key", "runs/set-tag", `{"run_id":"` + id + `","key":"","value":"v"}`,
			`tag key "": want 1-250 letters, digits, '_', '-', '.', ' ' or '/'`},
		{"param changed in a batch", "runs/log-batch", `{"run_id":"` + id + `","params":[{"key":"p","value":"3"}]}`,
			`param "p" of job ` + id + `: param already logged with another value ("3")`},
		{"too many metric names", "runs/log-batch", `{"run_id":"` + id + `","metrics":[` + names[mlflowMaxBatchMetrics] + `]}`,
			fmt.Sprintf("a run may have at most %d metric names; points of new names were dropped", store.MaxMetricNames)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("POST", mlflowPrefix+tt.path, systemToken, tt.body)
			var e mlflowError
			if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusBadRequest ||
				e.ErrorCode != string(mlflowInvalidParameter) || e.Message != tt.want {
				t.Fatalf("%d %s, want 400 %s %q", code, body, mlflowInvalidParameter, tt.want)
			}
		})
	}
}
