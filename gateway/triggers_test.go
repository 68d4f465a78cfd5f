package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// GitHub's documented test vector for X-Hub-Signature-256
// (docs.github.com, "Validating webhook deliveries").
const (
	githubVectorSecret    = "It's a Secret to Everybody"
	githubVectorPayload   = "Hello, World!"
	githubVectorSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// triggerBody is a valid GitHub trigger named name, for tests that need one.
func triggerBody(name string) string {
	return `{"name":"` + name + `","provider":"github","secret":"isolation-secret-0123456789",
		"filter":{"event":"push"},"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`
}

// createTrigger creates a trigger from body with token and returns it.
func (f *fixture) createTrigger(token, body string) api.Trigger {
	f.t.Helper()
	var tv api.Trigger
	f.mustCall("POST", "/v1/triggers", token, body, &tv)
	return tv
}

// deliver POSTs body with headers h to the hook at path on server url (the
// fixture's when "").
func (f *fixture) deliver(url, path string, h http.Header, body []byte) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest("POST", cmpOr(url, f.ts.URL)+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hookAnswer is what an accepted or duplicate delivery gets back.
type hookAnswer struct {
	JobID string `json:"job_id"`
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// githubHeaders are the headers GitHub sends, the body signed with secret
// (no signature when secret is "").
func githubHeaders(secret, event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", delivery)
	if secret != "" {
		h.Set(webhook.HeaderGitHubSignature, webhook.SignGitHub([]byte(secret), body))
	}
	return h
}

// standardHeaders are Standard Webhooks headers for message id sent at ts.
func standardHeaders(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := webhook.SignStandard(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, fmt.Sprint(ts.Unix()))
	h.Set(webhook.HeaderSignature, sig)
	return h
}

func (f *fixture) jobsIn(ws string) int {
	f.t.Helper()
	jobs, _, err := f.st.ListJobs(context.Background(), ws, store.ListFilter{Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(jobs)
}

func (f *fixture) deliveries(token, name string) []store.Delivery {
	f.t.Helper()
	var out struct{ Deliveries []store.Delivery }
	f.mustCall("GET", "/v1/triggers/"+name+"/deliveries", token, "", &out)
	return out.Deliveries
}

// outcomes lists deliveries as "id outcome", newest first.
func outcomes(ds []store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID + " " + d.Outcome
	}
	return out
}

// secondGateway starts another gateway on f's Redis with the same secrets
// key, as a second replica behind a load balancer would be.
func (f *fixture) secondGateway() *httptest.Server {
	f.t.Helper()
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		f.t.Fatal(err)
	}
	g, _ := newGateway(f.t, Config{AdminToken: systemToken}, control.Config{}, f.st.Redis(), f.st, box, nil)
	ts := httptest.NewServer(checked(f.t, g))
	f.t.Cleanup(ts.Close)
	return ts
}

// TestTriggerGitHubTestVector drives GitHub's documented signature through
// the hook: the vector's payload is not JSON, so a delivery that passes the
// signature check is refused for its payload (400), while one with a wrong
// signature is refused for that (401).
func TestTriggerGitHubTestVector(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	if got := webhook.SignGitHub([]byte(githubVectorSecret), []byte(githubVectorPayload)); got != githubVectorSignature {
		t.Fatalf("SignGitHub = %s, want GitHub's %s", got, githubVectorSignature)
	}
	tv := f.createTrigger(admin.Secret, `{"name":"vector","provider":"github","secret":"`+githubVectorSecret+`",
		"job":{"image":"localhost/x:1","command":["x"]}}`)
	forged := githubVectorSignature[:len(githubVectorSignature)-1] + "f"
	tests := []struct {
		name, event, delivery, signature string
		wantCode                         int
		wantBody                         string
	}{
		{"ping with the vector", "ping", "d-ping", githubVectorSignature, http.StatusOK, `{"pong":true}`},
		{"push with the vector", "push", "d-push", githubVectorSignature, http.StatusBadRequest, "not a JSON object"},
		{"push with a forged signature", "push", "d-forged", forged, http.StatusUnauthorized, "does not match"},
		{"ping with a forged signature", "ping", "d-forged-ping", forged, http.StatusUnauthorized, "does not match"},
		{"no signature", "push", "d-none", "", http.StatusUnauthorized, "missing"},
	}
	for _, tt := range tests {
		h := githubHeaders("", tt.event, tt.delivery, nil)
		if tt.signature != "" {
			h.Set(webhook.HeaderGitHubSignature, tt.signature)
		}
		code, body := f.deliver("", tv.HookURL, h, []byte(githubVectorPayload))
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, code, body, tt.wantCode, tt.wantBody)
		}
	}
	if n := f.jobsIn("team-a"); n != 0 {
		t.Fatalf("%d jobs, want none", n)
	}
	// Signed deliveries are recorded; forged ones are not.
	want := []string{"d-push rejected", "d-ping ignored"}
	if diff := cmp.Diff(want, outcomes(f.deliveries(admin.Secret, "vector"))); diff != "" {
		t.Fatalf("deliveries (-want +got):\n%s", diff)
	}
}

func TestTriggerGitHubPush(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tv := f.createTrigger(admin.Secret, `{"name":"retrain","provider":"github","secret":"`+secret+`",
		"filter":{"event":"push","ref":"refs/heads/main"},
		"job":{"image":"localhost/train:1",
		       "command":["train","--repo","{{ .payload.repository.full_name }}","--sha","{{ .payload.after }}"],
		       "preparation":["fetch","{{ .payload.after }}"],
		       "tags":{"commit":"{{ .payload.after }}"},
		       "env":{"GIT_SHA":"{{ .payload.after }}","EVENT":"{{ .event }}","DELIVERY":"{{ .delivery }}","FIXED":"1"}}}`)
	if !strings.HasPrefix(tv.HookURL, "/hooks/trg_") || !hookIDRE.MatchString(tv.ID) || tv.HookURL != "/hooks/"+tv.ID {
		t.Fatalf("trigger id %q, hook_url %q; want /hooks/trg_ and 26 base32 characters", tv.ID, tv.HookURL)
	}
	push := func(ref string) []byte {
		return []byte(`{"ref":"` + ref + `","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
			"repository":{"id":2432232314,"full_name":"acme/train $(reboot); rm -rf /"}}`)
	}
	// A later push carries another commit: its body differs.
	secondPush := bytes.Replace(push("refs/heads/main"), []byte("0d1a26e6"), []byte("9f3c1b77"), 1)
	noAfter := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"acme/train"}}`)

	var firstJob string
	steps := []struct {
		name, secret, event, delivery string
		body                          []byte
		wantCode                      int
		wantBody                      string
		wantJobs                      int
	}{
		{"push to main", secret, "push", "d-1", push("refs/heads/main"), http.StatusAccepted, `"job_id"`, 1},
		{"redelivery", secret, "push", "d-1", push("refs/heads/main"), http.StatusOK, `"duplicate":true`, 1},
		{"forged signature", "not-the-secret-at-all", "push", "d-2", push("refs/heads/main"), http.StatusUnauthorized, "does not match", 1},
		{"unsigned", "", "push", "d-3", push("refs/heads/main"), http.StatusUnauthorized, "missing", 1},
		{"other branch", secret, "push", "d-4", push("refs/heads/dev"), http.StatusOK, `"ignored":"ref \"refs/heads/dev\" is not \"refs/heads/main\""`, 1},
		{"other event", secret, "issues", "d-5", push("refs/heads/main"), http.StatusOK, `"ignored"`, 1},
		{"ping", secret, "ping", "d-6", []byte(`{"zen":"Keep it logically awesome."}`), http.StatusOK, `{"pong":true}`, 1},
		{"missing template key", secret, "push", "d-7", noAfter, http.StatusUnprocessableEntity, `job.env.GIT_SHA: cannot read .payload.after: \"after\" is missing from .payload`, 1},
		{"second push", secret, "push", "d-8", secondPush, http.StatusAccepted, `"job_id"`, 2},
	}
	for _, s := range steps {
		code, body := f.deliver("", tv.HookURL, githubHeaders(s.secret, s.event, s.delivery, s.body), s.body)
		if code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Fatalf("%s: %d %s, want %d with %s", s.name, code, body, s.wantCode, s.wantBody)
		}
		if n := f.jobsIn("team-a"); n != s.wantJobs {
			t.Fatalf("%s: %d jobs, want %d", s.name, n, s.wantJobs)
		}
		var res hookAnswer
		_ = json.Unmarshal([]byte(body), &res)
		if s.delivery == "d-1" {
			if firstJob == "" {
				firstJob = res.JobID
			} else if res.JobID != firstJob {
				t.Fatalf("%s: job %q, want the first delivery's %q", s.name, res.JobID, firstJob)
			}
		}
	}

	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+firstJob, admin.Secret, "", &j)
	wantCmd := []string{"train", "--repo", "acme/train $(reboot); rm -rf /", "--sha", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}
	if diff := cmp.Diff(wantCmd, j.Spec.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fetch", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}, j.Spec.Preparation); diff != "" {
		t.Errorf("preparation (-want +got):\n%s", diff)
	}
	if j.Tags["commit"] != "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" {
		t.Errorf("tags = %v, want the commit rendered", j.Tags)
	}
	wantEnv := map[string]string{"GIT_SHA": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "EVENT": "push", "DELIVERY": "d-1", "FIXED": "1"}
	if diff := cmp.Diff(wantEnv, j.Spec.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}

	ds := f.deliveries(admin.Secret, "retrain")
	want := []string{"d-8 accepted", "d-7 rejected", "d-6 ignored", "d-5 ignored", "d-4 ignored", "d-1 duplicate", "d-1 accepted"}
	if diff := cmp.Diff(want, outcomes(ds)); diff != "" {
		t.Fatalf("deliveries, newest first (-want +got):\n%s", diff)
	}
	if ds[1].JobID != "" || !strings.Contains(ds[1].Reason, `"after"`) {
		t.Errorf("rejected delivery: %+v; want no job and a reason naming the key", ds[1])
	}
	if ds[5].JobID != firstJob || ds[6].JobID != firstJob {
		t.Errorf("d-1 deliveries name jobs %q and %q, want %q", ds[5].JobID, ds[6].JobID, firstJob)
	}

	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &audit)
	var submits []string
	for _, e := range audit.Entries {
		if e.Action == "job.submit" {
			submits = append(submits, e.Actor+" "+e.Target)
		}
	}
	if len(submits) != 2 || submits[1] != "trigger:retrain "+firstJob {
		t.Errorf("job.submit audit entries %v, want two by trigger:retrain", submits)
	}
}

// TestTriggerConcurrentDuplicates sends one delivery ten times at once, to two
// gateways on one Redis: one job is made and every answer names it.
func TestTriggerConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tv := f.createTrigger(admin.Secret, `{"name":"dup","provider":"github","secret":"`+secret+`",
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)
	other := f.secondGateway()
	body := []byte(`{"ref":"refs/heads/main","after":"abc123"}`)

	type answer struct {
		code int
		body string
	}
	answers := make([]answer, 10)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			url := f.ts.URL
			if i%2 == 1 {
				url = other.URL
			}
			req, _ := http.NewRequest("POST", url+tv.HookURL, bytes.NewReader(body))
			req.Header = githubHeaders(secret, "push", "same-delivery", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers[i] = answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, string(b)}
		})
	}
	wg.Wait()

	accepted, jobIDs := 0, map[string]bool{}
	for i, a := range answers {
		var res hookAnswer
		if a.code/100 != 2 || json.Unmarshal([]byte(a.body), &res) != nil || res.JobID == "" {
			t.Fatalf("delivery %d: %d %s, want 2xx with a job_id", i, a.code, a.body)
		}
		if a.code == http.StatusAccepted {
			accepted++
		}
		jobIDs[res.JobID] = true
	}
	if accepted != 1 || len(jobIDs) != 1 {
		t.Fatalf("%d accepted, job ids %v; want one 202 and one job id in every answer", accepted, jobIDs)
	}
	if n := f.jobsIn("team-a"); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

func TestTriggerStandardWebhooks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	current, previous, stranger := webhook.NewSecret(), webhook.NewSecret(), webhook.NewSecret()
	tv := f.createTrigger(admin.Secret, `{"name":"dataset","provider":"standard","secret":"`+current+`","previous_secret":"`+previous+`",
		"filter":{"event":"dataset.updated"},
		"job":{"image":"localhost/train:1","command":["train","--dataset-version","{{ .payload.data.version }}"]}}`)
	updated := []byte(`{"type":"dataset.updated","data":{"version":42}}`)
	deleted := []byte(`{"type":"dataset.deleted","data":{"version":42}}`)
	now := time.Now()

	var firstJob string
	steps := []struct {
		name, secret, id string
		at               time.Time
		body             []byte
		wantCode         int
		wantBody         string
		wantJobs         int
	}{
		{"valid", current, "msg_1", now, updated, http.StatusAccepted, `"job_id"`, 1},
		{"same webhook-id again", current, "msg_1", now, updated, http.StatusOK, `"duplicate":true`, 1},
		{"signed with the previous secret", previous, "msg_2", now, updated, http.StatusAccepted, `"job_id"`, 2},
		{"signed with another secret", stranger, "msg_3", now, updated, http.StatusUnauthorized, "matches the body", 2},
		{"stale timestamp", current, "msg_4", now.Add(-6 * time.Minute), updated, http.StatusUnauthorized, "old", 2},
		{"timestamp in the future", current, "msg_5", now.Add(6 * time.Minute), updated, http.StatusUnauthorized, "future", 2},
		{"other type", current, "msg_6", now, deleted, http.StatusOK, `"ignored"`, 2},
	}
	for _, s := range steps {
		code, body := f.deliver("", tv.HookURL, standardHeaders(t, s.secret, s.id, s.at, s.body), s.body)
		if code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Fatalf("%s: %d %s, want %d with %s", s.name, code, body, s.wantCode, s.wantBody)
		}
		if n := f.jobsIn("team-a"); n != s.wantJobs {
			t.Fatalf("%s: %d jobs, want %d", s.name, n, s.wantJobs)
		}
		var res hookAnswer
		_ = json.Unmarshal([]byte(body), &res)
		if s.id == "msg_1" {
			if firstJob == "" {
				firstJob = res.JobID
			} else if res.JobID != firstJob {
				t.Fatalf("%s: job %q, want the first delivery's %q", s.name, res.JobID, firstJob)
			}
		}
	}
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+firstJob, admin.Secret, "", &j)
	if diff := cmp.Diff([]string{"train", "--dataset-version", "42"}, j.Spec.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	want := []string{"msg_6 ignored", "msg_2 accepted", "msg_1 duplicate", "msg_1 accepted"}
	if diff := cmp.Diff(want, outcomes(f.deliveries(admin.Secret, "dataset"))); diff != "" {
		t.Fatalf("deliveries, newest first (-want +got):\n%s", diff)
	}
}

func TestTriggerHookErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tv := f.createTrigger(admin.Secret, `{"name":"errs","provider":"github","secret":"`+secret+`",
		"job":{"image":"localhost/x:1","command":["x"]}}`)
	small := []byte(`{"after":"1"}`)
	big := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)

	for _, tt := range []struct {
		name, path string
		body       []byte
		chunked    bool
		wantCode   int
	}{
		{"unknown hook", "/hooks/" + newHookID(), small, false, http.StatusNotFound},
		{"malformed hook id", "/hooks/nope", small, false, http.StatusNotFound},
		{"body over 1 MiB", tv.HookURL, big, false, http.StatusRequestEntityTooLarge},
		{"chunked body over 1 MiB", tv.HookURL, big, true, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				r = io.MultiReader(r) // hides the length: sent chunked
			}
			req, _ := http.NewRequest("POST", f.ts.URL+tt.path, r)
			req.Header = githubHeaders(secret, "push", "d-"+tt.name, tt.body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e api.ErrorBody
			if resp.StatusCode != tt.wantCode || json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
				t.Fatalf("%d %s, want %d with a JSON error", resp.StatusCode, b, tt.wantCode)
			}
		})
	}
	// A deleted trigger's hook is gone.
	f.mustCall("DELETE", "/v1/triggers/errs", admin.Secret, "", nil)
	if code, body := f.deliver("", tv.HookURL, githubHeaders(secret, "push", "d-after-delete", small), small); code != http.StatusNotFound {
		t.Fatalf("hook of a deleted trigger: %d %s, want 404", code, body)
	}
	if n := f.jobsIn("team-a"); n != 0 {
		t.Fatalf("%d jobs, want none", n)
	}
}

func TestTriggerAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	admin, adminB := f.token("team-a", api.ScopeAdmin), f.token("team-b", api.ScopeAdmin)
	const ghSecret = "0123456789abcdef-github-secret"
	whsec := webhook.NewSecret()
	job := `"job":{"image":"localhost/x:1","command":["x"]}`

	invalidCases := []struct {
		name, body, mentions string
	}{
		{"bad name", `{"name":"no spaces","provider":"github","secret":"` + ghSecret + `",` + job + `}`, "name"},
		{"unknown provider", `{"name":"t","provider":"gitlab","secret":"` + ghSecret + `",` + job + `}`, "provider"},
		{"no secret", `{"name":"t","provider":"github",` + job + `}`, "secret must be"},
		{"short github secret", `{"name":"t","provider":"github","secret":"short",` + job + `}`, "secret must be"},
		{"standard secret not base64", `{"name":"t","provider":"standard","secret":"whsec_!!!",` + job + `}`, "whsec_"},
		{"standard key too short", `{"name":"t","provider":"standard","secret":"whsec_` + base64.StdEncoding.EncodeToString([]byte("8 bytes!")) + `",` + job + `}`, "16 or more"},
		{"bad previous secret", `{"name":"t","provider":"standard","secret":"` + whsec + `","previous_secret":"nope",` + job + `}`, "previous_secret"},
		{"no job", `{"name":"t","provider":"github","secret":"` + ghSecret + `"}`, "job is required"},
		{"unknown job field", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"imagee":"x"}}`, "unknown field"},
		{"template syntax", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1","command":["x","{{ .payload.after"]}}`, "job.command[1]"},
		{"template syntax in preparation", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1","command":["x"],"preparation":["p","{{ .x"]}}`, "job.preparation[1]"},
		{"template function", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1","command":["x"],"env":{"A":"{{ call .payload.f }}"}}}`, "job.env.A"},
		{"template range", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1","command":["x"],"env":{"A":"{{ range .payload.commits }}x{{ end }}"}}}`, "range"},
		{"templated image", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"{{ .payload.image }}","command":["x"]}}`, "not a template"},
		{"bad image", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"Not An Image","command":["x"]}}`, "image"},
		{"no command", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1"}}`, "command"},
		{"unknown workspace secret", `{"name":"t","provider":"github","secret":"` + ghSecret + `","job":{"image":"localhost/x:1","command":["x"],"secrets":{"DB":"nope"}}}`, "no secret named"},
		{"unknown field", `{"name":"t","provider":"github","secret":"` + ghSecret + `","secrets":["a","b"],` + job + `}`, "unknown field"},
	}
	for _, tt := range invalidCases {
		code, body := f.call("POST", "/v1/triggers", admin.Secret, tt.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tt.mentions) {
			t.Errorf("%s: %d %s, want 422 mentioning %q", tt.name, code, body, tt.mentions)
		}
	}

	gh := f.createTrigger(admin.Secret, `{"name":"gh","provider":"github","secret":"`+ghSecret+`","filter":{"event":"push"},
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"],
		       "notify":{"url":"https://ci.example.com/hook","secret":"`+whsec+`"}}}`)
	f.createTrigger(admin.Secret, `{"name":"std","provider":"standard","secret":"`+whsec+`",`+job+`}`)
	if code, body := f.call("POST", "/v1/triggers", admin.Secret, `{"name":"gh","provider":"github","secret":"`+ghSecret+`",`+job+`}`); code != http.StatusConflict {
		t.Errorf("same name again: %d %s, want 409", code, body)
	}

	// Secrets never come back, nor sit in Redis in clear.
	var list struct{ Triggers []api.Trigger }
	f.mustCall("GET", "/v1/triggers", admin.Secret, "", &list)
	_, one := f.call("GET", "/v1/triggers/gh", admin.Secret, "")
	raw, _ := json.Marshal(list)
	for _, leak := range []string{ghSecret, whsec, strings.TrimPrefix(whsec, webhook.SecretPrefix)} {
		if strings.Contains(string(raw)+one, leak) {
			t.Fatalf("the API shows a trigger secret: %s %s", raw, one)
		}
	}
	if redisText := testenv.RedisValues(t, f.st.Redis()); strings.Contains(redisText, ghSecret) {
		t.Fatal("redis holds a trigger's signing secret in clear")
	}
	var names []string
	for _, tv := range list.Triggers {
		names = append(names, tv.Name+" "+tv.Provider+" "+tv.HookURL)
	}
	if diff := cmp.Diff([]string{"gh github " + gh.HookURL, "std standard /hooks/" + list.Triggers[1].ID}, names); diff != "" {
		t.Errorf("trigger list (-want +got):\n%s", diff)
	}
	if list.Triggers[0].Job.Notify == nil || list.Triggers[0].Job.Notify.Secret != "***" {
		t.Errorf("job template's notify secret is not hidden: %+v", list.Triggers[0].Job.Notify)
	}

	// Another workspace sees none of it.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/triggers/gh"}, {"GET", "/v1/triggers/gh/deliveries"}, {"DELETE", "/v1/triggers/gh"},
	} {
		if code, body := f.call(c.method, c.path, adminB.Secret, ""); code != http.StatusNotFound {
			t.Errorf("team-b %s %s: %d %s, want 404", c.method, c.path, code, body)
		}
	}
	if _, body := f.call("GET", "/v1/triggers", adminB.Secret, ""); body != `{"triggers":[]}`+"\n" {
		t.Errorf("team-b's trigger list: %s, want empty", body)
	}
	// team-b may use the same name for its own trigger.
	f.createTrigger(adminB.Secret, `{"name":"gh","provider":"github","secret":"`+ghSecret+`",`+job+`}`)

	f.mustCall("DELETE", "/v1/triggers/gh", admin.Secret, "", nil)
	for _, path := range []string{"/v1/triggers/gh", "/v1/triggers/gh/deliveries"} {
		if code, body := f.call("GET", path, admin.Secret, ""); code != http.StatusNotFound {
			t.Errorf("GET %s after delete: %d %s, want 404", path, code, body)
		}
	}
	if code, _ := f.call("GET", "/v1/triggers/gh", adminB.Secret, ""); code != http.StatusOK {
		t.Errorf("deleting team-a's gh touched team-b's: %d", code)
	}
	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &audit)
	var got []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "trigger.") {
			got = append(got, e.Action+" "+e.Target+" by "+e.Actor)
		}
	}
	want := []string{"trigger.delete gh by t-admin", "trigger.create std by t-admin", "trigger.create gh by t-admin"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

// TestTriggersNeedTheSecretsKey: without a secrets key a gateway cannot keep
// signing secrets, so it refuses to create triggers.
func TestTriggersNeedTheSecretsKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g, _ := newGateway(t, Config{AdminToken: systemToken}, control.Config{}, f.st.Redis(), f.st, nil, nil)
	ts := httptest.NewServer(checked(t, g))
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/v1/triggers", strings.NewReader(triggerBody("t")))
	req.Header.Set("Authorization", "Bearer "+systemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "secrets-key-file") {
		t.Fatalf("%d %s, want 503 naming --secrets-key-file", resp.StatusCode, b)
	}
}
