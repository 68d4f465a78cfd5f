package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// TestJobTokenChildCannotEscalate: a child submitted with a job's own token
// asks for nothing the token's job lacks (mode, secrets, inputs, priority,
// notify, user), compared with that job even when the child names a more
// privileged descendant as its parent.
func TestJobTokenChildCannotEscalate(t *testing.T) {
	f := newFixture(t)
	f.hostProcessWorker("hp")
	for _, s := range []string{"s1", "s2"} {
		f.mustCall("POST", "/v1/secrets", systemToken, `{"name":"`+s+`","value":"v-`+s+`"}`, nil)
	}
	for _, ds := range []string{"ds", "other"} {
		f.mustCall("POST", "/v1/datastores", systemToken, datastoreBody(ds), nil)
	}
	const hook = "https://hooks.example.com/cb"
	const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var parent api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"user":"1000","read_only_rootfs":true,
		"secrets":{"A":"s1"},"inputs":{"d":{"datastore":"ds","path":"sets"},"c":{"datastore":"other","mode":"download"}},
		"notify":{"url":"`+hook+`","secret":"`+hookSecret+`"}}`, &parent)
	// A descendant the system admin made, with more than the parent: naming
	// it as the parent gains nothing.
	var strong api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"mode":"process","command":["x"],"priority":"high","secrets":{"B":"s2"},"parent_id":"`+parent.ID+`"}`, &strong)
	tok := f.jobToken(DefaultWorkspace, parent.ID)

	child := func(fields string) string {
		return `{"image":"localhost/x:1","command":["x"]` + fields + `}`
	}
	tests := []struct {
		name, body string
		status     int
		mentions   string
	}{
		{"process mode", processBody, 403, "mode"},
		{"process under a process descendant", `{"mode":"process","command":["x"],"parent_id":"` + strong.ID + `"}`, 403, "mode"},
		{"another secret", child(`,"secrets":{"B":"s2"}`), 403, "secrets.B"},
		{"another secret under the descendant that has it", child(`,"secrets":{"B":"s2"},"parent_id":"` + strong.ID + `"`), 403, "secrets.B"},
		{"the job's secret, another variable", child(`,"secrets":{"OTHER":"s1"}`), 201, ""},
		{"another datastore", child(`,"inputs":{"x":{"datastore":"ds2"}}`), 403, "inputs.x"},
		{"the datastore above the job's path", child(`,"inputs":{"x":{"datastore":"ds"}}`), 403, "inputs.x"},
		{"a sibling path", child(`,"inputs":{"x":{"datastore":"ds","path":"setsx"}}`), 403, "inputs.x"},
		{"the job's path", child(`,"inputs":{"x":{"datastore":"ds","path":"sets"}}`), 201, ""},
		{"below the job's path, as a download", child(`,"inputs":{"x":{"datastore":"ds","path":"sets/v1","mode":"download"}}`), 201, ""},
		{"a mount where the job has a download", child(`,"inputs":{"x":{"datastore":"other","path":"a"}}`), 403, "inputs.x"},
		{"a download where the job has one", child(`,"inputs":{"x":{"datastore":"other","path":"a","mode":"download"}}`), 201, ""},
		{"higher priority", child(`,"priority":"high"`), 403, "priority"},
		{"lower priority", child(`,"priority":"low"`), 201, ""},
		{"callback to a new address", child(`,"notify":{"url":"https://elsewhere.example.com/x","secret":"` + hookSecret + `"}`), 403, "notify.url"},
		{"callback to a new address, no secret", child(`,"notify":{"url":"https://elsewhere.example.com/x"}`), 403, "notify.url"},
		{"callback to the job's address, its secret", child(`,"notify":{"url":"` + hook + `"}`), 201, ""},
		{"another user", child(`,"user":"0"`), 403, "user"},
		{"the job's user", child(`,"user":"1000"`), 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("POST", "/v1/jobs", tok, tt.body)
			if code != tt.status || !strings.Contains(errMessage(body), tt.mentions) {
				t.Fatalf("got %d %s, want %d mentioning %q", code, body, tt.status, tt.mentions)
			}
			var e api.ErrorBody
			if code == http.StatusForbidden && (json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != api.CodeForbidden) {
				t.Fatalf("refusal %s is not a JSON error with code %s", body, api.CodeForbidden)
			}
		})
	}
	// What a child does not name, it inherits: user, read_only_rootfs, and
	// the callback secret when it calls back the job's own URL.
	var kid api.Job
	f.mustCall("POST", "/v1/jobs", tok, child(`,"notify":{"url":"`+hook+`"}`), &kid)
	got, err := f.st.GetJobByID(context.Background(), kid.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.User != "1000" || !got.Spec.ReadOnlyRootfs || got.Spec.Notify == nil || got.Spec.Notify.Secret != hookSecret {
		t.Fatalf("child spec user %q read_only_rootfs %v notify %+v; want the job's user, read-only, the job's callback secret",
			got.Spec.User, got.Spec.ReadOnlyRootfs, got.Spec.Notify)
	}
	// The same Idempotency-Key path is checked too.
	if code, _, _ := f.submitWithKey(tok, "escalate", processBody); code != http.StatusForbidden {
		t.Fatalf("process child with an Idempotency-Key: %d, want 403", code)
	}

	// A process job's token may submit process children.
	var proc api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, processBody, &proc)
	ptok := f.jobToken(DefaultWorkspace, proc.ID)
	if code, body := f.call("POST", "/v1/jobs", ptok, processBody); code != http.StatusCreated {
		t.Fatalf("process child of a process job: %d %s, want 201", code, body)
	}
	// MLflow's runs/create makes a tracked run in the job's tree, never a
	// job that runs: nothing of the above can be asked through it.
	run := f.mlflowOK("POST", "runs/create", tok, `{"experiment_id":"0","tags":[{"key":"mlflow.parentRunId","value":"`+parent.ID+`"}]}`)
	runID := run["run"].(map[string]any)["info"].(map[string]any)["run_id"].(string)
	tracked, err := f.st.GetJobByID(context.Background(), runID)
	if err != nil || tracked.Spec.Mode != api.ModeTracked || len(tracked.Spec.Command) != 0 || len(tracked.Spec.Secrets) != 0 {
		t.Fatalf("run made with a job token: %+v, %v; want a tracked run with no command or secrets", tracked, err)
	}
	if code, body := f.call("POST", "/v1/jobs", tok, `{"mode":"process","command":["x"],"parent_id":"`+runID+`"}`); code != http.StatusForbidden {
		t.Fatalf("process child under the job's tracked run: %d %s, want 403", code, body)
	}
	var other api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &other)
	if code, out := f.mlflowCall("POST", "runs/create", tok, `{"experiment_id":"0","tags":[{"key":"mlflow.parentRunId","value":"`+other.ID+`"}]}`); code != http.StatusForbidden {
		t.Fatalf("tracked run under a job outside the tree: %d %v, want 403", code, out)
	}
}

// TestJobTokenChildInputsCarryWithin: a child's input allowed by an input of
// the token's job carries that job's path (and the paths its own job was held
// to) as within, for the worker to hold the resolved data to; a client may
// not set within itself.
func TestJobTokenChildInputsCarryWithin(t *testing.T) {
	f := newFixture(t)
	f.mustCall("POST", "/v1/datastores", systemToken, datastoreBody("ds"), nil)
	var parent, whole api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],
		"inputs":{"d":{"datastore":"ds","path":"sets"},"w":{"datastore":"ds","path":"sets/v1/deep"}}}`, &parent)
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"inputs":{"d":{"datastore":"ds"}}}`, &whole)
	withinOf := func(id, input string) []string {
		t.Helper()
		j, err := f.st.GetJobByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return j.Spec.Inputs[input].Within
	}
	input := func(path string) string {
		return `{"image":"localhost/x:1","command":["x"],"inputs":{"x":{"datastore":"ds","path":"` + path + `","mode":"download"}}}`
	}

	ptok := f.jobToken(DefaultWorkspace, parent.ID)
	var child api.Job
	f.mustCall("POST", "/v1/jobs", ptok, input("sets/v1/latest"), &child)
	// The widest of the job's inputs that covers it: sets, not sets/v1/deep.
	if diff := cmp.Diff([]string{"sets"}, withinOf(child.ID, "x")); diff != "" {
		t.Fatalf("child's within (-want +got):\n%s", diff)
	}
	var grandchild api.Job
	f.mustCall("POST", "/v1/jobs", f.jobToken(DefaultWorkspace, child.ID), input("sets/v1/latest/a"), &grandchild)
	if diff := cmp.Diff([]string{"sets", "sets/v1/latest"}, withinOf(grandchild.ID, "x")); diff != "" {
		t.Fatalf("grandchild's within (-want +got):\n%s", diff)
	}
	// Under an Idempotency-Key too.
	wtok := f.jobToken(DefaultWorkspace, whole.ID)
	if code, j, _ := f.submitWithKey(f.jobToken(DefaultWorkspace, grandchild.ID), "k1", input("sets/v1/latest/a/b")); code != http.StatusCreated ||
		!cmp.Equal([]string{"sets", "sets/v1/latest", "sets/v1/latest/a"}, withinOf(j.ID, "x")) {
		t.Fatalf("child under an Idempotency-Key: %d, within %q", code, withinOf(j.ID, "x"))
	}
	// A job with the whole datastore holds its children to nothing more.
	var free api.Job
	f.mustCall("POST", "/v1/jobs", wtok, input("sets"), &free)
	if w := withinOf(free.ID, "x"); w != nil {
		t.Fatalf("child of a whole-datastore job: within %q, want none", w)
	}

	// within is the gateway's: refused from anyone, anywhere a spec is sent.
	sent := `{"image":"localhost/x:1","command":["x"],"inputs":{"x":{"datastore":"ds","path":"sets","within":[]}}}`
	for _, tt := range []struct{ name, token, path, body string }{
		{"a job", systemToken, "/v1/jobs", sent},
		{"a child", ptok, "/v1/jobs", strings.Replace(sent, `[]`, `["sets"]`, 1)},
		{"a schedule's job", systemToken, "/v1/schedules", `{"name":"s","cron":"0 2 * * *","job":` + sent + `}`},
		{"a trigger's job", systemToken, "/v1/triggers", `{"name":"t","provider":"github","secret":"0123456789abcdef-github","job":` + sent + `}`},
	} {
		code, body := f.call("POST", tt.path, tt.token, tt.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(errMessage(body), "inputs.x.within is the gateway's to set") {
			t.Errorf("%s with within: %d %s, want 422 naming inputs.x.within", tt.name, code, body)
		}
	}
}
