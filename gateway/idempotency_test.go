package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
)

func (f *fixture) submitWithKey(token, key, body string) (int, api.Job, http.Header) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.ts.URL+"/v1/jobs", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var j api.Job
	json.NewDecoder(resp.Body).Decode(&j)
	return resp.StatusCode, j, resp.Header
}

func (f *fixture) jobCount(ws string) int {
	f.t.Helper()
	jobs, _, err := f.st.ListJobs(context.Background(), ws, store.ListFilter{Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(jobs)
}

func TestIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	a, b := f.token("team-a", api.ScopeSubmit), f.token("team-b", api.ScopeSubmit)

	code, first, _ := f.submitWithKey(a.Secret, "train-42", jobBody)
	if code != http.StatusCreated {
		t.Fatalf("first: %d", code)
	}
	code, again, h := f.submitWithKey(a.Secret, "train-42", jobBody)
	if code != http.StatusCreated || again.ID != first.ID || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s replayed=%q; want 201 with the first job %s", code, again.ID, h.Get("Idempotent-Replayed"), first.ID)
	}
	if n := f.jobCount("team-a"); n != 1 {
		t.Fatalf("%d jobs after a replay, want 1", n)
	}
	if code, _, _ := f.submitWithKey(a.Secret, "train-42", `{"image":"localhost/y:1","command":["y"]}`); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d, want 422", code)
	}
	// Keys are per workspace.
	if code, other, _ := f.submitWithKey(b.Secret, "train-42", jobBody); code != http.StatusCreated || other.ID == first.ID {
		t.Fatalf("same key in another workspace: %d %s", code, other.ID)
	}
	// A refused request frees its key.
	if code, _, _ := f.submitWithKey(a.Secret, "fix-me", `{"image":"localhost/x:1","command":[]}`); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad spec: %d", code)
	}
	if code, _, _ := f.submitWithKey(a.Secret, "fix-me", jobBody); code != http.StatusCreated {
		t.Fatalf("fixed spec with the same key: %d, want 201", code)
	}
	// While the first request is still creating: 409.
	busy, err := api.DecodeJobSpecJSON([]byte(jobBody))
	if err != nil {
		t.Fatal(err)
	}
	keyHash, bodyHash := job.IdempotencyHashes("", "busy", busy)
	if _, err := f.st.ClaimIdempotency(context.Background(), "team-a", keyHash, bodyHash, job.IdempotencyCreating); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := f.submitWithKey(a.Secret, "busy", jobBody); code != http.StatusConflict {
		t.Fatalf("duplicate while creating: %d, want 409", code)
	}
}

func TestIdempotencyKeyUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	a := f.token("team-a", api.ScopeSubmit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]bool{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, j, _ := f.submitWithKey(a.Secret, "race", jobBody)
			switch code {
			case http.StatusCreated:
				mu.Lock()
				ids[j.ID] = true
				mu.Unlock()
			case http.StatusConflict:
			default:
				t.Errorf("concurrent submit: %d", code)
			}
		}()
	}
	wg.Wait()
	if len(ids) != 1 || f.jobCount("team-a") != 1 {
		t.Fatalf("20 concurrent submits with one key made jobs %v (%d stored), want exactly 1", ids, f.jobCount("team-a"))
	}
}

func TestCallbackAddressesAreRefusedByDefault(t *testing.T) {
	f := newFixture(t)
	for _, url := range []string{"http://127.0.0.1:9/cb", "http://10.0.0.1/cb", "http://169.254.169.254/latest", "http://localhost/cb"} {
		body := `{"image":"localhost/x:1","command":["x"],"notify":{"url":"` + url + `","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}`
		if code, resp := f.call("POST", "/v1/jobs", systemToken, body); code != http.StatusUnprocessableEntity || !strings.Contains(resp, "notify.url") {
			t.Errorf("notify to %s: %d %s, want 422 naming notify.url", url, code, resp)
		}
	}
	if code, resp := f.call("POST", "/v1/jobs", systemToken, `{"image":"localhost/x:1","command":["x"],"notify":{"url":"https://example.com/cb","secret":"nope"}}`); code != http.StatusUnprocessableEntity || !strings.Contains(resp, "notify.secret") {
		t.Errorf("bad secret: %d %s", code, resp)
	}
	if n := f.jobCount(DefaultWorkspace); n != 0 {
		t.Fatalf("refused callbacks created %d jobs", n)
	}
}

// TestIdempotencyKeyComparesTheSpec: a key compares the spec, not the bytes
// that carried it: the same spec as the CLI sends it (read from YAML) and as
// hand-written JSON, with another field order and spacing, is one request.
func TestIdempotencyKeyComparesTheSpec(t *testing.T) {
	f := newFixture(t)
	fromYAML, err := api.DecodeJobSpec([]byte("image: localhost/x:1\ncommand: [x, \"1\"]\nenv:\n  ON: OFF\n"))
	if err != nil {
		t.Fatal(err)
	}
	cliBody, _ := json.Marshal(fromYAML)
	curlBody := "{\n  \"env\": {\"ON\": \"OFF\"},\n  \"command\": [\"x\", \"1\"],\n  \"image\": \"localhost/x:1\"\n}\n"
	code, first, _ := f.submitWithKey(systemToken, "same-spec", string(cliBody))
	if code != http.StatusCreated {
		t.Fatalf("first: %d", code)
	}
	code, again, h := f.submitWithKey(systemToken, "same-spec", curlBody)
	if code != http.StatusCreated || again.ID != first.ID || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("same spec as other JSON: %d %s replayed=%q; want 201 with the first job %s", code, again.ID, h.Get("Idempotent-Replayed"), first.ID)
	}
	if code, _, _ := f.submitWithKey(systemToken, "same-spec", strings.Replace(curlBody, "OFF", "ON", 1)); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, another spec: %d, want 422", code)
	}
	if n := f.jobCount(DefaultWorkspace); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}
