package scoring

import (
	"net/http"
	"testing"

	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/testenv"
)

// The router counts inference requests by workspace, deployment, version
// served and code, times them, and serves its registry on GET /metrics to
// the admin token alone; a made-up model name is no label.
func TestRouterMetrics(t *testing.T) {
	reg := metrics.NewRegistry()
	e := newEnv(t, Config{Metrics: metrics.NewScoring(reg), MetricsGatherer: reg})
	e.deploy("default", "iris", nil, tgt("iris", 2, 100))
	e.addReplica("default", "iris", "iris", 2, answer("a"))
	e.waitReady("default", "iris", 1)

	for range 3 {
		if resp, b := e.infer(adminToken, "/v2/models/iris/infer", []byte(`{"inputs":[]}`), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("infer: %s %s", resp.Status, b)
		}
	}
	if resp, _ := e.infer(adminToken, "/v2/models/made-up-name/infer", []byte(`{}`), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("infer of an unknown model: %s, want 404", resp.Status)
	}

	for _, tc := range []struct {
		name, token string
		want        int
	}{{"no token", "", http.StatusUnauthorized}, {"another token", "not-the-admin-token-0123456789", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: GET /metrics is %s (%s), want %d in JSON", tc.name, resp.Status, resp.Header.Get("Content-Type"), tc.want)
		}
	}
	scrape := testenv.Scrape(t, e.ts.URL+"/metrics", adminToken)
	testenv.CheckMetrics(t, scrape)
	series := []string{"workspace", "default", "deployment", "iris", "version", "2"}
	if got := testenv.MetricValue(t, scrape, "jobgate_scoring_requests_total", append(series, "code", "200")...); got != 3 {
		t.Errorf("jobgate_scoring_requests_total{iris, 2, 200} = %v, want 3\n%s", got, scrape)
	}
	if got := testenv.MetricValue(t, scrape, "jobgate_scoring_request_seconds", series...); got != 3 {
		t.Errorf("jobgate_scoring_request_seconds{iris, 2} counted %v, want 3", got)
	}
	if got := testenv.MetricValue(t, scrape, "jobgate_scoring_requests_total", "workspace", "default", "deployment", "made-up-name", "version", "", "code", "404"); got != -1 {
		t.Errorf("a made-up model name became a label")
	}
}
