package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// browser drives one headless Chromium (testenv.Chromium) against a
// cluster's portal.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string
}

// do runs chromedp actions, each step bounded so a missing element fails
// the test instead of hanging it.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		b.t.Fatalf("evaluate %s: %s: %v", expr, v, err)
	}
}

// until polls a JavaScript condition of the page until it holds.
func (b *browser) until(within time.Duration, expr, what string) {
	b.t.Helper()
	testenv.Eventually(b.t, within, func() bool {
		var ok bool
		b.eval("!!("+expr+")", &ok)
		return ok
	}, "the page never showed %s (%s)", what, expr)
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url+"/ui/"))
	b.until(20*time.Second, `document.querySelector("[data-test=login-form]")`, "the sign-in form")
	b.do(chromedp.SendKeys(chromedp.CSS(`[data-test=login-token]`), token), chromedp.Click(chromedp.CSS(`[data-test=login-submit]`)))
	b.until(20*time.Second, `document.querySelector("[data-test=whoami]")`, "who is signed in")
}

func (b *browser) open(hash string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url + "/ui/" + hash))
}

// TestPortalInBrowser: a person signs in, watches a running job's log and
// loss chart, cancels it and re-runs it from its page; a read-only token
// sees no cancel button and is refused when it posts a cancel anyway.
// Screenshots of each page go to test-artifacts/portal/ (and the job
// page's to docs/ with JOBGATE_WRITE_DOCS=1, for the README).
func TestPortalInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, podman and chromium")
	}
	c := newCluster(t)
	c.startWorker("w1")

	// A training-like job: a line and a loss point every 0.3s, and lines a
	// browser would take for markup if the portal did not escape them.
	script := `echo '<img src=x onerror=alert(1)>'; echo '<script>alert(2)</script>'
i=1; while [ $i -le 2000 ]; do
  echo "epoch $i: training"
  echo "::metric name=loss value=$(awk "BEGIN{print 2/($i+1)}") step=$i"
  i=$((i+1)); sleep 0.3
done`
	xss := "<img src=x onerror=alert(1)>"
	train := c.submit(api.JobSpec{Name: "train-demo", Experiment: "portal", Mode: api.ModeProcess,
		Command: []string{"/bin/sh", "-c", script}, Tags: map[string]string{"note": xss}})
	c.waitFor(train.ID, 60*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })

	b := &browser{t: t, ctx: testenv.Chromium(t), url: c.gwURL}
	b.signIn(testToken)

	// The list shows the job, live.
	b.open("#/jobs")
	b.until(20*time.Second, fmt.Sprintf(`document.querySelector("[data-test=job-row][data-job-id='%s'][data-status=running]")`, train.ID), "the running job in the list")
	testenv.Screenshot(t, b.ctx, "portal-jobs")
	// The text filter: a search that matches nothing empties the list, and
	// clearing it brings the job back.
	b.do(chromedp.SendKeys(chromedp.CSS(`[data-test=filter-text]`), "no-such-job"))
	b.until(20*time.Second, `!document.querySelector("[data-test=job-row]") && location.hash.includes("q=no-such-job")`, "an empty list for a search that matches nothing")
	var set bool
	b.eval(`(() => { const i = document.querySelector("[data-test=filter-text]"); i.value = "";
		i.dispatchEvent(new Event("input")); return true; })()`, &set)
	b.do(chromedp.SendKeys(chromedp.CSS(`[data-test=filter-text]`), "train-"))
	b.until(20*time.Second, fmt.Sprintf(`document.querySelector("[data-job-id='%s']")`, train.ID), "the job again for a search that matches it")

	// Its page: log lines stream in, the loss chart draws.
	b.open("#/jobs/" + train.ID)
	b.until(30*time.Second, `document.querySelectorAll("[data-test=log-view] .log-line").length >= 5`, "log lines")
	var first int
	b.eval(`document.querySelectorAll("[data-test=log-view] .log-line").length`, &first)
	b.until(30*time.Second, fmt.Sprintf(`document.querySelectorAll("[data-test=log-view] .log-line").length > %d`, first+3), "more log lines arriving")
	b.until(30*time.Second, `document.querySelector("[data-test=chart-loss] canvas") && document.querySelector("[data-test=chart-loss] canvas").width > 0`, "the loss chart")
	// Wait for a few points more, for a chart worth a picture.
	b.until(30*time.Second, `document.querySelectorAll("[data-test=log-view] .log-line").length >= 40`, "40 log lines")
	testenv.Screenshot(t, b.ctx, "portal-job")

	// Nothing a job printed or tagged became markup.
	var got struct {
		Imgs, Scripts int
		LogHas, TagHas bool
	}
	b.eval(`({imgs: document.querySelectorAll("main img").length, scripts: document.querySelectorAll("main script").length,
		logHas: document.querySelector("[data-test=log-view]").textContent.includes(`+jsString(xss)+`),
		tagHas: document.querySelector("[data-test=tags]").textContent.includes(`+jsString(xss)+`)})`, &got)
	if got.Imgs != 0 || got.Scripts != 0 || !got.LogHas || !got.TagHas {
		t.Fatalf("escaping: %+v, want no img or script element, and the text shown as text", got)
	}
	// The search box filters the lines.
	b.do(chromedp.SendKeys(chromedp.CSS(`[data-test=log-search]`), "onerror"))
	b.until(10*time.Second, `[...document.querySelectorAll("[data-test=log-view] .log-line")].filter(l => !l.hidden).length === 1`, "one line matching the search")

	// Cancel from the page.
	b.do(chromedp.Click(chromedp.CSS(`[data-test=cancel-button]`)))
	b.until(60*time.Second, `document.querySelector("[data-test=job-status][data-status=canceled]")`, "the job canceled")
	if j := c.get(train.ID); j.Status != api.StatusCanceled {
		t.Fatalf("job is %s after the cancel button, want canceled", j.Status)
	}

	// Re-run: a new job with the same spec; cancel it too.
	b.do(chromedp.Click(chromedp.CSS(`[data-test=rerun-button]`)))
	b.until(20*time.Second, `document.querySelector("[data-test=rerun-notice]") && !location.hash.includes(`+jsString(train.ID+"?")+`)`, "the re-run's page")
	var hash string
	b.eval(`location.hash`, &hash)
	rerun := strings.TrimPrefix(strings.SplitN(hash, "?", 2)[0], "#/jobs/")
	if rerun == train.ID || rerun == "" {
		t.Fatalf("re-run went to %q", hash)
	}
	if j := c.get(rerun); j.Spec.Name != "train-demo" || j.Spec.Tags["note"] != xss {
		t.Fatalf("re-run's spec is not the job's: %+v", j.Spec)
	}
	b.until(20*time.Second, `document.querySelector("[data-test=cancel-button]")`, "the re-run's cancel button")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=cancel-button]`)))
	b.until(60*time.Second, `document.querySelector("[data-test=job-status][data-status=canceled]")`, "the re-run canceled")

	// A read-only token: no cancel button, and a cancel it posts anyway
	// (cookie and CSRF token as the page would send them) is a 403.
	hold := c.submit(api.JobSpec{Name: "hold", Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo holding; sleep 600"}})
	c.waitFor(hold.ID, 60*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	var ro api.NewToken
	if code := c.do("POST", "/v1/workspaces/default/tokens", `{"name":"viewer","scopes":["read"]}`, &ro); code != http.StatusCreated {
		t.Fatalf("create read token: %d", code)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=logout]`)))
	b.until(20*time.Second, `document.querySelector("[data-test=login-form]")`, "the sign-in form after signing out")
	b.signIn(ro.Secret)
	b.open("#/jobs/" + hold.ID)
	b.until(30*time.Second, `document.querySelector("[data-test=job-status][data-status=running]") && document.querySelectorAll("[data-test=log-view] .log-line").length >= 1`, "the held job, running")
	var buttons int
	b.eval(`document.querySelectorAll("[data-test=cancel-button], [data-test=rerun-button]").length`, &buttons)
	if buttons != 0 {
		t.Fatalf("a read-only token sees %d cancel or re-run buttons", buttons)
	}
	testenv.Screenshot(t, b.ctx, "portal-job-readonly")
	var status int
	b.eval(`(async () => {
		const s = await (await fetch("/ui/session")).json();
		const r = await fetch("/ui/api/v1/jobs/`+hold.ID+`/cancel", {method: "POST", headers: {"X-CSRF-Token": s.csrf_token}});
		return r.status; })()`, &status)
	if status != http.StatusForbidden {
		t.Fatalf("read-only cancel through the portal: %d, want 403", status)
	}
	if j := c.get(hold.ID); j.Status != api.StatusRunning || j.CancelRequested {
		t.Fatalf("held job after a refused cancel: %s (cancel requested %v)", j.Status, j.CancelRequested)
	}
	if code := c.do("POST", "/v1/jobs/"+hold.ID+"/cancel", "", nil); code != http.StatusOK {
		t.Fatalf("cancel the held job: %d", code)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
