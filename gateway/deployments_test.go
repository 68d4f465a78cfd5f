package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func deploymentBody(name, model string) string {
	return `{"name":"` + name + `","model":"` + model + `","image":"localhost/jobgate-examples:test","command":["/bin/modelserver"]}`
}

// irisVersions registers n versions of model iris in the default
// workspace and aliases version 1 production.
func (f *fixture) irisVersions(n int) {
	f.t.Helper()
	mj := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": "{}"})
	for range n {
		f.register(systemToken, "iris", mj.ID, "model.json")
	}
	f.mustCall("PUT", "/v1/models/iris/aliases/production", systemToken, `{"version":1}`, nil)
}

// TestDeploymentsAPI: create (an alias resolved), get, list, scale
// (same revision), a model change (a new revision), a deployed version
// that cannot be deleted, delete (202, deleting), and the audit log.
func TestDeploymentsAPI(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(2)
	code, body := f.call("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris@production"))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var d api.Deployment
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Revision != 1 || len(d.Targets) != 1 || d.Targets[0].Version != 1 || d.Targets[0].Ref != "iris@production" ||
		d.Targets[0].SHA256 == "" || d.Status != api.DeploymentDeploying || d.DesiredReplicas != 1 || d.ScoringPath != "/v2/models/iris/infer" {
		t.Fatalf("created %+v", d)
	}
	if code, body := f.call("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris:1")); code != http.StatusConflict {
		t.Fatalf("create again: %d %s, want 409", code, body)
	}
	var list api.DeploymentList
	f.mustCall("GET", "/v1/deployments", systemToken, "", &list)
	if len(list.Deployments) != 1 || list.Deployments[0].Name != "iris" {
		t.Fatalf("list %+v", list)
	}
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"replicas":3}`, &d)
	if d.Revision != 1 || d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Fatalf("after scale: %+v, want revision 1 and 3 replicas", d)
	}
	if code, body := f.call("DELETE", "/v1/models/iris/versions/1", systemToken, ""); code != http.StatusConflict || !strings.Contains(body, "deployment iris") {
		t.Fatalf("delete a deployed version: %d %s, want 409 naming the deployment", code, body)
	}
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"model":"iris:2"}`, &d)
	if d.Revision != 2 || d.Targets[0].Version != 2 {
		t.Fatalf("after a model change: %+v, want revision 2 serving version 2", d)
	}
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"traffic":{"iris:1":90,"iris:2":10}}`, &d)
	if d.Revision != 3 || len(d.Targets) != 2 || d.Targets[0].Weight != 90 || d.DesiredReplicas != 6 {
		t.Fatalf("after a split: %+v, want revision 3 with 2 targets, 90/10, 3 replicas each", d)
	}
	f.mustCall("GET", "/v1/deployments/iris", systemToken, "", &d)
	if d.Revision != 3 {
		t.Fatalf("get: %+v", d)
	}
	code, body = f.call("DELETE", "/v1/deployments/iris", systemToken, "")
	if code != http.StatusAccepted || !strings.Contains(body, `"status":"deleting"`) {
		t.Fatalf("delete: %d %s, want 202 deleting", code, body)
	}
	if code, body := f.call("PATCH", "/v1/deployments/iris", systemToken, `{"replicas":1}`); code != http.StatusConflict {
		t.Fatalf("patch while deleting: %d %s, want 409", code, body)
	}
	if code, _ := f.call("GET", "/v1/deployments/nope", systemToken, ""); code != http.StatusNotFound {
		t.Fatalf("get a missing deployment: %d, want 404", code)
	}
	var audit api.AuditPage
	f.mustCall("GET", "/v1/audit", systemToken, "", &audit)
	var actions []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "deployment.") {
			actions = append(actions, e.Action)
		}
	}
	if got := strings.Join(actions, ","); !strings.Contains(got, "deployment.create") || !strings.Contains(got, "deployment.scale") ||
		!strings.Contains(got, "deployment.update") || !strings.Contains(got, "deployment.delete") {
		t.Fatalf("audit actions %s, want create, scale, update and delete", got)
	}
}

// TestDeploymentBadInputs: every bad input is a 4xx whose message names the
// field, and nothing is stored.
func TestDeploymentBadInputs(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(2)
	base := func(mod func(m map[string]any)) string {
		m := map[string]any{"name": "iris", "model": "iris:1", "image": "localhost/jobgate-examples:test", "command": []string{"/bin/modelserver"}}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"bad name", base(func(m map[string]any) { m["name"] = "-x" }), "name"},
		{"long name", base(func(m map[string]any) { m["name"] = strings.Repeat("a", 64) }), "name"},
		{"no model", base(func(m map[string]any) { delete(m, "model") }), "model or traffic"},
		{"model and traffic", base(func(m map[string]any) { m["traffic"] = map[string]int{"iris:1": 100} }), "model or traffic"},
		{"bad model ref", base(func(m map[string]any) { m["model"] = "iris" }), "model"},
		{"missing version", base(func(m map[string]any) { m["model"] = "iris:9" }), "model: no model version iris:9"},
		{"missing alias", base(func(m map[string]any) { m["model"] = "iris@staging" }), "model: no model version iris@staging"},
		{"missing model", base(func(m map[string]any) { m["model"] = "rose:1" }), "model: no model version rose:1"},
		{"traffic sum", base(func(m map[string]any) { delete(m, "model"); m["traffic"] = map[string]int{"iris:1": 50, "iris:2": 40} }), "traffic: the percents sum to 90"},
		{"traffic weight", base(func(m map[string]any) { delete(m, "model"); m["traffic"] = map[string]int{"iris:1": 0, "iris:2": 100} }), "traffic.iris:1"},
		{"traffic ref", base(func(m map[string]any) { delete(m, "model"); m["traffic"] = map[string]int{"iris": 50, "iris:2": 50} }), "traffic.iris"},
		{"traffic same version", base(func(m map[string]any) {
			delete(m, "model")
			m["traffic"] = map[string]int{"iris:1": 50, "iris@production": 50}
		}), "same version"},
		{"replicas and autoscale", base(func(m map[string]any) { m["replicas"] = 1; m["autoscale"] = map[string]int{"max": 2} }), "replicas, autoscale"},
		{"negative replicas", base(func(m map[string]any) { m["replicas"] = -1 }), "replicas"},
		{"too many replicas", base(func(m map[string]any) { m["replicas"] = 1000 }), "replicas"},
		{"max 0", base(func(m map[string]any) { m["autoscale"] = map[string]int{"min": 0, "max": 0} }), "autoscale.max"},
		{"min above max", base(func(m map[string]any) { m["autoscale"] = map[string]int{"min": 3, "max": 2} }), "autoscale.min"},
		{"negative min", base(func(m map[string]any) { m["autoscale"] = map[string]int{"min": -1, "max": 2} }), "autoscale.min"},
		{"target concurrency", base(func(m map[string]any) { m["autoscale"] = map[string]int{"max": 2, "target_concurrency": -1} }), "autoscale.target_concurrency"},
		{"scale down delay", base(func(m map[string]any) { m["autoscale"] = map[string]int{"max": 2, "scale_down_delay_seconds": -5} }), "autoscale.scale_down_delay_seconds"},
		{"no image", base(func(m map[string]any) { delete(m, "image") }), "image"},
		{"bad image", base(func(m map[string]any) { m["image"] = "Bad Image" }), "image"},
		{"no command", base(func(m map[string]any) { delete(m, "command") }), "command"},
		{"empty program", base(func(m map[string]any) { m["command"] = []string{""} }), "command[0]"},
		{"env name", base(func(m map[string]any) { m["env"] = map[string]string{"1X": "y"} }), "env key"},
		{"reserved env", base(func(m map[string]any) { m["env"] = map[string]string{"JOBGATE_PORT": "1"} }), "JOBGATE_"},
		{"gpus nobody has", base(func(m map[string]any) { m["resources"] = map[string]int{"gpus": 2} }), "resources.gpus"},
		{"bad cpus", base(func(m map[string]any) { m["resources"] = map[string]int{"cpus": -1} }), "resources.cpus"},
		{"bad priority", base(func(m map[string]any) { m["priority"] = "urgent" }), "priority"},
		{"readiness path", base(func(m map[string]any) { m["readiness_path"] = "health" }), "readiness_path"},
		{"unknown field", base(func(m map[string]any) { m["replica"] = 2 }), "replica"},
		{"wrong type", base(func(m map[string]any) { m["replicas"] = "two" }), "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("POST", "/v1/deployments", systemToken, tt.body)
			if code/100 != 4 || !strings.Contains(body, tt.field) {
				t.Fatalf("got %d %s, want a 4xx naming %q", code, body, tt.field)
			}
		})
	}
	if names, _ := f.st.DeploymentNames(context.Background(), ""); len(names) != 0 {
		t.Fatalf("bad inputs stored deployments %v", names)
	}
	// The same checks on PATCH.
	f.mustCall("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris:1"), nil)
	for _, tt := range []struct{ body, field string }{
		{`{"model":"iris:7"}`, "model: no model version iris:7"},
		{`{"traffic":{"iris:1":10}}`, "traffic: the percents sum to 10"},
		{`{"model":"iris:1","traffic":{"iris:1":100}}`, "model, traffic"},
		{`{"replicas":1,"autoscale":{"max":1}}`, "replicas, autoscale"},
		{`{"autoscale":{"min":2,"max":1}}`, "autoscale.min"},
		{`{"env":{"JOBGATE_X":"1"}}`, "JOBGATE_"},
		{`{"image":""}`, "image"},
		{`{"name":"other"}`, "name"},
	} {
		code, body := f.call("PATCH", "/v1/deployments/iris", systemToken, tt.body)
		if code/100 != 4 || !strings.Contains(body, tt.field) {
			t.Errorf("PATCH %s: got %d %s, want a 4xx naming %q", tt.body, code, body, tt.field)
		}
	}
	var d api.Deployment
	f.mustCall("GET", "/v1/deployments/iris", systemToken, "", &d)
	if d.Revision != 1 || d.Spec.Model != "iris:1" {
		t.Fatalf("refused patches changed the deployment: %+v", d)
	}
}

// TestDeploymentScopes: a read token reads deployments and changes none.
func TestDeploymentScopes(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(1)
	f.mustCall("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris:1"), nil)
	read := f.token(DefaultWorkspace, api.ScopeRead).Secret
	if code, _ := f.call("GET", "/v1/deployments/iris", read, ""); code != http.StatusOK {
		t.Fatalf("read token GET: %d", code)
	}
	for _, c := range [][3]string{{"POST", "/v1/deployments", deploymentBody("x", "iris:1")}, {"PATCH", "/v1/deployments/iris", `{"replicas":2}`}, {"DELETE", "/v1/deployments/iris", ""}} {
		if code, _ := f.call(c[0], c[1], read, c[2]); code != http.StatusForbidden {
			t.Errorf("read token %s %s: %d, want 403", c[0], c[1], code)
		}
	}
}

// TestDeploymentShowsReplicas: GET shows each replica with its worker,
// address, state and restarts, from the controller's slots, the jobs and
// the workers' endpoints.
func TestDeploymentShowsReplicas(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(1)
	f.mustCall("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris:1"), nil)
	ctx := context.Background()
	if _, err := f.plane.Deploy.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	var d api.Deployment
	f.mustCall("GET", "/v1/deployments/iris", systemToken, "", &d)
	if len(d.Replicas) != 1 || d.Replicas[0].State != api.ReplicaPending || d.Replicas[0].JobID == "" || !strings.Contains(d.Replicas[0].Reason, "waiting") {
		t.Fatalf("before placement: %+v, want one pending replica saying what it waits for", d.Replicas)
	}
	r := d.Replicas[0]
	j, err := f.st.GetJob(ctx, DefaultWorkspace, r.JobID)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := f.st.Reserve(ctx, j.ID, 1, "w1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Start(ctx, DefaultWorkspace, j.ID, 1, "w1", n, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutEndpoint(ctx, store.Endpoint{JobID: j.ID, Attempt: 1, Workspace: DefaultWorkspace, Deployment: "iris", Replica: r.ID,
		Worker: "w1", Address: "127.0.0.1:41234", State: store.EndpointReady, Model: "iris", Version: 1, Revision: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.plane.Deploy.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	d = api.Deployment{}
	f.mustCall("GET", "/v1/deployments/iris", systemToken, "", &d)
	want := api.Replica{ID: r.ID, JobID: j.ID, Revision: 1, Model: "iris", Version: 1, State: api.ReplicaReady, Worker: "w1", Address: "127.0.0.1:41234"}
	if len(d.Replicas) != 1 || d.Replicas[0] != want || d.Status != api.DeploymentReady || d.ReadyReplicas != 1 {
		t.Fatalf("after the endpoint is ready: %+v, want ready with %+v", d, want)
	}
	if j.Spec.Service == nil || j.Spec.TimeoutSeconds != 0 || j.Spec.Service.Deployment != "iris" || j.Spec.Priority != api.PriorityHigh {
		t.Fatalf("replica job spec %+v", j.Spec)
	}
	// A change that rolls is not ready before the controller has seen it:
	// the answer to the PATCH, and a GET, say it deploys.
	d = api.Deployment{}
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"env":{"LEVEL":"2"}}`, &d)
	if d.Revision != 2 || d.Status != api.DeploymentDeploying || !strings.Contains(d.Reason, "revision 2") {
		t.Fatalf("after a rolling change: revision %d, %s (%s); want revision 2 deploying", d.Revision, d.Status, d.Reason)
	}
}

// TestClientsCannotSubmitServiceJobs: a job spec with service, from any
// client path, is a 422 that names the field.
func TestClientsCannotSubmitServiceJobs(t *testing.T) {
	f := newFixture(t)
	svc := `"service":{"deployment":"iris","replica":"r1","revision":1,"model":"iris","version":1,"sha256":"aa"}`
	job := `{"image":"localhost/x:1","command":["x"],` + svc + `}`
	check := func(what string, code int, body string) {
		t.Helper()
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "service") {
			t.Errorf("%s: %d %s, want 422 naming service", what, code, body)
		}
	}
	code, body := f.call("POST", "/v1/jobs", systemToken, job)
	check("POST /v1/jobs", code, body)
	req, _ := http.NewRequest("POST", f.ts.URL+"/v1/jobs", strings.NewReader(job))
	req.Header.Set("Authorization", "Bearer "+systemToken)
	req.Header.Set("Idempotency-Key", "k-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("POST /v1/jobs with an Idempotency-Key", resp.StatusCode, "service")
	code, body = f.call("POST", "/v1/schedules", systemToken, fmt.Sprintf(`{"name":"s","cron":"@daily","job":%s}`, job))
	check("POST /v1/schedules", code, body)
	var tr map[string]any
	_ = json.Unmarshal([]byte(triggerBody("t")), &tr)
	var js map[string]any
	_ = json.Unmarshal([]byte(job), &js)
	tr["job"] = js
	b, _ := json.Marshal(tr)
	code, body = f.call("POST", "/v1/triggers", systemToken, string(b))
	check("POST /v1/triggers", code, body)
	var list api.JobList
	f.mustCall("GET", "/v1/jobs", systemToken, "", &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("jobs made: %+v", list.Jobs)
	}
}

// TestDeploymentReadyWhileOldReplicaDrains: once a rolling update's new
// replica is ready and the old one drains (taken out of the routers, its
// job stopping), the controller says ready, and so does the API: a
// draining replica of the older revision is no rollout under way.
func TestDeploymentReadyWhileOldReplicaDrains(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(1)
	f.mustCall("POST", "/v1/deployments", systemToken, `{"name":"iris","model":"iris:1","image":"localhost/jobgate-examples:test","command":["/bin/modelserver"],"replicas":1}`, nil)
	ctx := context.Background()
	pass := func() {
		t.Helper()
		if _, err := f.plane.Deploy.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// runReady starts every queued replica job on a worker, with a ready
	// endpoint.
	runReady := func() {
		t.Helper()
		slots, err := f.st.ReplicaSlots(ctx, DefaultWorkspace, "iris")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range slots {
			j, err := f.st.GetJob(ctx, DefaultWorkspace, s.JobID)
			if err != nil || j.Status != api.StatusQueued {
				continue
			}
			_, n, err := f.st.Reserve(ctx, j.ID, 1, "w1", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.st.Start(ctx, DefaultWorkspace, j.ID, 1, "w1", n, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := f.st.PutEndpoint(ctx, store.Endpoint{JobID: j.ID, Attempt: 1, Workspace: DefaultWorkspace, Deployment: "iris", Replica: s.ID,
				Worker: "w1", Address: "127.0.0.1:4123" + strconv.Itoa(s.Revision), State: store.EndpointReady, Model: "iris", Version: 1, Revision: s.Revision}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pass()
	runReady()
	pass()
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"env":{"LEVEL":"2"}}`, nil)
	pass() // the surge replica of revision 2
	runReady()
	pass() // it is ready: the old one drains
	pass()
	var d api.Deployment
	f.mustCall("GET", "/v1/deployments/iris", systemToken, "", &d)
	states := map[int]api.ReplicaState{}
	for _, r := range d.Replicas {
		states[r.Revision] = r.State
	}
	if len(d.Replicas) != 2 || states[1] != api.ReplicaDraining || states[2] != api.ReplicaReady {
		t.Fatalf("replicas %+v: want revision 1 draining and revision 2 ready", d.Replicas)
	}
	_, st, err := f.st.Deployment(ctx, DefaultWorkspace, "iris")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != api.DeploymentReady {
		t.Fatalf("the controller says %s (%s), want ready", st.Status, st.Reason)
	}
	if d.Status != api.DeploymentReady {
		t.Fatalf("GET says %s (%s) while the controller says ready and only a drained replica is of the old revision", d.Status, d.Reason)
	}
}

// TestDeploymentPatchEnv: a PATCH's env of null (what the Go client sends
// for a scale) keeps the deployment's env; {} clears it, a rolling change.
func TestDeploymentPatchEnv(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(1)
	f.mustCall("POST", "/v1/deployments", systemToken, `{"name":"iris","model":"iris:1","image":"localhost/jobgate-examples:test","command":["/bin/modelserver"],"env":{"LOG":"on"}}`, nil)
	var d api.Deployment
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"replicas":2,"env":null}`, &d)
	if d.Revision != 1 || d.Spec.Env["LOG"] != "on" {
		t.Fatalf("after env null: revision %d, env %v; want revision 1 with LOG=on", d.Revision, d.Spec.Env)
	}
	d = api.Deployment{}
	f.mustCall("PATCH", "/v1/deployments/iris", systemToken, `{"env":{}}`, &d)
	if d.Revision != 2 || len(d.Spec.Env) != 0 {
		t.Fatalf("after env {}: revision %d, env %v; want revision 2 with no env", d.Revision, d.Spec.Env)
	}
}
