package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// recordingGateway answers every request with the JSON of answer and keeps
// each request's method, path and body.
type recordingGateway struct {
	mu   sync.Mutex
	reqs []string
}

func newRecordingGateway(t *testing.T, answer map[string]any) (*recordingGateway, string) {
	t.Helper()
	g := &recordingGateway{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		g.mu.Lock()
		g.reqs = append(g.reqs, key+" "+string(b))
		g.mu.Unlock()
		v, ok := answer[key]
		if !ok {
			writeErr(w, http.StatusNotFound, "not_found", "no route "+key)
			return
		}
		writeResp(w, http.StatusOK, v)
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func (g *recordingGateway) requests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.reqs...)
}

// TestUpdateSendsOnlyWhatIsGiven: update is a PATCH of the flags given and
// nothing else; a trigger's filter, which the API replaces whole, keeps
// the half not given.
func TestUpdateSendsOnlyWhatIsGiven(t *testing.T) {
	t.Parallel()
	sched := api.Schedule{Name: "n", Cron: "0 3 * * *", Timezone: "UTC"}
	trig := api.Trigger{Name: "b", Filter: api.TriggerFilter{Event: "push", Ref: "refs/heads/main"}}
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"schedule cron", []string{"schedules", "update", "n", "--cron", "0 3 * * *"},
			[]string{`PATCH /v1/schedules/n {"cron":"0 3 * * *"}`}},
		{"schedule deadline zero", []string{"schedules", "update", "n", "--starting-deadline-seconds", "0", "--concurrency-policy", "Forbid"},
			[]string{`PATCH /v1/schedules/n {"concurrency_policy":"Forbid","starting_deadline_seconds":0}`}},
		{"trigger ref keeps event", []string{"triggers", "update", "b", "--ref", "refs/heads/release"},
			[]string{"GET /v1/triggers/b ", `PATCH /v1/triggers/b {"filter":{"event":"push","ref":"refs/heads/release"}}`}},
		{"trigger event cleared", []string{"triggers", "update", "b", "--event", ""},
			[]string{"GET /v1/triggers/b ", `PATCH /v1/triggers/b {"filter":{"ref":"refs/heads/main"}}`}},
		{"workspace", []string{"workspaces", "update", "w", "--allow-host-process=false"},
			[]string{`PATCH /v1/workspaces/w {"allow_host_process":false}`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, url := newRecordingGateway(t, map[string]any{
				"PATCH /v1/schedules/n": sched, "GET /v1/triggers/b": trig, "PATCH /v1/triggers/b": trig,
				"PATCH /v1/workspaces/w": api.Workspace{Name: "w"},
			})
			if res := runCLI(t, envFor(url), "", tt.args...); res.err != nil {
				t.Fatalf("%v: %v\n%s", tt.args, res.err, res.stderr)
			}
			got := g.requests()
			if len(got) != len(tt.want) {
				t.Fatalf("requests = %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("request %d = %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestTriggerSecretRotation: a new signing secret is read from a file, sent
// with its grace, and never printed.
func TestTriggerSecretRotation(t *testing.T) {
	t.Parallel()
	g, url := newRecordingGateway(t, map[string]any{"PATCH /v1/triggers/b": api.Trigger{Name: "b"}})
	secret := writeTemp(t, "new-secret-0123456789\n")
	res := runCLI(t, envFor(url), "", "triggers", "update", "b", "--secret-file", secret, "--secret-grace-seconds", "0")
	if res.err != nil || res.stdout != "updated trigger b\n" {
		t.Fatalf("triggers update --secret-file: %v %q", res.err, res.stdout)
	}
	var p api.TriggerPatch
	reqs := g.requests()
	if len(reqs) != 1 || json.Unmarshal([]byte(reqs[0][len("PATCH /v1/triggers/b "):]), &p) != nil ||
		p.Secret != "new-secret-0123456789" || p.SecretGraceSeconds == nil || *p.SecretGraceSeconds != 0 || p.Filter != nil || p.Job != nil {
		t.Errorf("requests = %q", reqs)
	}
	if res := runCLI(t, envFor(url), "", "triggers", "update", "b", "--secret-grace-seconds", "5"); res.err == nil {
		t.Error("--secret-grace-seconds without --secret-file was accepted")
	}
}

// TestQueueCLI: `jobgate queue` prints the waiting jobs in order, and says
// on stderr when the limit hid some.
func TestQueueCLI(t *testing.T) {
	t.Parallel()
	q := api.Queue{Total: 3, Pending: []api.QueuedJob{
		{Position: 1, ID: "j1", Name: "train", Workspace: "default", Priority: api.PriorityHigh, GPUs: 2, ReasonCode: "no_capacity", Reason: "no worker has 2 free GPUs"},
		{Position: 2, ID: "j2", Workspace: "team-a", Priority: api.PriorityNormal, ReasonCode: "quota"},
	}}
	g, url := newRecordingGateway(t, map[string]any{"GET /v1/queue": q})
	res := runCLI(t, envFor(url), "", "queue", "--limit", "2")
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := strings.Split(res.stdout, "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "POS  ID  NAME   WORKSPACE  PRIORITY  GPUS") ||
		!strings.Contains(lines[1], "no worker has 2 free GPUs") || !strings.HasSuffix(lines[2], "quota") {
		t.Errorf("queue:\n%s", res.stdout)
	}
	if res.stderr != "2 of 3 waiting jobs shown (--limit shows more)\n" {
		t.Errorf("stderr = %q", res.stderr)
	}
	if reqs := g.requests(); len(reqs) != 1 || reqs[0] != "GET /v1/queue " {
		t.Errorf("requests = %q", reqs)
	}
	var got api.Queue
	res = runCLI(t, envFor(url), "", "queue", "--json")
	if res.err != nil || json.Unmarshal([]byte(res.stdout), &got) != nil || got.Total != 3 || len(got.Pending) != 2 {
		t.Errorf("queue --json: %v\n%s", res.err, res.stdout)
	}
}
