package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestTriggerGitHubReplayUnderNewDeliveryID: GitHub signs only the body, so
// a captured delivery sent again with its signature under a fresh
// X-GitHub-Delivery must not start another job: it is a duplicate of the
// first, however often it comes, and however many at once, through two
// gateways.
func TestTriggerGitHubReplayUnderNewDeliveryID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tv := f.createTrigger(admin.Secret, `{"name":"replay","provider":"github","secret":"`+secret+`",
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)
	push := func(sha string) []byte {
		return []byte(`{"ref":"refs/heads/main","after":"` + sha + `","head_commit":{"id":"` + sha + `","timestamp":"2026-12-01T10:00:00Z"}}`)
	}
	captured := push("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
	noAfter := []byte(`{"ref":"refs/heads/main"}`)

	var firstJob string
	steps := []struct {
		name, delivery string
		body           []byte
		wantCode       int
		wantJobs       int
		wantFirst      bool // the answer names the first job
	}{
		{"first delivery", "d-1", captured, http.StatusAccepted, 1, true},
		{"replayed under a new id", "d-replay", captured, http.StatusOK, 1, true},
		{"replayed again under that id", "d-replay", captured, http.StatusOK, 1, true},
		{"GitHub's redelivery (same id)", "d-1", captured, http.StatusOK, 1, true},
		{"another push", "d-2", push("9f3c1b77e0a4d2c6b8e1f5a3c7d9b0e2f4a6c8d0"), http.StatusAccepted, 2, false},
		{"a delivery that fails", "d-bad", noAfter, http.StatusUnprocessableEntity, 2, false},
		// A failed delivery holds no claim: the same body fails again, not 409.
		{"the same body, failing again", "d-bad-2", noAfter, http.StatusUnprocessableEntity, 2, false},
	}
	for _, s := range steps {
		code, body := f.deliver("", tv.HookURL, githubHeaders(secret, "push", s.delivery, s.body), s.body)
		var res struct {
			JobID     string `json:"job_id"`
			Duplicate bool   `json:"duplicate"`
		}
		_ = json.Unmarshal([]byte(body), &res)
		if code != s.wantCode || (code == http.StatusOK) != res.Duplicate {
			t.Fatalf("%s: %d %s, want %d (a duplicate when 200)", s.name, code, body, s.wantCode)
		}
		if firstJob == "" {
			firstJob = res.JobID
		}
		if s.wantFirst && res.JobID != firstJob {
			t.Fatalf("%s: job %q, want the first delivery's %q", s.name, res.JobID, firstJob)
		}
		if n := f.jobsIn("team-a"); n != s.wantJobs {
			t.Fatalf("%s: %d jobs, want %d", s.name, n, s.wantJobs)
		}
	}
	ds := f.deliveries(admin.Secret, "replay")
	want := []string{"d-bad-2 rejected", "d-bad rejected", "d-2 accepted", "d-1 duplicate",
		"d-replay duplicate", "d-replay duplicate", "d-1 accepted"}
	if diff := cmp.Diff(want, outcomes(ds)); diff != "" {
		t.Fatalf("deliveries, newest first (-want +got):\n%s", diff)
	}
	if d := ds[5]; d.JobID != firstJob || !strings.Contains(d.Reason, "same body") {
		t.Errorf("the replay is recorded as %+v; want the first job and a reason naming the body", d)
	}

	// The same body at once under ten delivery ids, to two gateways: one job.
	other := f.secondGateway()
	burst := push("5e8a1c3b7d9f2e4a6c8b0d1f3e5a7c9b1d3f5e7a")
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
			req, _ := http.NewRequest("POST", url+tv.HookURL, bytes.NewReader(burst))
			req.Header = githubHeaders(secret, "push", "burst-"+string(rune('a'+i)), burst)
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
			t.Fatalf("burst delivery %d: %d %s, want 2xx with a job_id", i, a.code, a.body)
		}
		if a.code == http.StatusAccepted {
			accepted++
		}
		jobIDs[res.JobID] = true
	}
	if accepted != 1 || len(jobIDs) != 1 {
		t.Fatalf("%d accepted, job ids %v; want one 202 and one job id in every answer", accepted, jobIDs)
	}
	if n := f.jobsIn("team-a"); n != 3 {
		t.Fatalf("%d jobs, want 3", n)
	}
}

// githubBranchDeletion is the push GitHub sends when a branch is deleted:
// head_commit is null and commits is empty.
const githubBranchDeletion = `{"ref":"refs/heads/feature/lr-sweep",
  "before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"0000000000000000000000000000000000000000",
  "repository":{"id":2432232314,"full_name":"acme/train-resnet"},
  "pusher":{"name":"octocat","email":"octocat@users.noreply.github.com"},
  "created":false,"deleted":true,"forced":false,"base_ref":null,
  "compare":"https://github.com/acme/train-resnet/compare/6113728f27ae...000000000000",
  "commits":[],"head_commit":null}`

// TestTriggerTemplateErrorsNameThePath: a delivery that lacks what the
// template reads gets a 422 naming the string in the job and the field path,
// and saying the step was null or missing, in JSON's terms, not Go's.
func TestTriggerTemplateErrorsNameThePath(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tests := []struct {
		name, job, want string
	}{
		{"head_commit null", `{"image":"localhost/x:1","command":["x"],"env":{"GIT_SHA":"{{ .payload.head_commit.id }}"}}`,
			"job.env.GIT_SHA: cannot read .payload.head_commit.id: .payload.head_commit is null"},
		{"missing field", `{"image":"localhost/x:1","command":["x"],"tags":{"pr":"{{ .payload.pull_request.number }}"}}`,
			`job.tags.pr: cannot read .payload.pull_request.number: "pull_request" is missing from .payload`},
		{"empty commits", `{"image":"localhost/x:1","command":["x","--sha","{{ (index .payload.commits 0).id }}"]}`,
			"job.command[2]: at {{ (index .payload.commits 0).id }}: index: index 0 is out of range: the value has 0 elements"},
		{"field of a string", `{"image":"localhost/x:1","command":["x"],"preparation":["fetch","{{ .payload.ref.name }}"]}`,
			"job.preparation[1]: cannot read .payload.ref.name: .payload.ref is a string, not an object"},
	}
	body := []byte(githubBranchDeletion)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "path-" + string(rune('a'+i))
			tv := f.createTrigger(admin.Secret, `{"name":"`+name+`","provider":"github","secret":"`+secret+`","job":`+tt.job+`}`)
			code, got := f.deliver("", tv.HookURL, githubHeaders(secret, "push", "d-"+name, body), body)
			var e api.ErrorBody
			if code != http.StatusUnprocessableEntity || json.Unmarshal([]byte(got), &e) != nil {
				t.Fatalf("%d %s, want 422", code, got)
			}
			if e.Error.Message != tt.want {
				t.Errorf("message\n got: %s\nwant: %s", e.Error.Message, tt.want)
			}
			for _, goism := range []string{"interface {}", "map[", "executing", "template: "} {
				if strings.Contains(got, goism) {
					t.Errorf("the answer %s says %q", got, goism)
				}
			}
			ds := f.deliveries(admin.Secret, name)
			if len(ds) != 1 || ds[0].Outcome != store.OutcomeRejected || ds[0].Reason != tt.want {
				t.Errorf("deliveries %+v, want one rejected with the message as its reason", ds)
			}
		})
	}
}

// amplifier is the 186-byte template from the issue: each variable holds ten
// times the last, 1 MB, 10 MB, 100 MB.
const amplifier = `{{ $a := printf "%0999999d" 0 }}{{ $b := printf "%s%s%s%s%s%s%s%s%s%s" $a $a $a $a $a $a $a $a $a $a }}{{ $c := printf "%s%s%s%s%s%s%s%s%s%s" $b $b $b $b $b $b $b $b $b $b }}{{ len $c }}`

// TestTriggerTemplateMemory delivers to a trigger whose env template
// multiplies memory: the gateway refuses it with a 422 before it has made
// its 100 MB. Not parallel: it reads the process's allocation count.
func TestTriggerTemplateMemory(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	job, err := json.Marshal(map[string]any{"image": "localhost/x:1", "command": []string{"x"}, "env": map[string]string{"BOMB": amplifier}})
	if err != nil {
		t.Fatal(err)
	}
	tv := f.createTrigger(admin.Secret, `{"name":"bomb","provider":"github","secret":"`+secret+`","job":`+string(job)+`}`)
	body := []byte(`{"ref":"refs/heads/main","after":"0d1a26e67d8f"}`)
	h := githubHeaders(secret, "push", "d-bomb", body)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, got := f.deliver("", tv.HookURL, h, body)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("one delivery: %.1f MiB allocated, %d %s", float64(allocated)/(1<<20), code, got)
	if code != http.StatusUnprocessableEntity || !strings.Contains(got, "job.env.BOMB") || !strings.Contains(got, "print and printf may make") {
		t.Fatalf("%d %s, want 422 naming job.env.BOMB and the budget", code, got)
	}
	if allocated > 32<<20 {
		t.Errorf("the delivery allocated %d bytes, want at most 32 MiB", allocated)
	}
	if n := f.jobsIn("team-a"); n != 0 {
		t.Errorf("%d jobs, want none", n)
	}
}
