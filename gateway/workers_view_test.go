package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestWorkersShowOnlyOwnJobs: the worker registry is shared, but a
// workspace token sees on it only its own jobs (job lists and GPU holders);
// the system admin sees all.
func TestWorkersShowOnlyOwnJobs(t *testing.T) {
	f := newFixture(t)
	f.hostProcessWorker("shared")
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	ctx := context.Background()
	place := func(ws string, gpu int) string {
		var j api.Job
		f.mustCall("POST", "/v1/jobs", f.token(ws, api.ScopeSubmit).Secret, `{"image":"localhost/x:1","command":["x"],"resources":{"gpus":1}}`, &j)
		if _, _, err := f.st.Reserve(ctx, j.ID, 1, "shared", "", gpu); err != nil {
			t.Fatal(err)
		}
		if err := f.st.Placed(ctx, ws, j.ID, 1, "shared"); err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	a, b := place("team-a", 0), place("team-b", 1)

	type view struct {
		Workers []store.Worker `json:"workers"`
	}
	see := func(token string) store.Worker {
		t.Helper()
		var v view
		f.mustCall("GET", "/v1/workers", token, "", &v)
		if len(v.Workers) != 1 {
			t.Fatalf("workers: %+v", v.Workers)
		}
		return v.Workers[0]
	}
	w := see(f.token("team-a", api.ScopeRead).Secret)
	if strings.Join(w.Jobs, ",") != a || w.GPUs[0].JobID != a || w.GPUs[1].JobID != "" || !w.GPUs[1].InUse {
		t.Fatalf("team-a sees jobs %v, GPUs %+v; want only %s, GPU 1 in use without its job", w.Jobs, w.GPUs, a)
	}
	_, body := f.call("GET", "/v1/workers", f.token("team-a", api.ScopeRead).Secret, "")
	if strings.Contains(body, b) {
		t.Fatalf("team-a sees team-b's job %s: %s", b, body)
	}
	w = see(systemToken)
	if len(w.Jobs) != 2 || w.GPUs[0].JobID != a || w.GPUs[1].JobID != b {
		t.Fatalf("system admin sees jobs %v, GPUs %+v; want both", w.Jobs, w.GPUs)
	}
}
