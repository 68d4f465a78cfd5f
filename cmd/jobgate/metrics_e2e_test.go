package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// TestJobMetrics: "::metric" lines on a job's stdout come back from
// GET /v1/jobs/{id}/metrics in step order, the record carries each metric's
// last value, the lines stay in the log, and another workspace sees nothing.
func TestJobMetrics(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")

	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`for i in 1 2 3; do echo "::metric name=loss value=0.$((9-i)) step=$i"; done; echo "::metric name=accuracy value=0.9"`}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j.Status, j.Reason)
	}

	var got api.JobMetrics
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/metrics", "", &got); code != http.StatusOK {
		t.Fatalf("GET metrics: %d", code)
	}
	type point struct {
		Step  int64
		Value float64
	}
	simple := map[string][]point{}
	for name, pts := range got.Metrics {
		for _, p := range pts {
			if p.Timestamp.IsZero() || p.Timestamp.Before(*j.StartedAt) || p.Timestamp.After(*j.FinishedAt) {
				t.Errorf("%s step %d: timestamp %v is not within the run (%v to %v)", name, p.Step, p.Timestamp, j.StartedAt, j.FinishedAt)
			}
			simple[name] = append(simple[name], point{p.Step, p.Value})
		}
	}
	want := map[string][]point{
		"loss":     {{1, 0.8}, {2, 0.7}, {3, 0.6}},
		"accuracy": {{0, 0.9}}, // no step: numbered from 0
	}
	if diff := cmp.Diff(want, simple); diff != "" {
		t.Fatalf("metrics (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{"loss": 0.6, "accuracy": 0.9}, j.Metrics); diff != "" {
		t.Errorf("job record metrics (-want +got):\n%s", diff)
	}
	var only api.JobMetrics
	if code := c.do("GET", "/v1/jobs/"+j.ID+"/metrics?name=accuracy", "", &only); code != http.StatusOK || len(only.Metrics) != 1 || len(only.Metrics["accuracy"]) != 1 {
		t.Fatalf("?name=accuracy: %d %+v", code, only)
	}
	wantLog := "::metric name=loss value=0.8 step=1\n::metric name=loss value=0.7 step=2\n::metric name=loss value=0.6 step=3\n::metric name=accuracy value=0.9\n"
	if logs := c.logs(j.ID); logs != wantLog {
		t.Errorf("log = %q, want the metric lines kept: %q", logs, wantLog)
	}

	// The CLI: a summary per metric, and the API's JSON.
	env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": testToken}
	res := runCLI(t, env, "", "metrics", j.ID)
	if res.err != nil {
		t.Fatalf("jobgate metrics: %v\n%s", res.err, res.stderr)
	}
	wantOut := []string{
		"METRIC    LAST  MIN  MAX  POINTS  STEPS",
		"accuracy  0.9   0.9  0.9  1       0-0",
		"loss      0.6   0.6  0.8  3       1-3",
	}
	if got := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n"); !cmp.Equal(wantOut, got) {
		t.Errorf("jobgate metrics printed:\n%s\nwant:\n%s", res.stdout, strings.Join(wantOut, "\n"))
	}
	res = runCLI(t, env, "", "metrics", j.ID, "--json")
	var viaCLI api.JobMetrics
	if err := json.Unmarshal([]byte(res.stdout), &viaCLI); err != nil || !cmp.Equal(got, viaCLI) {
		t.Errorf("jobgate metrics --json = %s (%v), want the API's answer", res.stdout, err)
	}
	if res := runCLI(t, env, "", "get", j.ID); !strings.Contains(res.stdout, "accuracy=0.9 loss=0.6") {
		t.Errorf("jobgate get does not show the last metric values:\n%s", res.stdout)
	}

	// Metric lines from a podman container count too.
	cj := c.waitEnded(c.submit(api.JobSpec{Command: toolbox("echo", "::metric", "name=throughput", "value=123.5", "step=7")}).ID)
	if cj.Status != api.StatusSucceeded || cj.Metrics["throughput"] != 123.5 {
		t.Fatalf("container job: %s (%s), metrics %v", cj.Status, cj.Reason, cj.Metrics)
	}
	cm, err := c.api.Metrics(t.Context(), cj.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pts := cm.Metrics["throughput"]; len(pts) != 1 || pts[0].Step != 7 || pts[0].Value != 123.5 {
		t.Fatalf("container job metrics = %+v, want throughput step 7 = 123.5", cm.Metrics)
	}

	// Another workspace: the job does not exist there.
	other := c.asToken(c.workspaceAdmin("team-m", api.Quotas{}))
	var e api.ErrorBody
	if code := other.do("GET", "/v1/jobs/"+j.ID+"/metrics", "", &e); code != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Fatalf("metrics from another workspace: %d %+v, want 404 not_found", code, e)
	}
	if code := other.do("GET", "/v1/jobs/"+j.ID, "", nil); code != http.StatusNotFound {
		t.Fatalf("job from another workspace: %d, want 404", code)
	}
}

// TestManyMetricLines: a job prints 20,000 metric lines as fast as it can;
// every point is recorded and every line logged.
func TestManyMetricLines(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	const n = 20_000
	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "::metric name=loss value=$i"; i=$((i+1)); done`, n)}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j.Status, j.Reason)
	}
	t.Logf("the job ran for %v", j.FinishedAt.Sub(*j.StartedAt))
	m, err := c.api.Metrics(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	loss := m.Metrics["loss"]
	if len(loss) != n {
		t.Fatalf("%d points, want %d", len(loss), n)
	}
	for i, p := range loss {
		if p.Step != int64(i) || p.Value != float64(i) {
			t.Fatalf("point %d = step %d value %v, want %d, %d", i, p.Step, p.Value, i, i)
		}
	}
	if j.Metrics["loss"] != n-1 {
		t.Errorf("last loss = %v, want %d", j.Metrics["loss"], n-1)
	}
	if lines := strings.Count(c.logs(j.ID), "::metric name=loss"); lines != n {
		t.Errorf("log has %d metric lines, want %d", lines, n)
	}
}
