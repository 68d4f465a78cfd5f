package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestBatchScoreSubmit: a batch-score job is pinned to the version its
// model names when it is submitted, gets instance_count-1 children (its
// partitions), and every bad field is a 4xx naming it.
func TestBatchScoreSubmit(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(2)
	f.mustCall("POST", "/v1/datastores", systemToken, datastoreBody("ds"), nil)
	spec := func(batch string) string {
		return `{"kind":"batch-score","image":"localhost/jobgate-examples:test","command":["/bin/modelserver"],
			"inputs":{"data":{"datastore":"ds","path":"in"}},"batch_score":` + batch + `}`
	}
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, spec(`{"model":"iris@production","instance_count":3}`), &j)
	b := j.Spec.BatchScore
	if j.Spec.Kind != api.KindBatchScore || b == nil || b.ModelName != "iris" || b.Version != 1 || b.SHA256 == "" || b.Partition != 0 ||
		b.Input != "data" || b.Output != "predictions.jsonl" {
		t.Fatalf("submitted %+v / %+v, want iris@production pinned to version 1 with the defaults", j.Spec, b)
	}
	var kids struct {
		Jobs []api.Job `json:"jobs"`
	}
	f.mustCall("GET", "/v1/jobs/"+j.ID+"/children", systemToken, "", &kids)
	parts := map[int]bool{}
	for _, k := range kids.Jobs {
		kb := k.Spec.BatchScore
		if kb == nil || k.Spec.ParentID != j.ID || kb.Version != 1 || k.Spec.Notify != nil {
			t.Fatalf("child %+v", k.Spec)
		}
		parts[kb.Partition] = true
	}
	if len(kids.Jobs) != 2 || !parts[1] || !parts[2] {
		t.Fatalf("children %d with partitions %v, want 2: partitions 1 and 2", len(kids.Jobs), parts)
	}

	for _, tc := range []struct {
		name, body, field string
		code              int
	}{
		{"no such model", spec(`{"model":"nope:1"}`), "batch_score.model", http.StatusUnprocessableEntity},
		{"no such alias", spec(`{"model":"iris@staging"}`), "batch_score.model", http.StatusUnprocessableEntity},
		{"model not a ref", spec(`{"model":"iris"}`), "batch_score.model", http.StatusUnprocessableEntity},
		{"version set by the client", spec(`{"model":"iris:1","version":2}`), "batch_score.model_name", http.StatusUnprocessableEntity},
		{"partition set by the client", spec(`{"model":"iris:1","partition":1}`), "batch_score.partition", http.StatusUnprocessableEntity},
		{"instance_count", spec(`{"model":"iris:1","instance_count":0.5}`), "batch_score.instance_count", http.StatusUnprocessableEntity},
		{"unknown field", spec(`{"model":"iris:1","minibatch":3}`), "batch_score.minibatch", http.StatusUnprocessableEntity},
		{"unknown kind", `{"kind":"score","image":"localhost/x:1","command":["x"]}`, "kind", http.StatusUnprocessableEntity},
		{"no datastore input", `{"kind":"batch-score","image":"localhost/x:1","command":["x"],"batch_score":{"model":"iris:1"}}`, "inputs", http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.call("POST", "/v1/jobs", systemToken, tc.body)
			var e struct {
				Error struct {
					Field string `json:"field"`
				} `json:"error"`
			}
			_ = json.Unmarshal([]byte(body), &e)
			if code != tc.code || !strings.Contains(e.Error.Field+body, tc.field) {
				t.Fatalf("%d %s, want %d naming %s", code, body, tc.code, tc.field)
			}
		})
	}
}
