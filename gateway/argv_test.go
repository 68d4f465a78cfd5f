package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
)

// TestArgvLimits: an argv element past job.MaxArgBytes (podman's runc stack
// wedges on one past 64 KiB: the job hung to its timeout and leaked
// processes) and an argv past job.MaxArgvBytes in total are a 422 naming the
// field and index, for a job's command and preparation and for an exec.
func TestArgvLimits(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("a", job.MaxArgBytes)
	tooBig := big + "a"
	many := make([]string, job.MaxArgvBytes/job.MaxArgBytes+1) // each at the limit, together past it
	for i := range many {
		many[i] = big
	}
	tests := []struct {
		name     string
		spec     api.JobSpec
		mentions string // "" means accepted
	}{
		{name: "element at the limit", spec: api.JobSpec{Command: []string{"x", big}}},
		{name: "element past the limit", spec: api.JobSpec{Command: []string{"x", tooBig}}, mentions: fmt.Sprintf("command[1] is %d bytes", len(tooBig))},
		{name: "70000-byte element", spec: api.JobSpec{Command: []string{strings.Repeat("x", 70000)}}, mentions: "command[0] is 70000 bytes"},
		{name: "argv past the total", spec: api.JobSpec{Command: append([]string{"x"}, many...)}, mentions: "command totals"},
		{name: "preparation element past the limit", spec: api.JobSpec{Command: []string{"x"}, Preparation: []string{"p", tooBig}}, mentions: "preparation[1] is"},
		{name: "preparation past the total", spec: api.JobSpec{Command: []string{"x"}, Preparation: many}, mentions: "preparation totals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Image = "localhost/x:1"
			b, _ := json.Marshal(tt.spec)
			code, resp := f.call("POST", "/v1/jobs", systemToken, string(b))
			if tt.mentions == "" {
				if code != http.StatusCreated {
					t.Fatalf("got %d %s, want 201", code, resp)
				}
				return
			}
			if code != http.StatusUnprocessableEntity || !strings.Contains(anyErrMessage(resp), tt.mentions) {
				t.Fatalf("got %d %s, want 422 naming %q", code, resp, tt.mentions)
			}
		})
	}

	for _, tt := range []struct {
		name     string
		command  []string
		mentions string
	}{
		{"exec element past the limit", []string{"x", tooBig}, "command[1] is"},
		{"exec past the total", many, "command totals"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := normalizeExec(&api.ExecRequest{Command: tt.command})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code.Status() != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, tt.mentions) {
				t.Fatalf("normalizeExec: %v, want a 422 naming %q", err, tt.mentions)
			}
		})
	}
}

// TestTriggerRenderedArgvLimits: a rendered value can grow past what the
// template was: a delivery whose payload renders an argument past the limit
// is refused (422) and makes no job.
func TestTriggerRenderedArgvLimits(t *testing.T) {
	f := newFixture(t)
	const secret = "argv-limit-secret-0123456789"
	tv := f.createTrigger(systemToken, `{"name":"big","provider":"github","secret":"`+secret+`",
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)
	body, _ := json.Marshal(map[string]any{"after": strings.Repeat("f", job.MaxArgBytes+1)})
	code, resp := f.deliver("", tv.HookURL, githubHeaders(secret, "push", "d-big", body), body)
	if code != http.StatusUnprocessableEntity || !strings.Contains(anyErrMessage(resp), "command[1] is") {
		t.Fatalf("delivery: %d %s, want 422 naming command[1]", code, resp)
	}
	if n := f.jobsIn(DefaultWorkspace); n != 0 {
		t.Fatalf("%d jobs made, want 0", n)
	}
}
