package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestHostProcessGrantTakenBackBeforeTheJobRuns: a process job accepted
// while its workspace had allow_host_process, and queued when the system
// admin took it back, is failed by the worker (a real `jobgate worker`)
// with mode_not_allowed instead of run.
func TestHostProcessGrantTakenBackBeforeTheJobRuns(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	c.stopWorker("w1") // registered (stopped): submits of process jobs are admissible, none runs
	tc := c.asToken(c.workspaceAdmin("team-h", api.Quotas{}))
	j := tc.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/echo", "ran"}})
	if code := c.do("PATCH", "/v1/workspaces/team-h", `{"allow_host_process":false}`, nil); code != http.StatusOK {
		t.Fatalf("take the grant back: %d", code)
	}
	var e api.ErrorBody
	if code := tc.do("POST", "/v1/jobs", `{"mode":"process","command":["/bin/echo"]}`, &e); code != http.StatusForbidden || !strings.HasPrefix(e.Error.Message, "mode:") {
		t.Fatalf("submit after the grant was taken back: %d %+v, want 403 naming mode", code, e)
	}
	c.startWorker("w1")
	done := tc.waitEnded(j.ID)
	if done.Status != api.StatusFailed || !strings.HasPrefix(done.Reason, api.ReasonModeRefused+": workspace team-h") {
		t.Fatalf("queued process job after the grant was taken back: %s (%s), want failed, %s", done.Status, done.Reason, api.ReasonModeRefused)
	}
	if logs := tc.logs(j.ID); strings.Contains(logs, "ran") {
		t.Fatalf("the job ran: %q", logs)
	}
}
