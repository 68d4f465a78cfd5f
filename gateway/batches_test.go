package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestBatchPriorityAndTimeout: a batch's job is low priority unless the
// request says otherwise (a JSON field, or a query parameter of a
// JSON-lines upload), its timeout the request's; a bad one is a 422 naming
// it, before any row is stored; a batch of no rows is refused.
func TestBatchPriorityAndTimeout(t *testing.T) {
	f := newFixture(t)
	f.irisVersions(1)
	f.mustCall("POST", "/v1/deployments", systemToken, deploymentBody("iris", "iris:1"), nil)
	const row = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[[5.1,3.5,1.4,0.2]]}]}`
	post := func(query, ct, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", f.ts.URL+"/v1/deployments/iris/batch"+query, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+systemToken)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, query, ct, body string
		priority              api.Priority
		timeout               int
	}{
		{"default", "", "application/json", `{"requests":[` + row + `]}`, api.PriorityLow, 0},
		{"JSON fields", "", "application/json", `{"requests":[` + row + `],"priority":"high","timeout_seconds":120}`, api.PriorityHigh, 120},
		{"query of JSON lines", "?priority=normal&timeout_seconds=90", "application/x-ndjson", row + "\n", api.PriorityNormal, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.query, tc.ct, tc.body)
			var acc api.BatchAccepted
			if code != http.StatusAccepted || json.Unmarshal([]byte(body), &acc) != nil {
				t.Fatalf("submit: %d %s", code, body)
			}
			var j api.Job
			f.mustCall("GET", "/v1/jobs/"+acc.ID, systemToken, "", &j)
			if j.Spec.Priority != tc.priority || (tc.timeout != 0 && j.Spec.TimeoutSeconds != tc.timeout) || j.Spec.TimeoutSeconds <= 0 {
				t.Fatalf("batch job priority %q timeout %d, want %q and %d (0: the default)", j.Spec.Priority, j.Spec.TimeoutSeconds, tc.priority, tc.timeout)
			}
		})
	}
	for _, tc := range []struct{ name, query, ct, body, field string }{
		{"bad priority", "", "application/json", `{"requests":[` + row + `],"priority":"urgent"}`, "priority"},
		{"bad priority in the query", "?priority=urgent", "application/x-ndjson", row + "\n", "priority"},
		{"negative timeout", "?timeout_seconds=-1", "application/x-ndjson", row + "\n", "timeout_seconds"},
		{"no rows", "", "application/json", `{"requests":[]}`, "at least one row"},
		{"no lines", "", "application/x-ndjson", "\n\n", "at least one row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := post(tc.query, tc.ct, tc.body); code != http.StatusUnprocessableEntity || !strings.Contains(body, tc.field) {
				t.Fatalf("%d %s, want 422 naming %s", code, body, tc.field)
			}
		})
	}
}
