package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// pushBody is a GitHub push of commit sha: each sha is a body of its own,
// so no delivery is a duplicate of another.
func pushBody(sha string) []byte {
	return []byte(`{"ref":"refs/heads/main","after":"` + sha + `","repository":{"full_name":"acme/train"}}`)
}

// TestTriggerPatch changes a trigger's filter and job: the hook URL stays,
// deliveries follow the new definition, and the audit log says what
// changed, never a secret.
func TestTriggerPatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	before := f.createTrigger(admin.Secret, `{"name":"ci","provider":"github","secret":"`+secret+`","filter":{"event":"push"},
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)
	if before.UpdatedAt != nil || before.PreviousSecretUntil != nil {
		t.Fatalf("new trigger: updated_at %v, previous_secret_until %v; want neither", before.UpdatedAt, before.PreviousSecretUntil)
	}

	var after api.Trigger
	f.mustCall("PATCH", "/v1/triggers/ci", admin.Secret, `{"filter":{"event":"release","ref":"refs/heads/main"},
		"job":{"image":"localhost/y:2","command":["y","{{ .payload.after }}"],"env":{"SHA":"{{ .payload.after }}"}}}`, &after)
	if after.ID != before.ID || after.HookURL != before.HookURL || after.Provider != "github" || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Fatalf("patched trigger %+v; want id, hook_url, provider and created_at of %+v", after, before)
	}
	if after.UpdatedAt == nil || after.PreviousSecretUntil != nil {
		t.Fatalf("patched trigger: updated_at %v, previous_secret_until %v; want updated_at only", after.UpdatedAt, after.PreviousSecretUntil)
	}
	if diff := cmp.Diff(api.TriggerFilter{Event: "release", Ref: "refs/heads/main"}, after.Filter); diff != "" {
		t.Fatalf("filter (-want +got):\n%s", diff)
	}
	if after.Job.Image != "localhost/y:2" || after.Job.Env["SHA"] != "{{ .payload.after }}" {
		t.Fatalf("job %+v, want the new template", after.Job)
	}
	var got api.Trigger
	f.mustCall("GET", "/v1/triggers/ci", admin.Secret, "", &got)
	if diff := cmp.Diff(after, got); diff != "" {
		t.Fatalf("GET after PATCH (-patch +get):\n%s", diff)
	}

	body := pushBody("aaaa1111")
	if code, resp := f.deliver("", before.HookURL, githubHeaders(secret, "push", "d-1", body), body); code != http.StatusOK || !strings.Contains(resp, `"ignored"`) {
		t.Fatalf("push after the filter moved to release: %d %s, want 200 ignored", code, resp)
	}
	code, resp := f.deliver("", before.HookURL, githubHeaders(secret, "release", "d-2", body), body)
	if code != http.StatusAccepted {
		t.Fatalf("release: %d %s, want 202", code, resp)
	}
	var ha hookAnswer
	_ = json.Unmarshal([]byte(resp), &ha)
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+ha.JobID, admin.Secret, "", &j)
	if j.Spec.Image != "localhost/y:2" || !cmp.Equal(j.Spec.Command, []string{"y", "aaaa1111"}) || j.Spec.Env["SHA"] != "aaaa1111" {
		t.Fatalf("job from the patched template: image %s, command %v, env %v", j.Spec.Image, j.Spec.Command, j.Spec.Env)
	}

	// {} changes nothing, as PATCH /v1/deployments/:name.
	var same api.Trigger
	f.mustCall("PATCH", "/v1/triggers/ci", admin.Secret, `{}`, &same)
	if diff := cmp.Diff(after, same); diff != "" {
		t.Fatalf("empty patch changed the trigger (-before +after):\n%s", diff)
	}

	f.mustCall("PATCH", "/v1/triggers/ci", admin.Secret, `{"secret":"another-github-secret-0123"}`, nil)
	var audit api.AuditPage
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &audit)
	var updates []string
	for _, e := range audit.Entries {
		if strings.Contains(e.Target, secret) || strings.Contains(e.Target, "another-github-secret") {
			t.Fatalf("audit entry holds a secret: %+v", e)
		}
		if e.Action == "trigger.update" {
			updates = append(updates, e.Target)
		}
	}
	if diff := cmp.Diff([]string{"ci (secret)", "ci (filter, job)"}, updates); diff != "" {
		t.Fatalf("trigger.update entries, newest first (-want +got):\n%s", diff)
	}
	if redisText := testenv.RedisValues(t, f.st.Redis()); strings.Contains(redisText, "another-github-secret") {
		t.Fatal("redis holds a rotated trigger secret in clear")
	}
}

// TestTriggerSecretRotation: after a rotation both secrets sign deliveries
// until the grace ends, then only the new one; a grace of 0 ends the old one
// at once.
func TestTriggerSecretRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := f.clock(t0)
	const s1, s2, s3 = "first-github-secret-0123456789", "second-github-secret-012345678", "third-github-secret-0123456789"
	tv := f.createTrigger(systemToken, `{"name":"ci","provider":"github","secret":"`+s1+`","filter":{"event":"push"},
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)
	n := 0
	send := func(secret string, want int) {
		t.Helper()
		n++
		body := pushBody(fmt.Sprintf("sha%04d", n))
		if code, resp := f.deliver("", tv.HookURL, githubHeaders(secret, "push", fmt.Sprintf("d-%d", n), body), body); code != want {
			t.Fatalf("delivery %d signed with %.6s… at %s: %d %s, want %d", n, secret, clk.now().Format(time.RFC3339), code, resp, want)
		}
	}

	var v api.Trigger
	f.mustCall("PATCH", "/v1/triggers/ci", systemToken, `{"secret":"`+s2+`"}`, &v)
	if v.ID != tv.ID || v.HookURL != tv.HookURL {
		t.Fatalf("rotation moved the hook: %s, was %s", v.HookURL, tv.HookURL)
	}
	until := t0.Add(86400 * time.Second)
	if v.PreviousSecretUntil == nil || !v.PreviousSecretUntil.Equal(until) {
		t.Fatalf("previous_secret_until %v, want %s (the default grace of a day)", v.PreviousSecretUntil, until)
	}
	send(s1, http.StatusAccepted)
	send(s2, http.StatusAccepted)
	clk.set(until.Add(-time.Second))
	send(s1, http.StatusAccepted)

	clk.set(until)
	send(s1, http.StatusUnauthorized)
	send(s2, http.StatusAccepted)
	var ended api.Trigger
	f.mustCall("GET", "/v1/triggers/ci", systemToken, "", &ended)
	if ended.PreviousSecretUntil != nil {
		t.Fatalf("previous_secret_until %v after the grace, want none", ended.PreviousSecretUntil)
	}

	// A custom grace, then a grace of 0, which also ends the one before.
	f.mustCall("PATCH", "/v1/triggers/ci", systemToken, `{"secret":"`+s1+`","secret_grace_seconds":60}`, &v)
	if v.PreviousSecretUntil == nil || !v.PreviousSecretUntil.Equal(until.Add(time.Minute)) {
		t.Fatalf("previous_secret_until %v, want a minute from now", v.PreviousSecretUntil)
	}
	send(s2, http.StatusAccepted)
	var noGrace api.Trigger
	f.mustCall("PATCH", "/v1/triggers/ci", systemToken, `{"secret":"`+s3+`","secret_grace_seconds":0}`, &noGrace)
	if noGrace.PreviousSecretUntil != nil {
		t.Fatalf("previous_secret_until %v with a grace of 0, want none", noGrace.PreviousSecretUntil)
	}
	send(s1, http.StatusUnauthorized)
	send(s2, http.StatusUnauthorized)
	send(s3, http.StatusAccepted)
}

// TestTriggerSecretRotationStandard rotates a Standard Webhooks secret.
func TestTriggerSecretRotationStandard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := f.clock(t0)
	old, fresh := webhook.NewSecret(), webhook.NewSecret()
	tv := f.createTrigger(systemToken, `{"name":"std","provider":"standard","secret":"`+old+`","job":{"image":"localhost/x:1","command":["x"]}}`)
	if code, body := f.call("PATCH", "/v1/triggers/std", systemToken, `{"secret":"github-style-secret-0123456789"}`); code != http.StatusUnprocessableEntity || !strings.Contains(body, "secret must be a Standard Webhooks secret") {
		t.Fatalf("non-whsec secret for a standard trigger: %d %s, want 422", code, body)
	}
	f.mustCall("PATCH", "/v1/triggers/std", systemToken, `{"secret":"`+fresh+`","secret_grace_seconds":3600}`, nil)
	n := 0
	send := func(secret string, want int) {
		t.Helper()
		n++
		body := []byte(fmt.Sprintf(`{"type":"dataset.updated","n":%d}`, n))
		h := standardHeaders(t, secret, fmt.Sprintf("msg-%d", n), clk.now(), body)
		if code, resp := f.deliver("", tv.HookURL, h, body); code != want {
			t.Fatalf("delivery %d at %s: %d %s, want %d", n, clk.now().Format(time.RFC3339), code, resp, want)
		}
	}
	send(old, http.StatusAccepted)
	send(fresh, http.StatusAccepted)
	clk.set(t0.Add(time.Hour))
	send(old, http.StatusUnauthorized)
	send(fresh, http.StatusAccepted)
}

// TestTriggerPatchRefusals: bad patches are 422 naming the field and change
// nothing; an unknown trigger and another workspace's are 404; PATCH needs
// the admin scope, as create does.
func TestTriggerPatchRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	admin, adminB := f.token("team-a", api.ScopeAdmin), f.token("team-b", api.ScopeAdmin)
	submit := f.token("team-a", api.ScopeSubmit)
	const secret = "0123456789abcdef-github-secret"
	before := f.createTrigger(admin.Secret, triggerBody("ci"))
	f.createTrigger(adminB.Secret, triggerBody("theirs"))

	cases := []struct{ name, body, mentions string }{
		{"grace without secret", `{"secret_grace_seconds":60}`, "secret_grace_seconds"},
		{"negative grace", `{"secret":"` + secret + `","secret_grace_seconds":-1}`, "secret_grace_seconds must be"},
		{"grace over 30 days", `{"secret":"` + secret + `","secret_grace_seconds":2592001}`, "secret_grace_seconds must be"},
		{"grace not a number", `{"secret":"` + secret + `","secret_grace_seconds":"1d"}`, "secret_grace_seconds"},
		{"short secret", `{"secret":"short"}`, "secret must be"},
		{"control character in filter", `{"filter":{"event":"push\u0007"}}`, "filter.event"},
		{"unknown filter field", `{"filter":{"branch":"main"}}`, "unknown field"},
		{"provider", `{"provider":"standard"}`, "unknown field"},
		{"name", `{"name":"other"}`, "unknown field"},
		{"previous secret", `{"previous_secret":"` + secret + `"}`, "unknown field"},
		{"job without command", `{"job":{"image":"localhost/x:1"}}`, "command"},
		{"unknown job field", `{"job":{"image":"localhost/x:1","command":["x"],"gpu":1}}`, "job: unknown field"},
		{"template syntax", `{"job":{"image":"localhost/x:1","command":["x","{{ .payload.after"]}}`, "job.command[1]"},
		{"templated image", `{"job":{"image":"{{ .payload.image }}","command":["x"]}}`, "job.image is not a template"},
		{"bad image", `{"job":{"image":"Not An Image","command":["x"]}}`, "image"},
		{"unknown workspace secret", `{"job":{"image":"localhost/x:1","command":["x"],"secrets":{"DB":"nope"}}}`, "no secret named"},
	}
	for _, tt := range cases {
		code, body := f.call("PATCH", "/v1/triggers/ci", admin.Secret, tt.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tt.mentions) {
			t.Errorf("%s: %d %s, want 422 mentioning %q", tt.name, code, body, tt.mentions)
		}
	}
	if code, body := f.call("PATCH", "/v1/triggers/ci", admin.Secret, ""); code != http.StatusBadRequest {
		t.Errorf("no body: %d %s, want 400", code, body)
	}
	if code, body := f.call("PATCH", "/v1/triggers/nope", admin.Secret, `{"filter":{"event":"push"}}`); code != http.StatusNotFound {
		t.Errorf("unknown trigger: %d %s, want 404", code, body)
	}
	if code, body := f.call("PATCH", "/v1/triggers/theirs", admin.Secret, `{"filter":{"event":"release"}}`); code != http.StatusNotFound {
		t.Errorf("team-b's trigger with team-a's token: %d %s, want 404", code, body)
	}
	if code, body := f.call("PATCH", "/v1/triggers/ci", submit.Secret, `{"filter":{"event":"release"}}`); code != http.StatusForbidden {
		t.Errorf("submit scope: %d %s, want 403", code, body)
	}

	var now api.Trigger
	f.mustCall("GET", "/v1/triggers/ci", admin.Secret, "", &now)
	if diff := cmp.Diff(before, now); diff != "" {
		t.Fatalf("refused patches changed the trigger (-before +after):\n%s", diff)
	}
	var theirs api.Trigger
	f.mustCall("GET", "/v1/triggers/theirs", adminB.Secret, "", &theirs)
	if theirs.Filter.Event != "push" || theirs.UpdatedAt != nil {
		t.Fatalf("team-b's trigger changed: %+v", theirs)
	}
	// The largest grace is allowed.
	f.mustCall("PATCH", "/v1/triggers/ci", admin.Secret, `{"secret":"`+secret+`","secret_grace_seconds":2592000}`, nil)
}

// TestTriggerPatchConcurrent: patches of different fields at once all
// land; none undoes another.
func TestTriggerPatchConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createTrigger(systemToken, triggerBody("ci"))
	done := make(chan string, 2)
	go func() {
		code, body := f.call("PATCH", "/v1/triggers/ci", systemToken, `{"filter":{"event":"release"}}`)
		done <- fmt.Sprint(code, body)
	}()
	go func() {
		code, body := f.call("PATCH", "/v1/triggers/ci", systemToken, `{"job":{"image":"localhost/y:2","command":["y"]}}`)
		done <- fmt.Sprint(code, body)
	}()
	for range 2 {
		if r := <-done; !strings.HasPrefix(r, "200") {
			t.Fatalf("patch: %s", r)
		}
	}
	var v api.Trigger
	f.mustCall("GET", "/v1/triggers/ci", systemToken, "", &v)
	if v.Filter.Event != "release" || v.Job.Image != "localhost/y:2" {
		t.Fatalf("after two concurrent patches: filter %+v, image %s; want both", v.Filter, v.Job.Image)
	}
}
