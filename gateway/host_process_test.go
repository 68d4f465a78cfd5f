package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// hostProcessWorker registers a worker that runs host processes and has
// two GPUs, so that process-mode and GPU specs are admissible.
func (f *fixture) hostProcessWorker(id string) {
	f.t.Helper()
	w := store.Worker{ID: id, Executor: "podman", Slots: 8, AllowHostProcess: true, StartedAt: time.Now(),
		GPUs: []store.WorkerGPU{{Index: 0, UUID: "GPU-0", Model: "Sim", MemoryMB: 1000, Simulated: true},
			{Index: 1, UUID: "GPU-1", Model: "Sim", MemoryMB: 1000, Simulated: true}}}
	if err := f.st.RegisterWorker(context.Background(), w, time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

const processBody = `{"mode":"process","command":["/bin/sh","-c","id"]}`

// TestHostProcessIsAWorkspacePermission: mode process needs the workspace's
// allow_host_process, which only the system admin grants or takes back;
// jobs, schedules and triggers are all checked.
func TestHostProcessIsAWorkspacePermission(t *testing.T) {
	f := newFixture(t)
	f.hostProcessWorker("hp")
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)

	refused := func(what string, code int, body string) {
		t.Helper()
		var e api.ErrorBody
		if code != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != api.CodeForbidden || !strings.Contains(e.Error.Message, "mode:") {
			t.Fatalf("%s: %d %s, want 403 naming mode", what, code, body)
		}
	}
	code, body := f.call("POST", "/v1/jobs", admin.Secret, processBody)
	refused("process job in a workspace without the grant", code, body)
	code, body = f.call("POST", "/v1/schedules", admin.Secret, `{"name":"nightly","cron":"0 2 * * *","job":`+processBody+`}`)
	refused("process schedule", code, body)
	code, body = f.call("POST", "/v1/triggers", admin.Secret, `{"name":"hook","provider":"github","secret":"isolation-secret-0123456789","job":`+processBody+`}`)
	refused("process trigger", code, body)

	// The workspace's own admin cannot grant it; the system admin can.
	if code, body := f.call("PATCH", "/v1/workspaces/team-a", admin.Secret, `{"allow_host_process":true}`); code != http.StatusForbidden {
		t.Fatalf("workspace admin grants host processes: %d %s, want 403", code, body)
	}
	for _, bad := range []string{`{}`, `{"allow_host_process":"yes"}`, `{"quotas":{}}`} {
		if code, body := f.call("PATCH", "/v1/workspaces/team-a", systemToken, bad); code != http.StatusUnprocessableEntity {
			t.Fatalf("PATCH %s: %d %s, want 422", bad, code, body)
		}
	}
	if code, body := f.call("PATCH", "/v1/workspaces/nope", systemToken, `{"allow_host_process":true}`); code != http.StatusNotFound {
		t.Fatalf("PATCH of a missing workspace: %d %s, want 404", code, body)
	}
	var w api.Workspace
	f.mustCall("PATCH", "/v1/workspaces/team-a", systemToken, `{"allow_host_process":true}`, &w)
	if !w.AllowHostProcess || w.Name != "team-a" {
		t.Fatalf("PATCH answered %+v", w)
	}
	f.mustCall("POST", "/v1/jobs", admin.Secret, processBody, nil)
	f.mustCall("POST", "/v1/schedules", admin.Secret, `{"name":"nightly","cron":"0 2 * * *","job":`+processBody+`}`, nil)

	// Taken back: the schedule made meanwhile cannot fire any more.
	f.mustCall("PATCH", "/v1/workspaces/team-a", systemToken, `{"allow_host_process":false}`, nil)
	code, body = f.call("POST", "/v1/schedules/nightly/run", admin.Secret, "")
	refused("firing a process schedule after the grant was taken back", code, body)
	code, body = f.call("POST", "/v1/jobs", admin.Secret, processBody)
	refused("process job after the grant was taken back", code, body)

	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &audit)
	var changes []string
	for _, e := range audit.Entries {
		if e.Action == "workspace.update" {
			changes = append(changes, e.Actor+" "+e.Target)
		}
	}
	if want := "system-admin team-a: allow_host_process=false; system-admin team-a: allow_host_process=true"; strings.Join(changes, "; ") != want {
		t.Fatalf("audit of the changes: %q, want %q", changes, want)
	}

	// Granted at creation, by the system admin only.
	f.mustCall("POST", "/v1/workspaces", systemToken, `{"name":"team-p","allow_host_process":true}`, nil)
	f.mustCall("POST", "/v1/jobs", f.token("team-p", api.ScopeSubmit).Secret, processBody, nil)
	var list struct{ Workspaces []api.Workspace }
	f.mustCall("GET", "/v1/workspaces", admin.Secret, "", &list)
	if len(list.Workspaces) != 1 || list.Workspaces[0].AllowHostProcess {
		t.Fatalf("team-a sees %+v", list.Workspaces)
	}
}

// TestGatewayGrantsDefaultHostProcessOnlyWhenTold: `jobgate gateway` leaves
// default without allow_host_process unless --allow-host-process-default
// (`jobgate dev` sets it), and a grant made since is not taken back.
func TestGatewayGrantsDefaultHostProcessOnlyWhenTold(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.Redis().HDel(ctx, "{jobgate}:workspaces", DefaultWorkspace).Err(); err != nil {
		t.Fatal(err)
	}
	allowed := func() bool {
		w, err := f.st.Workspace(ctx, DefaultWorkspace)
		if err != nil {
			t.Fatal(err)
		}
		return w.AllowHostProcess
	}
	if err := f.g.ensureDefaultWorkspace(ctx); err != nil || allowed() {
		t.Fatalf("without the flag: %v, allowed %v; want a default workspace without the grant", err, allowed())
	}
	f.g.cfg.HostProcessDefault = true
	if err := f.g.ensureDefaultWorkspace(ctx); err != nil || !allowed() {
		t.Fatalf("with the flag: %v, allowed %v; want the grant", err, allowed())
	}
	f.g.cfg.HostProcessDefault = false
	if err := f.g.ensureDefaultWorkspace(ctx); err != nil || !allowed() {
		t.Fatalf("restarted without the flag: %v, allowed %v; want the grant kept", err, allowed())
	}
}

// TestExecIntoHostProcessNeedsTheGrant: an exec beside a running process
// job is a host command, refused once the workspace's grant is gone.
func TestExecIntoHostProcessNeedsTheGrant(t *testing.T) {
	f := newFixture(t)
	f.hostProcessWorker("hp")
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, processBody, &j)
	f.jobToken(DefaultWorkspace, j.ID) // its attempt is running
	f.mustCall("PATCH", "/v1/workspaces/"+DefaultWorkspace, systemToken, `{"allow_host_process":false}`, nil)
	code, _, lines := f.execCall(j.ID, systemToken, `{"command":["id"]}`)
	if code != http.StatusForbidden || len(lines) != 1 || !strings.Contains(lines[0], `"message":"mode:`) {
		t.Fatalf("exec into a process job without the grant: %d %q, want 403 naming mode", code, lines)
	}
}
