package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
)

const fakeToken = "t0ken"

// fakeGateway emulates the REST contract in memory: enough of it to drive the
// CLI, not a model of the real gateway.
type fakeGateway struct {
	t *testing.T
	// FinishFunc decides how a job ends when its followed log stream reaches
	// the end; nil means it succeeds.
	FinishFunc func(*api.Job)
	// Log is what every job's log holds.
	Log string
	// Hang makes a followed log stream stay open, the job never ending,
	// until the client goes away.
	Hang bool

	// mu guards the fields below.
	mu       sync.Mutex
	jobs     []*api.Job // oldest first
	requests []string   // "METHOD /path?query", in order
	idemKeys []string
}

func newFakeGateway(t *testing.T) (*fakeGateway, string) {
	t.Helper()
	g := &fakeGateway{t: t, Log: "step 1\nstep 2\n"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", g.submit)
	mux.HandleFunc("GET /v1/jobs", g.list)
	mux.HandleFunc("GET /v1/jobs/{id}", g.get)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", g.cancel)
	mux.HandleFunc("GET /v1/jobs/{id}/logs", g.logs)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.requests = append(g.requests, r.Method+" "+r.URL.RequestURI())
		g.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+fakeToken {
			writeErr(w, http.StatusUnauthorized, "unauthorized", "missing or bad token")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeResp(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: api.Code(code), Message: msg}})
}

func writeResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// add stores a job as if it had been submitted n-th; it returns a copy.
func (g *fakeGateway) add(spec api.JobSpec) api.Job {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.jobs) + 1
	j := &api.Job{
		ID:         fmt.Sprintf("job-%02d", n),
		Workspace:  "default",
		Name:       spec.Name,
		Experiment: spec.Experiment,
		Status:     api.StatusQueued,
		Attempt:    1,
		CreatedAt:  time.Date(2025, 1, 2, 3, 4, n, 0, time.UTC),
		Spec:       spec,
	}
	g.jobs = append(g.jobs, j)
	return *j
}

// update changes a stored job and returns a copy.
func (g *fakeGateway) update(id string, fn func(*api.Job)) (api.Job, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, j := range g.jobs {
		if j.ID == id {
			fn(j)
			return *j, true
		}
	}
	return api.Job{}, false
}

func (g *fakeGateway) submit(w http.ResponseWriter, r *http.Request) {
	var spec api.JobSpec
	if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if spec.TimeoutSeconds < 0 {
		writeErr(w, http.StatusUnprocessableEntity, "invalid_spec", "timeout_seconds must be > 0")
		return
	}
	g.mu.Lock()
	g.idemKeys = append(g.idemKeys, r.Header.Get("Idempotency-Key"))
	g.mu.Unlock()
	writeResp(w, http.StatusCreated, g.add(spec))
}

func (g *fakeGateway) get(w http.ResponseWriter, r *http.Request) {
	j, ok := g.update(r.PathValue("id"), func(*api.Job) {})
	if !ok {
		writeErr(w, http.StatusNotFound, "not_found", "job "+r.PathValue("id")+" not found")
		return
	}
	writeResp(w, http.StatusOK, j)
}

// list pages newest first; the cursor is the index of the next job to return.
func (g *fakeGateway) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = max(limit, 0)
	if limit == 0 {
		limit = 50
	}
	start, _ := strconv.Atoi(q.Get("cursor"))
	g.mu.Lock()
	var all []api.Job
	for i := len(g.jobs) - 1; i >= 0; i-- {
		j := g.jobs[i]
		if (q.Get("status") == "" || string(j.Status) == q.Get("status")) &&
			(q.Get("experiment") == "" || j.Experiment == q.Get("experiment")) {
			all = append(all, *j)
		}
	}
	g.mu.Unlock()
	out := api.JobList{Jobs: []api.Job{}}
	end := min(start+limit, len(all))
	if start < end {
		out.Jobs = all[start:end]
	}
	if end < len(all) {
		out.NextCursor = strconv.Itoa(end)
	}
	writeResp(w, http.StatusOK, out)
}

func (g *fakeGateway) cancel(w http.ResponseWriter, r *http.Request) {
	j, ok := g.update(r.PathValue("id"), func(j *api.Job) {
		switch j.Status {
		case api.StatusQueued:
			j.Status, j.Reason = api.StatusCanceled, api.ReasonCanceled
		case api.StatusRunning:
			j.CancelRequested = true
		}
	})
	if !ok {
		writeErr(w, http.StatusNotFound, "not_found", "job not found")
		return
	}
	writeResp(w, http.StatusOK, j)
}

func (g *fakeGateway) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := g.update(id, func(*api.Job) {}); !ok {
		writeErr(w, http.StatusNotFound, "not_found", "job not found")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, g.Log)
	if r.URL.Query().Get("follow") != "true" {
		return
	}
	http.NewResponseController(w).Flush()
	if g.Hang {
		<-r.Context().Done()
		return
	}
	// The job ends, and with it the stream.
	g.update(id, func(j *api.Job) {
		now := time.Date(2025, 1, 2, 4, 0, 0, 0, time.UTC)
		j.Status, j.FinishedAt = api.StatusSucceeded, &now
		if g.FinishFunc != nil {
			g.FinishFunc(j)
		}
	})
}

func (g *fakeGateway) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

type cliResult struct {
	stdout, stderr string
	err            error
}

// exitCode maps an error to a process exit status the way main does.
func (r cliResult) exitCode() int {
	var ec interface{ ExitCode() int }
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ec):
		return ec.ExitCode()
	}
	return 1
}

// runCLI runs the CLI like main would, with env as the environment and stdin
// as standard input.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := execCLI(t.Context(), env, strings.NewReader(stdin), &stdout, &stderr, args...)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// execCLI runs the commands under a root like main's and, like main, prints
// the message of an error with an exit code, so stderr is what a user sees.
func execCLI(ctx context.Context, env map[string]string, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	root := &cobra.Command{Use: "jobgate", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cliCommands(func(k string) string { return env[k] }, stdout, stderr)...)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) && err.Error() != "" {
		fmt.Fprintln(stderr, err)
	}
	return err
}

// interruptOnOutput stands in for a user who presses Ctrl-C once the log
// has started to show: it cancels the command's context on the first write.
// The buffer is a named field, not embedded, so io.Copy cannot bypass Write
// through bytes.Buffer's ReadFrom.
type interruptOnOutput struct {
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *interruptOnOutput) Write(p []byte) (int, error) {
	defer w.cancel()
	return w.buf.Write(p)
}

// envFor points the CLI at a fake gateway.
func envFor(url string) map[string]string {
	return map[string]string{"JOBGATE_URL": url, "JOBGATE_TOKEN": fakeToken}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const trainYAML = `name: train
experiment: mnist
image: localhost/jobgate-examples:latest
command: [/toolbox, train, --epochs, "3"]
env:
  SEED: "1"
resources:
  gpus: 1
timeout_seconds: 600
`

func TestSubmitSpecErrorsAreLocal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec string
		want []string // substrings of the error
	}{
		{
			name: "unknown top-level field",
			spec: "name: train\nimgae: x\ncommand: [a]\n",
			want: []string{"submit: ", "bad.yaml", `unknown field "imgae"`, `did you mean "image"?`},
		},
		{
			name: "unknown nested field",
			spec: "name: train\ncommand: [a]\nresources:\n  gpu: 1\n",
			want: []string{"bad.yaml", `unknown field "resources.gpu"`, `did you mean "gpus"?`},
		},
		{
			name: "wrong case",
			spec: "Name: train\ncommand: [a]\n",
			want: []string{`unknown field "Name"`, `did you mean "name"?`},
		},
		{
			name: "nothing close",
			spec: "command: [a]\nwhatever: 1\n",
			want: []string{`unknown field "whatever"`, "known fields: batch_score, checkpoint_from, command, env, experiment"},
		},
		{
			name: "wrong type",
			spec: "command: python train.py\n",
			want: []string{"bad.yaml", "field command: got string, want a list of strings"},
		},
		{
			name: "env value must be a string",
			spec: "command: [a]\nenv:\n  SEED: 1\n",
			want: []string{`field env.SEED: got number, want a string (quote it: "1")`},
		},
		{
			name: "string field given a list",
			spec: "command: [a]\nimage: [a, b]\n",
			want: []string{"field image: got array, want a string"},
		},
		{
			name: "not a mapping",
			spec: "- a\n- b\n",
			want: []string{"job spec must be a mapping of fields, got array"},
		},
		{name: "empty", spec: "\n", want: []string{"bad.yaml: job spec is empty"}},
		{name: "not yaml", spec: "name: [unclosed\n", want: []string{"bad.yaml: yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, url := newFakeGateway(t)
			file := writeFile(t, "bad.yaml", tt.spec)
			res := runCLI(t, envFor(url), "", "submit", "-f", file)
			if res.err == nil {
				t.Fatalf("submit succeeded; stdout %q", res.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.err.Error(), w) {
					t.Errorf("error %q does not contain %q", res.err, w)
				}
			}
			if got := g.seen(); len(got) != 0 {
				t.Errorf("requests = %q, want none: a bad spec must fail before any request", got)
			}
		})
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	file := writeFile(t, "train.yaml", trainYAML)
	res := runCLI(t, envFor(url), "", "submit", "-f", file, "--idempotency-key", "k1")
	if res.err != nil {
		t.Fatalf("submit: %v", res.err)
	}
	if want := "submitted job job-01 (queued)\n"; res.stdout != want {
		t.Errorf("stdout = %q, want %q", res.stdout, want)
	}
	want := api.JobSpec{
		Name:           "train",
		Experiment:     "mnist",
		Image:          "localhost/jobgate-examples:latest",
		Command:        []string{"/toolbox", "train", "--epochs", "3"},
		Env:            map[string]string{"SEED": "1"},
		Resources:      api.Resources{GPUs: 1},
		TimeoutSeconds: 600,
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if diff := cmp.Diff(want, g.jobs[0].Spec); diff != "" {
		t.Errorf("submitted spec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k1"}, g.idemKeys); diff != "" {
		t.Errorf("idempotency keys (-want +got):\n%s", diff)
	}
}

// TestSubmitYAMLBooleansStayStrings: YAML 1.1 read N, Y, NO, ON, OFF and
// yes as booleans, so env and tags keys collided and values became
// true/false; the spec decoder is YAML 1.2, where they are the strings they
// look like.
func TestSubmitYAMLBooleansStayStrings(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	file := writeFile(t, "train.yaml", "command: [a]\nenv:\n  N: N\n  Y: Y\n  NO: NO\n  ON: ON\n  OFF: OFF\n  ANSWER: yes\ntags:\n  Y: N\n  ON: OFF\n")
	res := runCLI(t, envFor(url), "", "submit", "-f", file)
	if res.err != nil {
		t.Fatalf("submit: %v", res.err)
	}
	want := api.JobSpec{Command: []string{"a"},
		Env:  map[string]string{"N": "N", "Y": "Y", "NO": "NO", "ON": "ON", "OFF": "OFF", "ANSWER": "yes"},
		Tags: map[string]string{"Y": "N", "ON": "OFF"}}
	g.mu.Lock()
	defer g.mu.Unlock()
	if diff := cmp.Diff(want, g.jobs[0].Spec); diff != "" {
		t.Errorf("submitted spec (-want +got):\n%s", diff)
	}
}

func TestSubmitJSONFromStdin(t *testing.T) {
	t.Parallel()
	_, url := newFakeGateway(t)
	spec := `{"name": "score", "command": ["score"], "mode": "process"}`
	res := runCLI(t, envFor(url), spec, "submit", "-f", "-", "--json")
	if res.err != nil {
		t.Fatalf("submit: %v", res.err)
	}
	var job api.Job
	if err := json.Unmarshal([]byte(res.stdout), &job); err != nil {
		t.Fatalf("stdout is not a job as JSON: %v\n%s", err, res.stdout)
	}
	if job.ID != "job-01" || job.Spec.Name != "score" || job.Spec.Mode != api.ModeProcess {
		t.Errorf("job = %+v", job)
	}
}

func TestSubmitGatewayError(t *testing.T) {
	t.Parallel()
	_, url := newFakeGateway(t)
	file := writeFile(t, "train.yaml", "command: [a]\ntimeout_seconds: -1\n")
	res := runCLI(t, envFor(url), "", "submit", "-f", file)
	if want := "submit: invalid_spec: timeout_seconds must be > 0 (HTTP 422)"; res.err == nil || res.err.Error() != want {
		t.Errorf("error = %v, want %q", res.err, want)
	}
	if res.exitCode() != 1 {
		t.Errorf("exit code = %d, want 1", res.exitCode())
	}
}

func TestSubmitFollow(t *testing.T) {
	t.Parallel()
	exit := func(n int) *int { return &n }
	tests := []struct {
		name       string
		finish     func(*api.Job)
		wantCode   int
		wantStderr string
	}{
		{
			name:       "succeeded",
			finish:     func(j *api.Job) { j.ExitCode = exit(0) },
			wantCode:   0,
			wantStderr: "job job-01 succeeded\n",
		},
		{
			name: "failed with exit code 3",
			finish: func(j *api.Job) {
				j.Status, j.Reason, j.ExitCode = api.StatusFailed, api.ReasonExitCode, exit(3)
			},
			wantCode:   3,
			wantStderr: "job job-01 failed: exit_code (exit code 3)\n",
		},
		{
			name:       "failed without an exit code",
			finish:     func(j *api.Job) { j.Status, j.Reason = api.StatusFailed, api.ReasonTimeout },
			wantCode:   1,
			wantStderr: "job job-01 failed: timeout\n",
		},
		{
			name: "failed with an exit code out of range",
			finish: func(j *api.Job) {
				j.Status, j.Reason, j.ExitCode = api.StatusFailed, api.ReasonExitCode, exit(-1)
			},
			wantCode:   1,
			wantStderr: "job job-01 failed: exit_code (exit code -1)\n",
		},
		{
			name:       "canceled",
			finish:     func(j *api.Job) { j.Status, j.Reason = api.StatusCanceled, api.ReasonCanceled },
			wantCode:   130,
			wantStderr: "job job-01 canceled\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, url := newFakeGateway(t)
			g.FinishFunc = tt.finish
			file := writeFile(t, "train.yaml", trainYAML)
			res := runCLI(t, envFor(url), "", "submit", "-f", file, "--follow")
			if got := res.exitCode(); got != tt.wantCode {
				t.Errorf("exit code = %d (err %v), want %d", got, res.err, tt.wantCode)
			}
			// stdout is the log and nothing else.
			if res.stdout != g.Log {
				t.Errorf("stdout = %q, want the log %q", res.stdout, g.Log)
			}
			if want := "submitted job job-01 (queued)\n" + tt.wantStderr; res.stderr != want {
				t.Errorf("stderr = %q, want %q", res.stderr, want)
			}
			if res.err != nil && res.err.Error() != strings.TrimSuffix(tt.wantStderr, "\n") {
				t.Errorf("error message = %q, want the summary %q", res.err, tt.wantStderr)
			}
			reqs := g.seen()
			if len(reqs) < 3 || reqs[1] != "GET /v1/jobs/job-01/logs?follow=true" || reqs[len(reqs)-1] != "GET /v1/jobs/job-01" {
				t.Errorf("requests = %q, want submit, follow logs, then get", reqs)
			}
		})
	}
}

func TestFollowInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       func(file string) []string
		wantStderr string
	}{
		{
			name:       "submit --follow",
			args:       func(file string) []string { return []string{"submit", "-f", file, "--follow"} },
			wantStderr: "submitted job job-01 (queued)\nstopped following job job-01; it was not canceled (jobgate cancel job-01 stops it)\n",
		},
		{
			name:       "logs --follow",
			args:       func(string) []string { return []string{"logs", "--follow", "job-01"} },
			wantStderr: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, url := newFakeGateway(t)
			g.Hang = true
			file := writeFile(t, "train.yaml", trainYAML)
			if tt.name == "logs --follow" {
				g.add(api.JobSpec{Command: []string{"a"}})
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stdout := &interruptOnOutput{cancel: cancel}
			var stderr bytes.Buffer
			err := execCLI(ctx, envFor(url), strings.NewReader(""), stdout, &stderr, tt.args(file)...)
			res := cliResult{stdout: stdout.buf.String(), stderr: stderr.String(), err: err}
			if got := res.exitCode(); got != 130 {
				t.Errorf("exit code = %d (err %v), want 130", got, res.err)
			}
			if res.stdout != g.Log {
				t.Errorf("stdout = %q, want the log %q", res.stdout, g.Log)
			}
			if res.stderr != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", res.stderr, tt.wantStderr)
			}
			for _, r := range g.seen() {
				if strings.Contains(r, "/cancel") {
					t.Errorf("request %q: stopping to follow must not cancel the job", r)
				}
			}
		})
	}
}

func TestSubmitJSONAndFollowExclusive(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "", "submit", "-f", "x.yaml", "--follow", "--json")
	if res.err == nil || !strings.Contains(res.err.Error(), "json") || !strings.Contains(res.err.Error(), "follow") {
		t.Errorf("error = %v, want one naming --json and --follow", res.err)
	}
}

func TestListAll(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	for i := range 5 {
		g.add(api.JobSpec{Name: fmt.Sprintf("train-%d", i+1), Experiment: "mnist", Command: []string{"a"}})
	}
	g.update("job-02", func(j *api.Job) { j.Status, j.ExitCode = api.StatusFailed, new(3) })

	res := runCLI(t, envFor(url), "", "list", "--all", "--limit", "2", "--experiment", "mnist")
	if res.err != nil {
		t.Fatalf("list: %v", res.err)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("stdout has %d lines, want a header and 5 jobs:\n%s", len(lines), res.stdout)
	}
	if got := strings.Fields(lines[0]); !cmp.Equal(got, []string{"ID", "NAME", "STATUS", "EXIT", "AGE", "EXPERIMENT"}) {
		t.Errorf("header = %q", got)
	}
	var ids []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		ids = append(ids, f[0])
		if f[0] == "job-02" && (f[2] != "failed" || f[3] != "3") {
			t.Errorf("job-02 row = %q, want status failed and exit 3", l)
		}
	}
	if diff := cmp.Diff([]string{"job-05", "job-04", "job-03", "job-02", "job-01"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	wantReqs := []string{
		"GET /v1/jobs?experiment=mnist&limit=2",
		"GET /v1/jobs?cursor=2&experiment=mnist&limit=2",
		"GET /v1/jobs?cursor=4&experiment=mnist&limit=2",
	}
	if diff := cmp.Diff(wantReqs, g.seen()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if res.stderr != "" {
		t.Errorf("stderr = %q, want no hint with --all", res.stderr)
	}

	// --all --json is one list with every job and no cursor.
	res = runCLI(t, envFor(url), "", "list", "--all", "--limit", "2", "--json")
	var list api.JobList
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("list --json: %v (err %v)\n%s", err, res.err, res.stdout)
	}
	if len(list.Jobs) != 5 || list.NextCursor != "" {
		t.Errorf("list --all --json = %d jobs, cursor %q; want 5 and none", len(list.Jobs), list.NextCursor)
	}
}

func TestListPageHint(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	for range 3 {
		g.add(api.JobSpec{Command: []string{"a"}})
	}
	res := runCLI(t, envFor(url), "", "list", "--limit", "2", "--status", "queued")
	if res.err != nil {
		t.Fatalf("list: %v", res.err)
	}
	if n := strings.Count(res.stdout, "\n"); n != 3 {
		t.Errorf("stdout has %d lines, want a header and 2 jobs:\n%s", n, res.stdout)
	}
	if want := "more jobs: run again with --cursor 2, or --all for every page\n"; res.stderr != want {
		t.Errorf("stderr = %q, want %q", res.stderr, want)
	}
	if got := g.seen(); len(got) != 1 || got[0] != "GET /v1/jobs?limit=2&status=queued" {
		t.Errorf("requests = %q", got)
	}

	res = runCLI(t, envFor(url), "", "list", "--status", "done")
	if res.err == nil || !strings.Contains(res.err.Error(), `list: unknown status "done"`) {
		t.Errorf("bad status error = %v", res.err)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	g.add(api.JobSpec{
		Name:       "train",
		Experiment: "mnist",
		Image:      "localhost/x:latest",
		Command:    []string{"python", "train.py", "--note", "two words"},
	})
	started := time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)
	g.update("job-01", func(j *api.Job) {
		j.Status, j.Reason, j.ExitCode = api.StatusFailed, api.ReasonExitCode, new(2)
		j.Worker, j.StartedAt = "gpu-1", &started
	})

	res := runCLI(t, envFor(url), "", "get", "job-01")
	if res.err != nil {
		t.Fatalf("get: %v", res.err)
	}
	want := `id:          job-01
name:        train
experiment:  mnist
status:      failed
reason:      exit_code
exit code:   2
attempt:     1
worker:      gpu-1
created:     2025-01-02T03:04:01Z
started:     2025-01-02T03:05:00Z
finished:    -
image:       localhost/x:latest
command:     python train.py --note 'two words'
`
	if diff := cmp.Diff(want, res.stdout); diff != "" {
		t.Errorf("get output (-want +got):\n%s", diff)
	}
}

func TestGetJSON(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	want := g.add(api.JobSpec{Name: "train", Command: []string{"a"}, Env: map[string]string{"K": "<v&>"}})

	res := runCLI(t, envFor(url), "", "get", "job-01", "--json")
	if res.err != nil {
		t.Fatalf("get --json: %v", res.err)
	}
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	var got api.Job
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not an api.Job: %v\n%s", err, res.stdout)
	}
	if dec.More() {
		t.Errorf("stdout has more than one JSON value:\n%s", res.stdout)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
}

func TestGetNotFound(t *testing.T) {
	t.Parallel()
	_, url := newFakeGateway(t)
	res := runCLI(t, envFor(url), "", "get", "nope")
	if want := "get: not_found: job nope not found (HTTP 404)"; res.err == nil || res.err.Error() != want {
		t.Errorf("error = %v, want %q", res.err, want)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	g.Log = "raw \x00 bytes\r\nno final newline"
	g.add(api.JobSpec{Command: []string{"a"}})
	for _, args := range [][]string{{"logs", "job-01"}, {"logs", "-f", "job-01"}} {
		res := runCLI(t, envFor(url), "", args...)
		if res.err != nil {
			t.Fatalf("%q: %v", args, res.err)
		}
		if res.stdout != g.Log {
			t.Errorf("%q: stdout = %q, want %q", args, res.stdout, g.Log)
		}
	}
	wantReqs := []string{"GET /v1/jobs/job-01/logs", "GET /v1/jobs/job-01/logs?follow=true"}
	if diff := cmp.Diff(wantReqs, g.seen()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	g.add(api.JobSpec{Command: []string{"a"}}) // job-01 stays queued
	g.add(api.JobSpec{Command: []string{"a"}})
	g.update("job-02", func(j *api.Job) { j.Status = api.StatusRunning })
	g.add(api.JobSpec{Command: []string{"a"}})
	g.update("job-03", func(j *api.Job) { j.Status = api.StatusSucceeded })

	tests := []struct {
		id, want string
	}{
		{"job-01", "canceled job job-01\n"},
		{"job-02", "cancel requested for job job-02 (running)\n"},
		{"job-03", "job job-03 already succeeded; nothing to cancel\n"},
	}
	for _, tt := range tests {
		res := runCLI(t, envFor(url), "", "cancel", tt.id)
		if res.err != nil {
			t.Fatalf("cancel %s: %v", tt.id, res.err)
		}
		if res.stdout != tt.want {
			t.Errorf("cancel %s: stdout = %q, want %q", tt.id, res.stdout, tt.want)
		}
	}
}

func TestTokenSources(t *testing.T) {
	// Not parallel: it changes the working directory.
	g, url := newFakeGateway(t)
	g.add(api.JobSpec{Command: []string{"a"}})

	dir := t.TempDir()
	t.Chdir(dir)
	env := map[string]string{"JOBGATE_URL": url}

	res := runCLI(t, env, "", "get", "job-01")
	if want := "get: unauthorized: missing or bad token (HTTP 401)"; res.err == nil || res.err.Error() != want {
		t.Errorf("without a token: error = %v, want %q", res.err, want)
	}

	// The file `jobgate dev` writes, with its trailing newline.
	if err := os.MkdirAll(filepath.Join(dir, ".jobgate"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".jobgate", "token"), []byte(fakeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, env, "", "get", "job-01"); res.err != nil {
		t.Errorf("with ./.jobgate/token: %v", res.err)
	}

	// The environment and the flag come before the file.
	env["JOBGATE_TOKEN"] = "wrong"
	if res := runCLI(t, env, "", "get", "job-01"); res.err == nil {
		t.Error("JOBGATE_TOKEN=wrong was not used over the file")
	}
	if res := runCLI(t, env, "", "get", "job-01", "--token", fakeToken); res.err != nil {
		t.Errorf("--token over JOBGATE_TOKEN: %v", res.err)
	}
}

func TestURLFlagOverridesEnv(t *testing.T) {
	t.Parallel()
	g, url := newFakeGateway(t)
	g.add(api.JobSpec{Command: []string{"a"}})
	env := map[string]string{"JOBGATE_URL": "http://127.0.0.1:1", "JOBGATE_TOKEN": fakeToken}
	if res := runCLI(t, env, "", "get", "job-01", "--url", url); res.err != nil {
		t.Errorf("get --url: %v", res.err)
	}
}

func TestHelpHidesToken(t *testing.T) {
	t.Parallel()
	res := runCLI(t, map[string]string{"JOBGATE_TOKEN": "very-secret"}, "", "get", "--help")
	if res.err != nil {
		t.Fatalf("get --help: %v", res.err)
	}
	if strings.Contains(res.stdout, "very-secret") {
		t.Errorf("--help shows the token:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "--url") || !strings.Contains(res.stdout, "--json") {
		t.Errorf("--help lacks the shared flags:\n%s", res.stdout)
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ago  time.Duration
		want string
	}{
		{"seconds", 45 * time.Second, "45s"},
		{"minutes", 12*time.Minute + 30*time.Second, "12m"},
		{"hours", 30 * time.Hour, "30h"},
		{"days", 5 * 24 * time.Hour, "5d"},
		{"clock skew", -time.Minute, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := age(now, now.Add(-tt.ago)); got != tt.want {
				t.Errorf("age(%v ago) = %q, want %q", tt.ago, got, tt.want)
			}
		})
	}
}
