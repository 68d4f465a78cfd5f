package gateway

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// TestResponsesKeepTheirBytes: the api types the REST API now serves
// marshal to the very bytes of what it served before (store types, views
// of its own, maps), every field set.
func TestResponsesKeepTheirBytes(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	exit, util, used, pos := 3, 40, int64(1024), int64(2)
	attempt := store.AttemptRecord{Attempt: 1, Worker: "w1", Status: api.StatusFailed, Reason: "exit_code: exited with 3",
		ReasonCode: "exit_code", ExitCode: &exit, StartedAt: &at, FinishedAt: at, Note: "n"}
	note := store.Notification{Attempt: 1, Type: "job.failed", At: at, StatusCode: 500, Error: "e", DurationMS: 7}
	gpu := store.WorkerGPU{Index: 1, UUID: "GPU-1", Model: "H100", MemoryMB: 80000, Simulated: true, JobID: "j", InUse: true,
		UtilizationPct: &util, MemoryUsedMB: &used}
	worker := store.Worker{ID: "w1", Hostname: "h", Executor: "podman", Slots: 4, Status: store.WorkerUp, Problem: "p",
		AllowHostProcess: true, StartedAt: at, LastHeartbeat: at, Jobs: []string{"j"}, GPUs: []store.WorkerGPU{gpu},
		Mounts: []string{"data"}, StopGrace: time.Second, Instance: "i", Proc: "pr"}
	run := store.ScheduleRun{ScheduledAt: at, FiredAt: &at, JobID: "j", SkippedReason: "s", Manual: true}
	delivery := store.Delivery{ID: "d", ReceivedAt: at, Event: "push", Outcome: store.OutcomeAccepted, Reason: "r", JobID: "j"}
	job := &api.Job{ID: "j", Workspace: "default", Name: "n", Status: api.StatusQueued, CreatedAt: at,
		Spec: api.JobSpec{Image: "localhost/x:1", Command: []string{"x"}}, Params: map[string]string{"lr": "0.1"}}
	spec := api.JobSpec{Image: "localhost/x:1", Command: []string{"x"}}
	trig := store.Trigger{ID: "trg_x", Workspace: "default", Name: "t", Provider: "github",
		Filter: store.TriggerFilter{Event: "push", Ref: "refs/heads/main"}, Job: spec, CreatedAt: at}

	// What the gateway served before, as it was written.
	type oldWorker struct {
		store.Worker
		State string `json:"state"`
	}
	type oldJobView struct {
		*api.Job
		QueuePosition *int64                `json:"queue_position,omitempty"`
		Attempts      []store.AttemptRecord `json:"attempts,omitempty"`
		Notifications []store.Notification  `json:"notifications,omitempty"`
	}
	type oldTriggerView struct {
		ID        string              `json:"id"`
		Name      string              `json:"name"`
		Provider  string              `json:"provider"`
		HookURL   string              `json:"hook_url"`
		Filter    store.TriggerFilter `json:"filter"`
		Job       api.JobSpec         `json:"job"`
		CreatedAt time.Time           `json:"created_at"`
	}
	type oldScheduleView struct {
		Name                    string      `json:"name"`
		Cron                    string      `json:"cron"`
		Timezone                string      `json:"timezone"`
		ConcurrencyPolicy       string      `json:"concurrency_policy"`
		StartingDeadlineSeconds int         `json:"starting_deadline_seconds"`
		Job                     api.JobSpec `json:"job"`
		Paused                  bool        `json:"paused"`
		CreatedAt               time.Time   `json:"created_at"`
		CreatedBy               string      `json:"created_by"`
		Next                    []time.Time `json:"next"`
		LastScheduledAt         *time.Time  `json:"last_scheduled_at"`
		LastFiredAt             *time.Time  `json:"last_fired_at"`
		LastJobID               string      `json:"last_job_id"`
	}
	detail := api.JobDetail{Job: *job, QueuePosition: &pos, Attempts: []api.Attempt{api.Attempt(attempt)},
		Notifications: []api.Notification{api.Notification(note)}}

	tests := []struct {
		name     string
		old, now any
	}{
		{"health", map[string]string{"status": "ok"}, api.Health{Status: "ok"}},
		{"job detail", oldJobView{Job: job, QueuePosition: &pos, Attempts: []store.AttemptRecord{attempt}, Notifications: []store.Notification{note}}, detail},
		{"job detail, bare", oldJobView{Job: job}, api.JobDetail{Job: *job}},
		{"children", map[string]any{"jobs": []api.Job{*job}}, api.JobList{Jobs: []api.Job{*job}}},
		{"no children", map[string]any{"jobs": []api.Job(nil)}, api.JobList{}},
		{"workers", map[string]any{"workers": []oldWorker{{Worker: worker, State: "up"}}}, api.WorkerList{Workers: []api.Worker{workerView(worker, "up")}}},
		{"worker without GPUs", oldWorker{Worker: store.Worker{ID: "w"}, State: "lost"}, workerView(store.Worker{ID: "w"}, "lost")},
		{"metrics recorded", map[string]int{"recorded": 3}, api.MetricsRecorded{Recorded: 3}},
		{"workspaces", map[string]any{"workspaces": []api.Workspace{{Name: "a", CreatedAt: at}}}, api.WorkspaceList{Workspaces: []api.Workspace{{Name: "a", CreatedAt: at}}}},
		{"tokens", map[string]any{"tokens": []api.Token{{ID: "t", CreatedAt: at}}}, api.TokenList{Tokens: []api.Token{{ID: "t", CreatedAt: at}}}},
		{"secret", map[string]string{"name": "db"}, api.SecretName{Name: "db"}},
		{"secrets", map[string]any{"secrets": []map[string]string{{"name": "db"}}}, api.SecretList{Secrets: []api.SecretName{{Name: "db"}}}},
		{"audit", map[string]any{"entries": []api.AuditEntry{{Time: at, Actor: "a"}}, "next_cursor": ""}, api.AuditPage{Entries: []api.AuditEntry{{Time: at, Actor: "a"}}}},
		{"schedule history", map[string]any{"history": []store.ScheduleRun{run, {ScheduledAt: at}}},
			api.ScheduleHistory{History: convert([]store.ScheduleRun{run, {ScheduledAt: at}}, func(r store.ScheduleRun) api.ScheduleRun { return api.ScheduleRun(r) })}},
		{"no schedule history", map[string]any{"history": []store.ScheduleRun(nil)}, api.ScheduleHistory{}},
		{"schedule", oldScheduleView{Name: "s", Cron: "@daily", Timezone: "UTC", ConcurrencyPolicy: "Forbid", Job: spec, Paused: true,
			CreatedAt: at, CreatedBy: "c", Next: []time.Time{at}, LastScheduledAt: &at, LastJobID: "j"},
			api.Schedule{Name: "s", Cron: "@daily", Timezone: "UTC", ConcurrencyPolicy: "Forbid", Job: spec, Paused: true,
				CreatedAt: at, CreatedBy: "c", Next: []time.Time{at}, LastScheduledAt: &at, LastJobID: "j"}},
		{"trigger", oldTriggerView{ID: trig.ID, Name: trig.Name, Provider: trig.Provider, HookURL: "/hooks/" + trig.ID, Filter: trig.Filter, Job: spec, CreatedAt: at},
			viewTrigger(trig, at)},
		{"deliveries", map[string]any{"deliveries": []store.Delivery{delivery, {ID: "e", Outcome: store.OutcomeIgnored}}},
			api.DeliveryList{Deliveries: []api.Delivery{api.Delivery(delivery), {ID: "e", Outcome: store.OutcomeIgnored}}}},
		{"hook: pong", map[string]bool{"pong": true}, api.HookResult{Pong: true}},
		{"hook: ignored", map[string]string{"ignored": "event \"x\" is not \"push\""}, api.HookResult{Ignored: "event \"x\" is not \"push\""}},
		{"hook: duplicate", map[string]any{"job_id": "j", "duplicate": true}, api.HookResult{JobID: "j", Duplicate: true}},
		{"hook: accepted", map[string]string{"job_id": "j"}, api.HookResult{JobID: "j"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, err := json.Marshal(tt.old)
			if err != nil {
				t.Fatal(err)
			}
			now, err := json.Marshal(tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if string(old) != string(now) {
				t.Errorf("answer changed:\n was %s\n now %s", old, now)
			}
		})
	}
}

// TestRESTAnswersAreAPITypes: every JSON answer of the REST API is a type
// declared in api/ (the MLflow dialect answers MLflow's shapes, and the
// error renderers are TestErrorRenderers'), so the Go client can read it
// with the types the gateway writes. The package is type-checked against
// the compiler's export data (go list -export).
func TestRESTAnswersAreAPITypes(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the gateway package (-short)")
	}
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, file, _ := strings.Cut(line, "\t")
		exports[path] = file
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	if _, err := (&types.Config{Importer: imp}).Check("github.com/jobgate/jobgate/gateway", fset, files, info); err != nil {
		t.Fatalf("type-check gateway: %v", err)
	}
	answers := 0
	for _, f := range files {
		name := filepath.Base(fset.Position(f.Pos()).Filename)
		if strings.HasPrefix(name, "mlflow") || name == "errors.go" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "JSON" {
				return true
			}
			answers++
			typ := info.TypeOf(call.Args[1])
			if p, ok := typ.(*types.Pointer); ok {
				typ = p.Elem()
			}
			named, ok := typ.(*types.Named)
			if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != "github.com/jobgate/jobgate/api" {
				t.Errorf("%s: the REST API answers %s, not a type of package api", fset.Position(call.Pos()), typ)
			}
			return true
		})
	}
	if answers < 30 {
		t.Fatalf("found %d JSON answers; the check lost them", answers)
	}
}
