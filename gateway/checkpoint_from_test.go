package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestCheckpointFrom: a job may start from an ended job's checkpoint
// folder of the same workspace, a chain resolving to its first job; not
// from a running, unknown or other workspace's job, and never through a
// job's own token.
func TestCheckpointFrom(t *testing.T) {
	f := newFixture(t)
	job := func(fields string) string { return `{"image":"localhost/x:1","command":["x"]` + fields + `}` }
	var first api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, job(""), &first)
	for _, tc := range []struct {
		name, from string
		status     int
		want       string
	}{
		{"queued", first.ID, http.StatusUnprocessableEntity, "checkpoint_from: job " + first.ID + " is queued"},
		{"unknown", "01jzzzzzzzzzzzzzzzzzzzzzzz", http.StatusUnprocessableEntity, "checkpoint_from: no job"},
	} {
		code, body := f.call("POST", "/v1/jobs", systemToken, job(`,"checkpoint_from":"`+tc.from+`"`))
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, code, body, tc.status, tc.want)
		}
	}
	f.endTrial(first.ID, api.StatusSucceeded)
	var second, third api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, job(`,"checkpoint_from":"`+first.ID+`"`), &second)
	f.endTrial(second.ID, api.StatusFailed)
	f.mustCall("POST", "/v1/jobs", systemToken, job(`,"checkpoint_from":"`+second.ID+`"`), &third)
	if second.Spec.CheckpointFrom != first.ID || third.Spec.CheckpointFrom != first.ID {
		t.Errorf("checkpoint_from %q, then %q; want both the first job's %s", second.Spec.CheckpointFrom, third.Spec.CheckpointFrom, first.ID)
	}
	// Code inside a job reaches no other job's checkpoint.
	code, body := f.call("POST", "/v1/jobs", f.jobToken(DefaultWorkspace, third.ID), job(`,"checkpoint_from":"`+first.ID+`"`))
	if code != http.StatusForbidden || !strings.Contains(body, "checkpoint_from") {
		t.Errorf("a job token's checkpoint_from: %d %s; want 403 naming checkpoint_from", code, body)
	}
	// Another workspace's job is not found.
	f.workspace("team-b", api.Quotas{})
	admin := f.token("team-b", api.ScopeSubmit).Secret
	code, body = f.call("POST", "/v1/jobs", admin, job(`,"checkpoint_from":"`+first.ID+`"`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "checkpoint_from: no job") {
		t.Errorf("another workspace's job: %d %s; want 422, no job", code, body)
	}
}
