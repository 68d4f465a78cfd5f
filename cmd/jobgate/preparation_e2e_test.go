package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestJobPreparation(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }
	const ran = "COMMAND-RAN"
	tests := []struct {
		name       string
		spec       api.JobSpec
		wantStatus api.Status
		wantReason string // prefix
		wantTries  int
		wantLog    string // exact, when set
		contains   []string
		absent     []string
	}{
		{name: "container: the command finds what the preparation wrote",
			spec:       api.JobSpec{Preparation: toolbox("write", "prepared.txt", "ready"), Command: toolbox("cat", "prepared.txt")},
			wantStatus: api.StatusSucceeded, wantTries: 1,
			wantLog: "jobgate: preparation finished (exited with 0)\nready\n"},
		{name: "container: both run in JOBGATE_WORKDIR, mounted at /workdir",
			spec:       api.JobSpec{Preparation: toolbox("pwd"), Command: toolbox("env", "JOBGATE_WORKDIR")},
			wantStatus: api.StatusSucceeded, wantTries: 1,
			wantLog: "/workdir\njobgate: preparation finished (exited with 0)\n/workdir\n"},
		{name: "container: every job gets a working folder",
			spec:       api.JobSpec{Command: toolbox("pwd")},
			wantStatus: api.StatusSucceeded, wantTries: 1, wantLog: "/workdir\n"},
		{name: "container: a failed preparation fails the job and the command never runs",
			spec:       api.JobSpec{Preparation: toolbox("exit", "3"), Command: toolbox("echo", ran)},
			wantStatus: api.StatusFailed, wantReason: "preparation_failed: exited with 3", wantTries: 1,
			contains: []string{"jobgate: preparation failed: exited with 3"}, absent: []string{ran}},
		{name: "container: a failed preparation is retried like a failed command",
			spec:       api.JobSpec{Preparation: toolbox("exit", "2"), Command: toolbox("echo", ran), MaxRetries: 1},
			wantStatus: api.StatusFailed, wantReason: "preparation_failed: exited with 2", wantTries: 2, absent: []string{ran}},
		{name: "container: a preparation that cannot start",
			spec:       api.JobSpec{Preparation: []string{"/bin/no-such-program"}, Command: toolbox("echo", ran), MaxRetries: 2},
			wantStatus: api.StatusFailed, wantReason: "start_failed: preparation: ", wantTries: 1, absent: []string{ran}},
		{name: "container: the timeout covers the preparation",
			spec:       api.JobSpec{Preparation: toolbox("sleep", "300"), Command: toolbox("echo", ran), TimeoutSeconds: 1},
			wantStatus: api.StatusFailed, wantReason: "timeout", wantTries: 1, absent: []string{ran}},
		{name: "process: the command finds what the preparation wrote, in the same folder",
			spec: api.JobSpec{Mode: api.ModeProcess, Preparation: sh(`echo ready > prepared.txt; pwd > where.txt`),
				Command: sh(`cat prepared.txt; test "$(cat where.txt)" = "$JOBGATE_WORKDIR" && test "$(pwd)" = "$JOBGATE_WORKDIR" && echo same-folder`)},
			wantStatus: api.StatusSucceeded, wantTries: 1,
			wantLog: "jobgate: preparation finished (exited with 0)\nready\nsame-folder\n"},
		{name: "process: a failed preparation fails the job and the command never runs",
			spec:       api.JobSpec{Mode: api.ModeProcess, Preparation: sh(`echo fetching; exit 5`), Command: sh("echo " + ran)},
			wantStatus: api.StatusFailed, wantReason: "preparation_failed: exited with 5", wantTries: 1,
			contains: []string{"fetching\n", "jobgate: preparation failed: exited with 5"}, absent: []string{ran}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *c
			c.t = t
			j := c.waitEnded(c.submit(tt.spec).ID)
			logs := c.logs(j.ID)
			if j.Status != tt.wantStatus || !strings.HasPrefix(j.Reason, tt.wantReason) {
				t.Fatalf("job: %s (%s), want %s (%s…)\nlogs: %q", j.Status, j.Reason, tt.wantStatus, tt.wantReason, logs)
			}
			if j.Attempt != tt.wantTries {
				t.Errorf("attempt = %d, want %d", j.Attempt, tt.wantTries)
			}
			if tt.wantLog != "" && logs != tt.wantLog {
				t.Errorf("logs = %q, want %q", logs, tt.wantLog)
			}
			for _, s := range tt.contains {
				if !strings.Contains(logs, s) {
					t.Errorf("logs = %q, want them to contain %q", logs, s)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(logs, s) {
					t.Errorf("logs = %q: %q must not be there", logs, s)
				}
			}
			if tt.wantStatus == api.StatusFailed && j.ExitCode != nil {
				t.Errorf("exit_code = %d: the command did not run", *j.ExitCode)
			}
		})
	}

	// A cancel during the preparation ends the job as during the command.
	j := c.submit(api.JobSpec{Preparation: toolbox("sleep", "300"), Command: toolbox("echo", ran)})
	c.waitFor(j.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.logs(j.ID), "sleeping") }, "preparation never printed")
	if _, err := c.api.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	j = c.waitEnded(j.ID)
	if logs := c.logs(j.ID); j.Status != api.StatusCanceled || j.Reason != api.ReasonCanceled || strings.Contains(logs, ran) {
		t.Fatalf("canceled during preparation: %s (%s), logs %q; want canceled, the command never run", j.Status, j.Reason, logs)
	}

	var e struct {
		Error api.ErrorDetail `json:"error"`
	}
	body := `{"image":"` + testenv.ExampleImage + `","command":["x"],"preparation":["", "y"]}`
	if code := c.do("POST", "/v1/jobs", body, &e); code != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Message, "preparation[0]") {
		t.Fatalf("empty preparation program: %d %+v, want 422 naming preparation[0]", code, e)
	}
}

// workerEntry is the worker's state and problem in GET /v1/workers.
func (c *cluster) workerEntry(id string) (state, problem string) {
	var body struct {
		Workers []struct {
			ID      string `json:"id"`
			State   string `json:"state"`
			Problem string `json:"problem"`
		} `json:"workers"`
	}
	if c.do("GET", "/v1/workers", "", &body) != http.StatusOK {
		return "", ""
	}
	for _, w := range body.Workers {
		if w.ID == id {
			return w.State, w.Problem
		}
	}
	return "", ""
}

// startWorkerAsIs starts a worker like startWorker, without waiting for it
// to come up.
func (c *cluster) startWorkerAsIs(id string, extra ...string) {
	c.t.Helper()
	args := append([]string{"worker", "--id", id, "--redis-url", c.redisAt(), "--artifacts-dir", c.artifacts,
		"--podman-url", c.podman, "--network", "host", "--stop-grace", "2s", "--allow-host-process",
		"--spool-dir", c.t.TempDir(), "--checkpoint-dir", c.t.TempDir(), "--log-level", "warn"}, extra...)
	c.workers[id] = c.start(args...)
}

// writeScript writes an executable shell script (mode 0755 unless given).
func writeScript(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNodePreparation(t *testing.T) {
	// Scripts are written before anything forks, so that none is "text file
	// busy" because a child inherited it open for writing.
	dir := t.TempDir()
	started, release, marker := filepath.Join(dir, "started"), filepath.Join(dir, "release"), filepath.Join(dir, "marker")
	good := writeScript(t, dir, "good.sh", `touch `+started+`
echo "preparing node for $JOBGATE_WORKER_ID"
while [ ! -e `+release+` ]; do sleep 0.05; done
touch `+marker+`
`, 0o755)
	failing := writeScript(t, dir, "failing.sh", "echo checking the driver\necho 'no NVIDIA driver found' >&2\nexit 3\n", 0o755)
	notExec := writeScript(t, dir, "not-executable.sh", "exit 0\n", 0o644)
	slow := writeScript(t, dir, "slow.sh", "echo downloading\nsleep 300\n", 0o755)

	c := newCluster(t)
	held := c.submit(api.JobSpec{Command: toolbox("echo", "ran after node preparation")})

	// Failing node preparations keep their worker out of service, visibly,
	// and the job is not placed on it.
	tests := []struct {
		name     string
		args     []string
		mentions []string
	}{
		{name: "non-zero exit", args: []string{"--node-prep", failing},
			mentions: []string{"node preparation " + failing + " failed: exit status 3", "checking the driver | no NVIDIA driver found"}},
		{name: "not executable", args: []string{"--node-prep", notExec},
			mentions: []string{"node preparation " + notExec + " could not start", "permission denied"}},
		{name: "timeout", args: []string{"--node-prep", slow, "--node-prep-timeout", "1s"},
			mentions: []string{"node preparation " + slow + " timed out after 1s", "downloading"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *c
			c.t = t
			id := "bad" + string(rune('1'+i))
			c.startWorkerAsIs(id, tt.args...)
			var state, problem string
			testenv.Eventually(t, 30*time.Second, func() bool { state, problem = c.workerEntry(id); return state == "out_of_service" },
				"worker %s never out of service; last %q %q", id, lazy(func() string { return state }), lazy(func() string { return problem }))
			for _, m := range tt.mentions {
				if !strings.Contains(problem, m) {
					t.Errorf("problem = %q, want it to mention %q", problem, m)
				}
			}
			j := c.waitFor(held.ID, 20*time.Second, "said no worker is in service", func(j *api.Job) bool {
				return strings.Contains(j.Reason, "none is in service ("+id+" out_of_service;")
			})
			if j.Status != api.StatusQueued || j.Worker != "" || j.StartedAt != nil {
				t.Fatalf("job on an out-of-service worker: %s on %q, started %v", j.Status, j.Worker, j.StartedAt)
			}
			if state, _ := c.workerEntry(id); state != "out_of_service" {
				t.Fatalf("worker state = %q, want out_of_service for as long as it runs", state)
			}
			c.stopWorker(id) // exits 0 (stop checks)
			if state, _ := c.workerEntry(id); state != "stopped" {
				t.Errorf("stopped worker state = %q", state)
			}
		})
	}

	// A good node preparation runs once before the worker takes any job.
	c.startWorkerAsIs("good", "--node-prep", good)
	testenv.Eventually(t, 20*time.Second, func() bool { _, err := os.Stat(started); return err == nil }, "node preparation never started")
	if state, _ := c.workerEntry("good"); state != "preparing" {
		t.Fatalf("worker state during node preparation = %q, want preparing", state)
	}
	c.waitFor(held.ID, 20*time.Second, "said no worker is in service", func(j *api.Job) bool {
		return strings.Contains(j.Reason, "none is in service (good preparing;")
	})
	if j := c.get(held.ID); j.Status != api.StatusQueued || j.StartedAt != nil {
		t.Fatalf("job during node preparation: %s, started %v; want queued", j.Status, j.StartedAt)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool { s, _ := c.workerEntry("good"); return s == "up" }, "worker never came up")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("worker up before its node preparation finished: %v", err)
	}
	j := c.waitEnded(held.ID)
	if j.Status != api.StatusSucceeded || j.Worker != "good" || j.Attempt != 1 {
		t.Fatalf("held job: %s (%s) on %q attempt %d; want succeeded on good, attempt 1", j.Status, j.Reason, j.Worker, j.Attempt)
	}
	if _, problem := c.workerEntry("good"); problem != "" {
		t.Errorf("problem of a prepared worker = %q", problem)
	}
}
