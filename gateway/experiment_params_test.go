package gateway

import (
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestExperimentJobsCarryParams: GET /v1/experiments/:name/jobs gives each
// run's params beside its metrics, so runs compare side by side.
func TestExperimentJobsCarryParams(t *testing.T) {
	f := newFixture(t)
	var a, b api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"experiment":"sweep"}`, &a)
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"experiment":"sweep"}`, &b)
	f.mustCall("POST", "/v1/jobs/"+a.ID+"/params", systemToken, `{"params":{"lr":"0.1","layers":"4"}}`, nil)
	var got api.ExperimentJobs
	f.mustCall("GET", "/v1/experiments/sweep/jobs", systemToken, "", &got)
	params := map[string]map[string]string{}
	for _, j := range got.Jobs {
		params[j.ID] = j.Params
	}
	if len(got.Jobs) != 2 || params[a.ID]["lr"] != "0.1" || params[a.ID]["layers"] != "4" || len(params[b.ID]) != 0 {
		t.Fatalf("experiment jobs' params: %v; want lr and layers on %s only", params, a.ID)
	}
}
