package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestPortalExperimentCompare: the portal's experiment page shows an
// experiment's runs with their params and metrics, sorts them by a metric
// when its heading is clicked (again: the other way), overlays the loss
// curves of the two runs ticked, and plots a param against a metric.
// JOBGATE_WRITE_DOCS=1 writes the picture as docs/portal-experiment.png.
func TestPortalExperimentCompare(t *testing.T) {
	const token = "portal-experiments-admin-token"
	p := newPortalHarness(t, token, nil)
	ctx, call, step, waitFor := p.ctx, p.call, p.step, p.waitFor

	// Three tracked runs of a learning-rate sweep, each logging a loss
	// curve and a final accuracy.
	runs := []struct {
		name, lr string
		decay    float64 // how fast the loss falls
		accuracy float64
		id       string
	}{
		{name: "lr-0.1", lr: "0.1", decay: 0.55, accuracy: 0.91},
		{name: "lr-0.01", lr: "0.01", decay: 0.85, accuracy: 0.74},
		{name: "lr-0.03", lr: "0.03", decay: 0.7, accuracy: 0.83},
	}
	call("POST", "/api/2.0/mlflow/experiments/create", `{"name":"lr-sweep"}`, nil)
	for i := range runs {
		r := &runs[i]
		// A tracked run (jobgate runs nothing), made as an MLflow client does.
		var made struct {
			Run struct {
				Info struct {
					RunID string `json:"run_id"`
				} `json:"info"`
			} `json:"run"`
		}
		call("POST", "/api/2.0/mlflow/runs/create", fmt.Sprintf(`{"experiment_id":"lr-sweep","run_name":%q}`, r.name), &made)
		j := api.Job{ID: made.Run.Info.RunID}
		r.id = j.ID
		call("POST", "/v1/jobs/"+j.ID+"/params", fmt.Sprintf(`{"params":{"lr":%q,"batch_size":"64"}}`, r.lr), nil)
		var pts []string
		loss := 2.0
		for step := range 20 {
			pts = append(pts, fmt.Sprintf(`{"name":"loss","step":%d,"value":%g}`, step, loss))
			loss *= r.decay + (1-r.decay)*0.3
		}
		pts = append(pts, fmt.Sprintf(`{"name":"accuracy","step":19,"value":%g}`, r.accuracy))
		call("POST", "/v1/jobs/"+j.ID+"/metrics", `{"metrics":[`+strings.Join(pts, ",")+`]}`, nil)
		call("POST", "/api/2.0/mlflow/runs/update", `{"run_id":"`+j.ID+`","status":"FINISHED"}`, nil)
	}

	rowOrder := func() []string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-test="run-row"]')].map(r => r.dataset.id)`))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	// Sign in with a session (the token travels once, in the form).
	p.signIn(token)
	step("open the experiment",
		chromedp.Navigate(p.srv.URL+"/ui/#/experiments"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="experiment-row"][data-name="lr-sweep"]`)),
		chromedp.Click(chromedp.CSS(`[data-test="experiment-row"][data-name="lr-sweep"] [data-test="experiment-link"]`)),
	)
	waitFor("the runs table", `document.querySelectorAll('[data-test="run-row"]').length === 3`)

	// Sort by accuracy: ascending on the first click, descending on the second.
	byID := func(names ...string) []string {
		var out []string
		for _, n := range names {
			for _, r := range runs {
				if r.name == n {
					out = append(out, r.id)
				}
			}
		}
		return out
	}
	step("sort by accuracy", chromedp.Click(chromedp.CSS(`[data-test="sort-accuracy"]`)))
	asc := rowOrder()
	if want := byID("lr-0.01", "lr-0.03", "lr-0.1"); !slices.Equal(asc, want) {
		t.Fatalf("sorted by accuracy, ascending: rows %v, want %v", asc, want)
	}

	step("sort by accuracy again", chromedp.Click(chromedp.CSS(`[data-test="sort-accuracy"]`)))
	desc := rowOrder()
	if want := byID("lr-0.1", "lr-0.03", "lr-0.01"); !slices.Equal(desc, want) {
		t.Fatalf("sorted by accuracy, descending: rows %v, want %v", desc, want)
	}
	if slices.Equal(asc, desc) {
		t.Fatalf("clicking the heading again did not change the order: %v", desc)
	}

	// Tick two runs: their loss curves, two series on one chart.
	for _, id := range byID("lr-0.1", "lr-0.01") {
		step("select "+id, chromedp.Click(chromedp.CSS(`[data-test="run-select"][data-id="`+id+`"]`)))
	}
	waitFor("two curves", `(() => {
		const c = document.querySelector('[data-test="compare-chart"]');
		return c && c.dataset.series === "2" && c.querySelector("canvas") !== null &&
			c.querySelectorAll(".u-legend .u-series").length === 3;
	})()`)
	labels, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-test="compare-chart"] .u-legend .u-series .u-label')].map(l => l.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(labels, "lr-0.1") || !slices.Contains(labels, "lr-0.01") || slices.Contains(labels, "lr-0.03") {
		t.Fatalf("chart series %v; want lr-0.1 and lr-0.01 only", labels)
	}

	// The scatter: lr against accuracy, one point per run, the ticked two marked.
	for sel, v := range map[string]string{"scatter-param": "lr", "scatter-metric": "accuracy"} {
		// As a person picking an option: the value, then the change event.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			const s = document.querySelector('[data-test=%q]');
			s.value = %q;
			s.dispatchEvent(new Event("change"));
			return s.value === %q;
		})()`, sel, v, v))); err != nil {
			t.Fatalf("choose %s %s: %v", sel, v, err)
		}
	}
	waitFor("three scatter points, two selected", `document.querySelectorAll('[data-test="scatter-point"]').length === 3 &&
		document.querySelectorAll('[data-test="scatter-point"].selected').length === 2`)
	testenv.Screenshot(t, ctx, "portal-experiment")
}
