package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestArgvAtTheLimitsRuns: the argv limits (32 KiB an element, 256 KiB an
// argv) sit below where podman's runc stack wedges (an element past 64 KiB):
// a job whose arguments are all at the element limit, close to the total,
// runs in a real container and gets every byte.
func TestArgvAtTheLimitsRuns(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	big := strings.Repeat("a", 32<<10)
	args := make([]string, 7)
	for i := range args {
		args[i] = big
	}
	j := c.waitEnded(c.submit(api.JobSpec{Command: toolbox(append([]string{"echo"}, args...)...), TimeoutSeconds: 60}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job with argv at the limits: %s (%s), want succeeded", j.Status, j.Reason)
	}
	if got, want := c.logs(j.ID), strings.Join(args, " ")+"\n"; got != want {
		t.Fatalf("logs: %d bytes, want the %d the arguments hold", len(got), len(want))
	}
	// One byte more in one element is refused at submit, naming it.
	var e api.ErrorBody
	body, _ := json.Marshal(api.JobSpec{Image: testenv.ExampleImage, Command: toolbox("echo", big+"a")})
	if code := c.do("POST", "/v1/jobs", string(body), &e); code != 422 || !strings.Contains(e.Error.Message, "command[2]") {
		t.Fatalf("argument past the limit: %d %+v, want 422 naming command[2]", code, e)
	}
}
