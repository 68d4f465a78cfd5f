package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// TestPortalPages drives the portal's operations pages (issue 16) in a real
// headless Chromium against a real gateway and worker: a job submitted
// from the form runs; the YAML editor shows a spec's error at its field and
// a YAML syntax error with its line; the queue shows a job whose only
// fitting worker is down at position 1, with why it waits; the workers
// page shows the worker and its GPU with the job holding it; a schedule is
// paused and resumed; a trigger's delivery shows with its outcome, and
// markup in a trigger shows as text; a model's version links to its job; a
// deployment shows its replicas and traffic split, and "try it" shows the
// gateway's answer; a token that may only read gets no button that
// changes anything. Each page is photographed (test-artifacts/portal/portal-*.png).
func TestPortalPages(t *testing.T) {
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--simulate-gpus", "1:H100")
	b := &pagesBrowser{ctx: testenv.Chromium(t), base: c.gwURL}
	b.signIn(t, testToken)

	t.Run("submit form", func(t *testing.T) {
		c := c.forTest(t)
		b.open(t, "#/submit", `[data-test="submit-form"]`)
		// Without an image a container job is refused: the error sits at the image input.
		b.set(t, `[name="name"]`, "portal-form-job")
		b.set(t, `[name="command"]`, "/bin/toolbox\necho\nhello from the form")
		b.click(t, `[data-test="submit-button"]`)
		b.wait(t, `document.querySelector('[data-test="submit-form"] [data-field="image"]')?.textContent.includes("image")`, "the image error at its input")

		b.set(t, `[name="image"]`, testenv.ExampleImage)
		b.click(t, `[data-test="submit-button"]`)
		b.wait(t, `document.querySelector('[data-test="submit-status"] [data-status="succeeded"]')`, "the submitted job succeeded")
		id := b.eval(t, `document.querySelector('[data-test="submit-result"] [data-test="job-link"]').textContent`)
		if j := c.get(id); j.Name != "portal-form-job" || j.Status != api.StatusSucceeded || !strings.Contains(c.logs(id), "hello from the form") {
			t.Fatalf("job %s: %s %s, logs %q", id, j.Name, j.Status, c.logs(id))
		}
		testenv.Screenshot(t, b.ctx, "portal-submit")
	})

	t.Run("YAML spec error at its field", func(t *testing.T) {
		b.open(t, "#/submit", `[data-test="yaml-editor"]`)
		yaml := "name: too-many-cpus\nimage: " + testenv.ExampleImage + "\ncommand: [/bin/toolbox, echo, hi]\nresources:\n  cpus: 5000\n"
		b.set(t, `[data-test="yaml-editor"]`, yaml)
		b.click(t, `[data-test="yaml-submit"]`)
		b.wait(t, `document.querySelector('[data-test="yaml-field-error"]')`, "the field error")
		got := b.eval(t, `(e => e.dataset.field + " " + e.dataset.line + " " + e.textContent)(document.querySelector('[data-test="yaml-field-error"]'))`)
		if !strings.HasPrefix(got, "resources.cpus 5 ") || !strings.Contains(got, "5000") {
			t.Errorf("field error = %q, want resources.cpus at line 5 with the message", got)
		}
		testenv.Screenshot(t, b.ctx, "portal-submit-yaml-error")
	})

	t.Run("YAML syntax error with its line", func(t *testing.T) {
		b.open(t, "#/submit", `[data-test="yaml-editor"]`)
		b.set(t, `[data-test="yaml-editor"]`, "name: broken\ncommand: [/bin/toolbox, echo\nimage: x\n")
		b.click(t, `[data-test="yaml-submit"]`)
		b.wait(t, `document.querySelector('[data-test="yaml-syntax-error"]')`, "the syntax error")
		got := b.eval(t, `(e => e.dataset.line + " " + e.textContent)(document.querySelector('[data-test="yaml-syntax-error"]'))`)
		if !strings.Contains(got, "line ") || strings.HasPrefix(got, " ") {
			t.Errorf("syntax error = %q, want it to give the line", got)
		}
	})

	t.Run("queue", func(t *testing.T) {
		c := c.forTest(t)
		if code := c.do("GET", "/v1/queue", "", nil); code == http.StatusNotFound {
			t.Skip("GET /v1/queue (portal-data) is not in this build")
		}
		// The only worker with an A100 is down (the gateway refuses a job
		// that no registered worker could ever run), so the job waits.
		c.startWorker("a100", "--simulate-gpus", "1:A100")
		c.stopWorker("a100")
		j := c.submit(api.JobSpec{Name: "needs-an-a100", Command: toolbox("echo", "never"), Resources: api.Resources{GPUs: 1, GPUModel: "A100"}})
		t.Cleanup(func() { c.api.Cancel(context.Background(), j.ID) })
		j = c.waitFor(j.ID, 20*time.Second, "said why it waits", func(j *api.Job) bool {
			return j.ReasonCode != "" && j.ReasonCode != api.ReasonWaitingForScheduler
		})
		b.open(t, "#/queue", `[data-test="queue"]`)
		row := fmt.Sprintf(`document.querySelector('[data-test="queue-row"][data-job-id="%s"]')`, j.ID)
		b.wait(t, row+`?.querySelector('[data-test="queue-reason"]')?.dataset.reasonCode === "`+j.ReasonCode+`"`, "the waiting job with its reason")
		if pos := b.eval(t, row+`.querySelector('[data-test="queue-position"]').textContent`); pos != "1" {
			t.Errorf("position = %q, want 1", pos)
		}
		if why := b.eval(t, row+`.querySelector('[data-test="queue-reason"]').textContent`); !strings.Contains(why, j.Reason) {
			t.Errorf("reason = %q, want it to hold %q", why, j.Reason)
		}
		testenv.Screenshot(t, b.ctx, "portal-queue")
	})

	t.Run("workers", func(t *testing.T) {
		c := c.forTest(t)
		// A job on w1's GPU, to see it as the GPU's holder.
		j := c.submit(api.JobSpec{Name: "holds-the-gpu", Command: toolbox("sleep", "120"), Resources: api.Resources{GPUs: 1}})
		t.Cleanup(func() { c.api.Cancel(context.Background(), j.ID) })
		c.waitFor(j.ID, 30*time.Second, "ran", func(j *api.Job) bool { return j.Status == api.StatusRunning })
		b.open(t, "#/workers", `[data-test="workers"]`)
		card := `document.querySelector('[data-test="worker-card"][data-worker-id="w1"]')`
		b.wait(t, card+`?.querySelector('[data-test="worker-state"]').textContent === "up"`, "worker w1 up")
		b.wait(t, card+`.querySelector('[data-test="gpu-row"] [data-test="gpu-holder"]').textContent === "`+j.ID+`"`, "the job holding the GPU")
		got := b.eval(t, card+`.querySelector('[data-test="gpu-row"]').textContent + " | " + `+card+`.querySelector('[data-test="worker-heartbeat"]').textContent`)
		if !strings.Contains(got, "H100") || !strings.Contains(got, "ago") {
			t.Errorf("worker card = %q, want its H100 and its last heartbeat", got)
		}
		testenv.Screenshot(t, b.ctx, "portal-workers")
	})

	t.Run("schedules pause and resume", func(t *testing.T) {
		c := c.forTest(t)
		body := fmt.Sprintf(`{"name": "nightly", "cron": "0 3 * * *", "job": {"image": %q, "command": ["/bin/toolbox", "echo", "tick"]}}`, testenv.ExampleImage)
		if code := c.do("POST", "/v1/schedules", body, nil); code != http.StatusCreated {
			t.Fatalf("POST /v1/schedules: %d", code)
		}
		b.open(t, "#/schedules", `[data-test="schedule-row"][data-name="nightly"]`)
		row := `document.querySelector('[data-test="schedule-row"][data-name="nightly"]')`
		b.click(t, `[data-test="schedule-row"][data-name="nightly"] [data-test="schedule-pause"]`)
		b.wait(t, row+`?.querySelector('[data-test="schedule-state"]').textContent === "paused"`, "the schedule paused")
		if !c.schedule(t, "nightly").Paused {
			t.Fatal("the page says paused, the API does not")
		}
		b.click(t, `[data-test="schedule-row"][data-name="nightly"] [data-test="schedule-resume"]`)
		b.wait(t, row+`?.querySelector('[data-test="schedule-state"]').textContent === "active"`, "the schedule resumed")
		if s := c.schedule(t, "nightly"); s.Paused || len(s.Next) == 0 {
			t.Fatalf("after resume: paused %v, next %v", s.Paused, s.Next)
		}
		// Its page: the next fire times, and a run by hand in the history.
		b.open(t, "#/schedules/nightly", `[data-test="schedule-run"]`)
		b.wait(t, `document.querySelectorAll('[data-test="schedule-next-times"] [data-test="schedule-next"]').length === 5`, "five next fire times")
		b.click(t, `[data-test="schedule-run"]`)
		b.wait(t, `document.querySelector('[data-test="schedule-run-row"] [data-test="job-link"]')`, "the run by hand in the history")
		testenv.Screenshot(t, b.ctx, "portal-schedules")
	})

	t.Run("trigger delivery", func(t *testing.T) {
		c := c.forTest(t)
		const secret = "0123456789abcdef-portal-secret"
		var tr api.Trigger
		body := fmt.Sprintf(`{"name": "on-push", "provider": "github", "secret": %q, "filter": {"event": "push"}, "job": {"image": %q, "command": ["/bin/toolbox", "echo", "pushed"]}}`, secret, testenv.ExampleImage)
		if code := c.do("POST", "/v1/triggers", body, &tr); code != http.StatusCreated {
			t.Fatalf("POST /v1/triggers: %d", code)
		}
		payload := []byte(`{"ref": "refs/heads/main", "after": "abc123"}`)
		req, err := http.NewRequest("POST", c.gwURL+tr.HookURL, bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "portal-delivery-1")
		req.Header.Set(webhook.HeaderGitHubSignature, webhook.SignGitHub([]byte(secret), payload))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var hook api.HookResult
		json.NewDecoder(resp.Body).Decode(&hook)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || hook.JobID == "" {
			t.Fatalf("delivery: %d %+v", resp.StatusCode, hook)
		}
		// Text a sender controls is shown as text, never as markup.
		const markup = `<img src=x onerror=console.error("xss")>`
		body = fmt.Sprintf(`{"name": "markup", "provider": "github", "secret": %q, "filter": {"ref": %q}, "job": {"image": %q, "command": ["/bin/toolbox", "echo"]}}`, secret, markup, testenv.ExampleImage)
		if code := c.do("POST", "/v1/triggers", body, nil); code != http.StatusCreated {
			t.Fatalf("POST /v1/triggers: %d", code)
		}
		b.open(t, "#/triggers", `[data-test="trigger-row"][data-name="markup"]`)
		if got := b.eval(t, `document.querySelector('[data-test="trigger-row"][data-name="markup"]').textContent.includes("ref `+strings.ReplaceAll(markup, `"`, `\"`)+`") && !document.querySelector("#main img")`); got != "true" {
			t.Errorf("the filter's markup is not shown as text")
		}
		b.open(t, "#/triggers", `[data-test="trigger-row"][data-name="on-push"]`)
		b.click(t, `[data-test="trigger-row"][data-name="on-push"] [data-test="trigger-link"]`)
		b.wait(t, `document.querySelector('[data-test="delivery-row"] [data-test="delivery-outcome"]')?.textContent === "accepted"`, "the delivery, accepted")
		if got := b.eval(t, `document.querySelector('[data-test="delivery-row"] [data-test="job-link"]').textContent`); got != hook.JobID {
			t.Errorf("delivery's job = %q, want %q", got, hook.JobID)
		}
		testenv.Screenshot(t, b.ctx, "portal-triggers")
	})

	t.Run("models and deployments", func(t *testing.T) {
		c := c.forTest(t)
		c.deployIris()
		if code := c.do("PUT", "/v1/models/iris/aliases/production", `{"version": 1}`, nil); code != http.StatusOK {
			t.Fatalf("PUT alias production: %d", code)
		}
		var m api.Model
		if code := c.do("GET", "/v1/models/iris", "", &m); code != http.StatusOK || len(m.Versions) != 1 {
			t.Fatalf("GET /v1/models/iris: %d %+v", code, m)
		}
		b.open(t, "#/models", `[data-test="model-row"][data-name="iris"]`)
		if got := b.eval(t, `document.querySelector('[data-test="model-row"][data-name="iris"] [data-test="model-alias"]').textContent`); got != "production → v1" {
			t.Errorf("alias = %q, want production → v1", got)
		}
		testenv.Screenshot(t, b.ctx, "portal-models")
		b.click(t, `[data-test="model-row"][data-name="iris"] [data-test="model-link"]`)
		b.wait(t, `document.querySelector('[data-test="model-version"][data-version="1"] [data-test="model-source-job"] a')`, "version 1 with its source job")
		if href := b.eval(t, `document.querySelector('[data-test="model-source-job"] a').getAttribute("href")`); href != "#/jobs/"+m.Versions[0].SourceJob {
			t.Errorf("source job link = %q, want #/jobs/%s", href, m.Versions[0].SourceJob)
		}
		testenv.Screenshot(t, b.ctx, "portal-model")

		// The page asks before a delete; the test says yes. A version the
		// deployment serves is refused, and the page says why.
		b.eval(t, `(window.confirm = () => true, "")`)
		b.click(t, `[data-test="model-version"][data-version="1"] [data-test="model-version-delete"]`)
		b.wait(t, `document.querySelector('[data-test="model-error"] [data-test="error"]')?.textContent.includes("in use by deployment iris")`, "the refusal of a served version")
		if code := c.do("GET", "/v1/models/iris/versions/1", "", nil); code != http.StatusOK {
			t.Fatalf("iris:1 after the refused delete: %d", code)
		}
		// A model nothing uses goes, versions and all.
		if _, err := c.api.RegisterModel(context.Background(), "scratch", m.Versions[0].SourceJob, m.Versions[0].SourcePath); err != nil {
			t.Fatal(err)
		}
		b.open(t, "#/models/scratch", `[data-test="model-version"][data-version="1"]`)
		b.eval(t, `(window.confirm = () => true, "")`)
		b.click(t, `[data-test="model-delete"]`)
		b.wait(t, `location.hash === "#/models" && document.querySelector('[data-test="model-row"][data-name="iris"]') && !document.querySelector('[data-test="model-row"][data-name="scratch"]')`, "the models list without scratch")
		if code := c.do("GET", "/v1/models/scratch", "", nil); code != http.StatusNotFound {
			t.Fatalf("GET /v1/models/scratch after the page's delete: %d, want 404", code)
		}

		b.open(t, "#/deployments", `[data-test="deployment-row"][data-name="iris"]`)
		testenv.Screenshot(t, b.ctx, "portal-deployments")
		b.click(t, `[data-test="deployment-row"][data-name="iris"] [data-test="deployment-link"]`)
		b.wait(t, `document.querySelector('[data-test="deployment-status"]')?.textContent === "ready" && document.querySelector('[data-test="replica-row"] [data-test="replica-state"]')?.textContent === "ready"`, "the deployment and its replica ready")
		if split := b.eval(t, `document.querySelector('[data-test="traffic-split"]').textContent`); !strings.Contains(split, "iris:1 100%") {
			t.Errorf("traffic split = %q, want iris:1 100%%", split)
		}
		t.Run("try it", func(t *testing.T) {
			row := `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}`
			var direct struct {
				Error api.ErrorDetail `json:"error"`
			}
			code := c.do("POST", "/v1/deployments/iris/infer", row, &direct)
			if code == http.StatusNotFound && strings.Contains(direct.Error.Message, "route") {
				t.Skip("POST /v1/deployments/NAME/infer (portal-data) is not in this build")
			}
			b.set(t, `[data-test="infer-request"]`, row)
			b.click(t, `[data-test="infer-send"]`)
			b.wait(t, `document.querySelector('[data-test="infer-answer"], [data-test="infer-error"]')`, "an answer")
			got := b.eval(t, `document.querySelector('[data-test="infer-result"]').textContent`)
			// A gateway without an in-process scoring router (jobgate gateway,
			// unlike jobgate dev) answers 503: the box shows that error.
			want := "outputs"
			if code != http.StatusOK {
				want = direct.Error.Message
			}
			if !strings.Contains(got, want) {
				t.Fatalf("try it shows %q, want %q (the API answered %d)", got, want, code)
			}
			testenv.Screenshot(t, b.ctx, "portal-deployment-try-it-"+strconv.Itoa(code))
		})
	})

	t.Run("read-only token", func(t *testing.T) { portalPagesReadOnly(t, c.forTest(t), b) })
}

// TestPortalPagesTryIt is the deployment page's "try it" and traffic on
// `jobgate dev`, whose gateway has the scoring router in process: a V2
// request sent from the box comes back with the model's outputs, and the
// request then shows in the deployment's traffic with its latency.
func TestPortalPagesTryIt(t *testing.T) {
	addr := freeAddr(t)
	c := &cluster{t: t, gwURL: "http://" + addr, token: testToken}
	podman := testenv.Podman(t)
	testenv.BuildExampleImage(t)
	stop := c.start("dev", "--redis-url", testenv.Redis(t), "--data-dir", t.TempDir(), "--addr", addr,
		"--podman-url", podman, "--network", "host", "--log-level", "warn")
	t.Cleanup(stop)
	c.api = client.New(c.gwURL, testToken)
	c.waitDevReady()
	var probe api.ErrorBody
	if code := c.do("POST", "/v1/deployments/none/infer", `{}`, &probe); code == http.StatusNotFound && strings.Contains(probe.Error.Message, "route") {
		t.Skip("POST /v1/deployments/NAME/infer (portal-data) is not in this build")
	}
	c.deployIris()

	b := &pagesBrowser{ctx: testenv.Chromium(t), base: c.gwURL}
	b.signIn(t, testToken)
	b.open(t, "#/deployments/iris", `[data-test="infer-send"]`)
	b.click(t, `[data-test="infer-send"]`)
	b.wait(t, `document.querySelector('[data-test="infer-answer"], [data-test="infer-error"]')`, "an answer")
	if got := b.eval(t, `document.querySelector('[data-test="infer-result"]').textContent`); !strings.Contains(got, `"outputs"`) {
		t.Fatalf("try it shows %q, want the model's outputs", got)
	}
	b.wait(t, `Number(document.querySelector('[data-test="traffic-requests"]')?.textContent) >= 1`, "the request in the deployment's traffic")
	if got := b.eval(t, `document.querySelector('[data-test="latency-p50"]').textContent`); !strings.HasSuffix(got, " ms") {
		t.Errorf("p50 = %q, want a latency in ms", got)
	}
	testenv.Screenshot(t, b.ctx, "portal-deployment")
}

// The same pages to a token that may only read: nothing that changes.
func portalPagesReadOnly(t *testing.T, c *cluster, b *pagesBrowser) {
	var tok api.NewToken
	if code := c.do("POST", "/v1/workspaces/default/tokens", `{"name": "viewer", "scopes": ["read"]}`, &tok); code != http.StatusCreated {
		t.Fatalf("create a read token: %d", code)
	}
	b.click(t, `[data-test="logout"]`)
	b.signIn(t, tok.Secret)
	b.open(t, "#/submit", `[data-test="no-submit-scope"]`)
	if got := b.eval(t, `document.querySelector('[data-test="submit-button"]').disabled && document.querySelector('[data-test="yaml-submit"]').disabled`); got != "true" {
		t.Error("the submit buttons work without the submit scope")
	}
	b.open(t, "#/schedules", `[data-test="schedule-row"][data-name="nightly"]`)
	if got := b.eval(t, `document.querySelectorAll('[data-test="schedule-pause"], [data-test="schedule-resume"], [data-test="schedule-run"]').length`); got != "0" {
		t.Errorf("%s schedule buttons without the submit scope", got)
	}
	b.open(t, "#/deployments/iris", `[data-test="try-it"]`)
	if got := b.eval(t, `document.querySelectorAll('[data-test="infer-send"]').length`); got != "0" {
		t.Error("try it sends without the submit scope")
	}
}

// forTest is c acting for the subtest t: its failures and cleanups are t's.
func (c *cluster) forTest(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	return &cc
}

// schedule is GET /v1/schedules/NAME.
func (c *cluster) schedule(t *testing.T, name string) api.Schedule {
	t.Helper()
	var s api.Schedule
	if code := c.do("GET", "/v1/schedules/"+name, "", &s); code != http.StatusOK {
		t.Fatalf("GET /v1/schedules/%s: %d", name, code)
	}
	return s
}

// pagesBrowser is the portal in one Chromium tab.
type pagesBrowser struct {
	ctx  context.Context
	base string
}

// pageWait bounds each wait for the page: the slowest is a job that runs.
const pageWait = 60 * time.Second

func (b *pagesBrowser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\npage: %s", what, err, b.text())
	}
}

// signIn signs in on the portal's form with token.
func (b *pagesBrowser) signIn(t *testing.T, token string) {
	t.Helper()
	b.do(t, "sign in",
		chromedp.Navigate(b.base+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="login-token"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-test="login-token"]`), token),
		chromedp.Click(chromedp.CSS(`[data-test="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-test="whoami"]`)),
	)
}

// open goes to the portal's route hash and waits for sel to show.
func (b *pagesBrowser) open(t *testing.T, hash, sel string) {
	t.Helper()
	b.do(t, "open "+hash, chromedp.Navigate(b.base+"/ui/"+hash), chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (b *pagesBrowser) set(t *testing.T, sel, value string) {
	t.Helper()
	b.do(t, "set "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

func (b *pagesBrowser) click(t *testing.T, sel string) {
	t.Helper()
	b.do(t, "click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// wait polls the page until the JavaScript expression js is truthy.
func (b *pagesBrowser) wait(t *testing.T, js, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, pageWait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+js+")", chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(pageWait))); err != nil {
		t.Fatalf("waiting for %s: %v\npage: %s", what, err, b.text())
	}
}

// eval is the string value of the JavaScript expression js.
func (b *pagesBrowser) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("String("+js+")"))
	if err != nil {
		t.Fatalf("evaluate %s: %v\npage: %s", js, err, b.text())
	}
	return v
}

// text is what the page shows, for a failure's message.
func (b *pagesBrowser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return v
}
