package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func TestJobMetrics(t *testing.T) {
	f := newFixture(t)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &j)
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	err := f.st.AppendMetrics(context.Background(), j.ID, []store.MetricPoint{
		{Name: "loss", Step: 2, Value: 0.5, Time: t0.Add(time.Second)},
		{Name: "loss", Step: 1, Value: 0.9, Time: t0},
		{Name: "acc", Step: 0, Value: 0.7, Time: t0},
	})
	if err != nil {
		t.Fatal(err)
	}

	var all api.JobMetrics
	f.mustCall("GET", "/v1/jobs/"+j.ID+"/metrics", systemToken, "", &all)
	want := api.JobMetrics{Metrics: map[string][]api.MetricPoint{
		"loss": {{Step: 1, Value: 0.9, Timestamp: t0}, {Step: 2, Value: 0.5, Timestamp: t0.Add(time.Second)}},
		"acc":  {{Step: 0, Value: 0.7, Timestamp: t0}},
	}}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Fatalf("metrics (-want +got):\n%s", diff)
	}
	var one api.JobMetrics
	f.mustCall("GET", "/v1/jobs/"+j.ID+"/metrics?name=acc&name=nope", systemToken, "", &one)
	if diff := cmp.Diff(api.JobMetrics{Metrics: map[string][]api.MetricPoint{"acc": want.Metrics["acc"]}}, one); diff != "" {
		t.Fatalf("?name=acc (-want +got):\n%s", diff)
	}
	// The job record carries the last values.
	var rec api.Job
	f.mustCall("GET", "/v1/jobs/"+j.ID, systemToken, "", &rec)
	if diff := cmp.Diff(map[string]float64{"loss": 0.9, "acc": 0.7}, rec.Metrics); diff != "" {
		t.Fatalf("job record metrics (-want +got):\n%s", diff)
	}

	// A job without metrics answers an empty object, not null.
	var other api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &other)
	if code, body := f.call("GET", "/v1/jobs/"+other.ID+"/metrics", systemToken, ""); code != http.StatusOK || strings.TrimSpace(body) != `{"metrics":{}}` {
		t.Fatalf("no metrics: %d %s", code, body)
	}

	tests := []struct {
		name, path string
		status     int
		code       api.Code
	}{
		{name: "bad name", path: "/v1/jobs/" + j.ID + "/metrics?name=a:b", status: 400, code: api.CodeBadRequest},
		{name: "unknown parameter", path: "/v1/jobs/" + j.ID + "/metrics?step=1", status: 400, code: api.CodeBadRequest},
		{name: "unknown job", path: "/v1/jobs/01nosuchjob0000000000000000/metrics", status: 404, code: api.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("GET", tt.path, systemToken, "")
			var e api.ErrorBody
			_ = json.Unmarshal([]byte(body), &e)
			if code != tt.status || e.Error.Code != tt.code {
				t.Fatalf("%d %s, want %d %s", code, body, tt.status, tt.code)
			}
		})
	}
}
