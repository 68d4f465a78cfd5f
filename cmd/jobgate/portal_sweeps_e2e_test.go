package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestPortalSweepPages: the portal lists a sweep; its page shows the best
// trial so far with its params and objective, every trial best objective
// first with links to their jobs, and cancels the sweep.
// JOBGATE_WRITE_DOCS=1 writes the picture as docs/portal-sweep.png.
func TestPortalSweepPages(t *testing.T) {
	const token = "portal-sweeps-admin-token"
	p := newPortalHarness(t, token, nil)
	ctx, st, call, step, waitFor := p.ctx, p.st, p.call, p.step, p.waitFor
	bg := context.Background()

	var sw api.Sweep
	call("POST", "/v1/sweeps", `{"name": "lr-grid", "trial": {"image": "localhost/x:1", "command": ["train", "--lr={{ .params.lr }}"]},
		"sampling": {"type": "grid"}, "search_space": {"lr": {"type": "choice", "values": [0.1, 0.03, 0.01]}},
		"objective": {"metric": "val_loss", "goal": "minimize"}, "limits": {"max_concurrent_trials": 3}}`, &sw)
	if len(sw.Trials) != 3 {
		t.Fatalf("sweep made %d trials, want 3", len(sw.Trials))
	}
	// Two trials run and report, as a worker would make them; the third waits.
	losses := map[int]float64{0: 0.52, 1: 0.17}
	for i, loss := range losses {
		id := sw.Trials[i].JobID
		_, n, err := st.Reserve(bg, id, 1, "w-portal", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Start(bg, "default", id, 1, "w-portal", n, time.Now()); err != nil {
			t.Fatal(err)
		}
		call("POST", "/v1/jobs/"+id+"/metrics", fmt.Sprintf(`{"metrics":[{"name":"val_loss","step":0,"value":%g},{"name":"val_loss","step":1,"value":%g}]}`, loss*2, loss), nil)
		code := 0
		if err := st.Finish(bg, "default", id, 1, store.Outcome{Status: api.StatusSucceeded, ExitCode: &code}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}

	p.signIn(token)
	step("open the sweeps",
		chromedp.Click(chromedp.CSS(`[data-test="nav-sweeps"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="sweep-row"][data-id="`+sw.ID+`"]`)),
	)
	waitFor("the list's trial count", `document.querySelector('[data-test="sweep-row"] [data-test="sweep-trial-count"]').textContent === "3 / 3"`)
	step("open the sweep", chromedp.Click(chromedp.CSS(`[data-test="sweep-row"][data-id="`+sw.ID+`"] [data-test="sweep-link"]`)))
	waitFor("the best trial", `(() => {
		const m = document.querySelector('[data-test="sweep-best-metric"]');
		const p = document.querySelector('[data-test="sweep-best-params"]');
		return m && m.textContent === "0.17" && p.textContent === "lr=0.03";
	})()`)
	order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-test="sweep-trial-row"]')].map(r => r.dataset.index + ":" + r.dataset.state)`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "1:succeeded,0:succeeded,2:queued" {
		t.Fatalf("trial rows %v, want the best objective first and the trial without a metric last", order)
	}
	links, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-test="sweep-trials"] [data-test="job-link"]').length`))
	if err != nil || links != 3 {
		t.Fatalf("%d job links in the trials table (%v), want 3", links, err)
	}
	testenv.Screenshot(t, ctx, "portal-sweep")

	step("cancel the sweep", chromedp.Click(chromedp.CSS(`[data-test="sweep-cancel"]`)))
	waitFor("the sweep canceled", `document.querySelector('[data-test="sweep-status"]').dataset.status === "canceled" &&
		!document.querySelector('[data-test="sweep-cancel"]')`)
	var after api.Sweep
	call("GET", "/v1/sweeps/"+sw.ID, "", &after)
	if after.Status != api.SweepCanceled {
		t.Fatalf("after the portal's cancel the sweep is %s", after.Status)
	}
}
