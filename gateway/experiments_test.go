package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

func TestExperimentsSortByMetric(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	acc := map[string]float64{}
	var ids []string
	for i, a := range []float64{0.71, 0.93, -1, 0.85} {
		var j api.Job
		f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"experiment":"resnet"}`, &j)
		ids = append(ids, j.ID)
		if a >= 0 { // job 2 never reported accuracy
			acc[j.ID] = a
			if err := f.st.AppendMetrics(ctx, j.ID, []store.MetricPoint{{Name: "accuracy", Step: int64(i), Value: a, Time: time.Now()}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.mustCall("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"experiment":"other"}`, nil)

	var list struct{ Experiments []api.Experiment }
	f.mustCall("GET", "/v1/experiments", systemToken, "", &list)
	if len(list.Experiments) != 2 || list.Experiments[0].Name != "other" || list.Experiments[1].JobCount != 4 {
		t.Fatalf("experiments: %+v; want other (newest) and resnet with 4 jobs", list.Experiments)
	}
	var best struct{ Jobs []api.Job }
	f.mustCall("GET", "/v1/experiments/resnet/jobs?sort=-accuracy", systemToken, "", &best)
	want := []string{ids[1], ids[3], ids[0], ids[2]} // 0.93, 0.85, 0.71, none
	for i, j := range best.Jobs {
		if j.ID != want[i] {
			t.Fatalf("sorted by -accuracy: position %d is %s (accuracy %v), want %s", i, j.ID, j.Metrics["accuracy"], want[i])
		}
	}
	if best.Jobs[0].Metrics["accuracy"] != 0.93 || best.Jobs[0].Status != api.StatusQueued {
		t.Fatalf("best job: %+v", best.Jobs[0])
	}
	f.mustCall("GET", "/v1/experiments/resnet/jobs?sort=accuracy&limit=1", systemToken, "", &best)
	if len(best.Jobs) != 1 || best.Jobs[0].ID != ids[0] {
		t.Fatalf("ascending, limit 1: %+v", best.Jobs)
	}
	for path, code := range map[string]int{
		"/v1/experiments/nope/jobs":                 http.StatusNotFound,
		"/v1/experiments/resnet/jobs?sort=-bad%20x": http.StatusBadRequest,
		"/v1/experiments/resnet/jobs?limit=0":       http.StatusBadRequest,
	} {
		if got, body := f.call("GET", path, systemToken, ""); got != code {
			t.Errorf("%s: %d %s, want %d", path, got, body, code)
		}
	}
}
