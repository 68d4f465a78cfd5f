package gateway

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// noBodyRoutes read no request body at all (their answer does not depend on
// one); every other POST, PUT and PATCH route reads JSON and must do so
// strictly.
var noBodyRoutes = map[string]bool{
	"POST /v1/jobs/:id/cancel":        true,
	"POST /v1/batches/:id/cancel":     true,
	"POST /v1/sweeps/:id/cancel":      true,
	"POST /v1/schedules/:name/pause":  true,
	"POST /v1/schedules/:name/resume": true,
	"POST /v1/schedules/:name/run":    true,
	"POST /hooks/:id":                 true, // a webhook payload, checked by tmpl.DecodePayload after the signature
	"POST /ui/logout":                 true, // a form's csrf_token at most
	// The portal's mirror passes the body on to the REST route it reaches,
	// which this test walks itself.
	"POST /ui/api/*":  true,
	"PUT /ui/api/*":   true,
	"PATCH /ui/api/*": true,
	// "Try it" hands the body to the scoring router as it is: the V2
	// request is the model server's to judge, as on /v2 itself.
	"POST /v1/deployments/:name/infer": true,
}

// TestEveryJSONRouteIsStrict walks every route that takes a JSON body and
// sends it a good body with trailing data, the body null, and bytes that are
// not UTF-8: all are 400,
// on MLflow's routes too (which ignore unknown fields, but not these).
func TestEveryJSONRouteIsStrict(t *testing.T) {
	f := newFixture(t)
	o := f.objectsIn(DefaultWorkspace, systemToken)
	var keys []string
	for key := range f.g.rules {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		method, path, _ := strings.Cut(key, " ")
		if (method != http.MethodPost && method != http.MethodPut && method != http.MethodPatch) || noBodyRoutes[key] {
			continue
		}
		good := bodyFor(method, path, o)
		if key == "PATCH /v1/workspaces/:ws" {
			good = `{"allow_host_process":true}`
		}
		if good == "" {
			t.Errorf("%s: no body in bodyFor; add one, or list the route in noBodyRoutes", key)
			continue
		}
		for _, bad := range []struct{ name, body string }{
			{"trailing garbage", good + " x"},
			{"second value", good + good},
			{"null", "null"},
			{"array", "[" + good + "]"},
			// Not UTF-8: encoding/json would store U+FFFD in its place.
			{"invalid UTF-8", strings.TrimSuffix(good, "}") + ",\"zz\":\"\xff\"}"},
		} {
			t.Run(key+"/"+bad.name, func(t *testing.T) {
				code, resp := f.call(method, fill(method, path, o), systemToken, bad.body)
				if code != http.StatusBadRequest {
					t.Fatalf("got %d %s, want 400", code, resp)
				}
			})
		}
	}
}

// TestControlCharactersAreRefused: NUL and other control characters are
// refused in tag and param keys and values, MLflow run names and image
// allow-list entries, with a 4xx naming the field; tab and newline stay
// allowed in values (MLflow's mlflow.note.content is multi-line).
func TestControlCharactersAreRefused(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &j)
	tests := []struct {
		name, path, body, mentions string
	}{
		{"NUL in a tag value", "/v1/jobs/" + j.ID + "/tags", `{"tags":{"t":"a\u0000b"}}`, `tags: tag "t"`},
		{"escape in a tag value", "/v1/jobs/" + j.ID + "/tags", `{"tags":{"t":"\u001b[31m"}}`, `tag "t"`},
		{"NUL in a tag key", "/v1/jobs/" + j.ID + "/tags", `{"tags":{"t\u0000":"x"}}`, `tag key`},
		{"NUL in a param value", "/v1/jobs/" + j.ID + "/params", `{"params":{"p":"\u0000"}}`, `param "p"`},
		{"control in a spec tag", "/v1/jobs", `{"image":"localhost/x:1","command":["x"],"tags":{"t":"\u0007"}}`, `tags "t"`},
		{"NUL in a run name", mlflowPrefix + "runs/create", `{"experiment_id":"0","run_name":"r\u0000"}`, "run_name"},
		{"newline in a run name", mlflowPrefix + "runs/create", `{"experiment_id":"0","run_name":"a\nb"}`, "run_name"},
		{"NUL in an MLflow tag", mlflowPrefix + "runs/set-tag", `{"run_id":"` + j.ID + `","key":"t","value":"\u0000"}`, `tag "t"`},
		{"NUL in an MLflow param", mlflowPrefix + "runs/log-batch", `{"run_id":"` + j.ID + `","params":[{"key":"p","value":"\u0000"}]}`, `param "p"`},
		{"NUL in an image allow-list", "/v1/workspaces", `{"name":"ctl","image_allowlist":["localhost/\u0000"]}`, "image_allowlist[0]"},
		{"tab in an image allow-list", "/v1/workspaces", `{"name":"ctl","image_allowlist":["localhost/\t"]}`, "image_allowlist[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := f.call("POST", tt.path, systemToken, tt.body)
			if code/100 != 4 || !strings.Contains(anyErrMessage(resp), tt.mentions) {
				t.Fatalf("got %d %s, want a 4xx naming %s", code, resp, tt.mentions)
			}
		})
	}
	// What stays allowed.
	f.mustCall("POST", "/v1/jobs/"+j.ID+"/tags", systemToken, `{"tags":{"mlflow.note.content":"line 1\n\tline 2\r\n"}}`, nil)
	f.mustCall("POST", "/v1/jobs/"+j.ID+"/params", systemToken, `{"params":{"config":"a: 1\nb: 2"}}`, nil)
}

// anyErrMessage is the message of an error answer, jobgate's or MLflow's.
func anyErrMessage(body string) string {
	var e struct {
		Error   api.ErrorDetail `json:"error"`
		Message string          `json:"message"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Message + e.Message
}

// TestSpecKeysGivenTwiceAreRefused: a spec whose key appears twice is
// refused (encoding/json alone keeps the last one silently), at the top and
// nested, for jobs and for schedules' and triggers' job templates.
func TestSpecKeysGivenTwiceAreRefused(t *testing.T) {
	f := newFixture(t)
	tests := []struct{ name, path, body, mentions string }{
		{"job image twice", "/v1/jobs", `{"image":"localhost/x:1","command":["x"],"image":"localhost/other:1"}`, `field "image" is given twice`},
		{"job env key twice", "/v1/jobs", `{"image":"localhost/x:1","command":["x"],"env":{"A":"1","A":"2"}}`, `field "env.A" is given twice`},
		{"schedule job key twice", "/v1/schedules", `{"name":"s","cron":"@daily","job":{"image":"localhost/x:1","command":["x"],"command":["y"]}}`, `job: field "command" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := f.call("POST", tt.path, systemToken, tt.body)
			if code != http.StatusUnprocessableEntity || !strings.Contains(anyErrMessage(resp), tt.mentions) {
				t.Fatalf("got %d %s, want 422 naming %s", code, resp, tt.mentions)
			}
		})
	}
}
