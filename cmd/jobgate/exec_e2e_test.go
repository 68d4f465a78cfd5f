package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/worker"
)

// runningJob submits spec and returns once its workload printed "sleeping".
func (c *cluster) runningJob(spec api.JobSpec) *api.Job {
	c.t.Helper()
	j := c.submit(spec)
	testenv.Eventually(c.t, 60*time.Second, func() bool { return strings.Contains(c.logs(j.ID), "sleeping") },
		"job %s never came up", j.ID)
	return c.get(j.ID)
}

// exec runs argv in job id through the SDK.
func (c *cluster) exec(ctx context.Context, id string, req api.ExecRequest) (code int, stdout, stderr string, err error) {
	var o, e bytes.Buffer
	code, err = c.api.ExecWith(ctx, id, req, &o, &e)
	return code, o.String(), e.String(), err
}

func apiErrorCode(err error) (int, string) {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Code
	}
	return 0, ""
}

func TestExecIntoRunningContainerJob(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	j := c.runningJob(api.JobSpec{Command: toolbox("sleep", "300")})
	ctx := context.Background()

	tests := []struct {
		name                   string
		argv                   []string
		wantCode               int
		wantStdout, wantStderr string
	}{
		{name: "the job's environment", argv: toolbox("env", "JOBGATE_JOB_ID"), wantStdout: j.ID + "\n"},
		{name: "its outputs folder", argv: toolbox("env", "JOBGATE_OUTPUTS"), wantStdout: "/outputs\n"},
		{name: "its working folder", argv: toolbox("pwd"), wantStdout: worker.ContainerWorkDir + "\n"},
		{name: "exit code", argv: toolbox("exit", "3"), wantCode: 3},
		{name: "stderr", argv: toolbox("stderr", "oops"), wantStderr: "oops\n"},
		{name: "found in the image's PATH", argv: []string{"toolbox", "echo", "hi"}, wantStdout: "hi\n"},
		{name: "not in the image", argv: []string{"/bin/jobgate-no-such-command"}, wantCode: 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr, err := c.exec(ctx, j.ID, api.ExecRequest{Command: tt.argv})
			if err != nil || code != tt.wantCode {
				t.Fatalf("exec = %d, %v; want %d\nstderr: %s", code, err, tt.wantCode, stderr)
			}
			if tt.wantCode == 127 {
				if !strings.Contains(stderr, "jobgate-no-such-command") {
					t.Errorf("stderr %q does not say what was not found", stderr)
				}
				return
			}
			if stdout != tt.wantStdout || stderr != tt.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout, stderr, tt.wantStdout, tt.wantStderr)
			}
		})
	}

	t.Run("a lot of output", func(t *testing.T) {
		code, stdout, _, err := c.exec(ctx, j.ID, api.ExecRequest{Command: toolbox("lines", "100000")})
		if err != nil || code != 0 {
			t.Fatalf("exec = %d, %v", code, err)
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(lines) != 100000 || lines[0] != "line 000001" || lines[99999] != "line 100000" {
			t.Fatalf("got %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
		}
	})

	t.Run("CLI", func(t *testing.T) {
		env := map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": c.token}
		if res := runCLI(t, env, "", "exec", j.ID, "--", "toolbox", "echo", "hi"); res.err != nil || res.stdout != "hi\n" {
			t.Fatalf("jobgate exec ID -- toolbox echo hi: %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
		}
		res := runCLI(t, env, "", "exec", j.ID, "--", "toolbox", "stderr", "oops")
		if res.err != nil || res.stdout != "" || res.stderr != "oops\n" {
			t.Fatalf("jobgate exec ... stderr oops: %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
		}
		var ee interface{ ExitCode() int }
		res = runCLI(t, env, "", "exec", j.ID, "--", "toolbox", "exit", "3")
		if !errors.As(res.err, &ee) || ee.ExitCode() != 3 || res.stderr != "" {
			t.Fatalf("jobgate exec ... exit 3: %v, stderr %q; want exit code 3 and nothing said", res.err, res.stderr)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		_, stdout, _, err := c.exec(ctx, j.ID, api.ExecRequest{Command: toolbox("sleep", "60"), TimeoutSeconds: 1})
		var ee *client.ExecError
		if !errors.As(err, &ee) || ee.Code != "timeout" || !strings.Contains(stdout, "got SIGTERM") {
			t.Fatalf("exec past its timeout: %v, stdout %q; want a timeout error after the command got SIGTERM", err, stdout)
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		// Once the client hangs up, the worker stops the command: podman
		// shows the exec session ended long before its 600 s.
		cctx, cancel := context.WithCancel(ctx)
		up := make(chan struct{})
		go func() {
			defer close(up)
			_, _ = c.api.Exec(cctx, j.ID, toolbox("sleep", "600"), writerFunc(func(p []byte) (int, error) {
				cancel()
				return len(p), nil
			}), nil)
		}()
		<-up
		conn, err := bindings.NewConnection(context.Background(), c.podman)
		if err != nil {
			t.Fatal(err)
		}
		info, err := containers.Inspect(conn, worker.ContainerName(j.ID, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, func() bool {
			for _, id := range info.ExecIDs {
				if s, err := containers.ExecInspect(conn, id, nil); err == nil && s.Running {
					return false
				}
			}
			return true
		}, "an exec session still runs after its client went away")
	})

	t.Run("refused", func(t *testing.T) {
		other := c.asToken(c.workspaceAdmin("team-b", api.Quotas{}))
		if _, _, _, err := other.exec(ctx, j.ID, api.ExecRequest{Command: toolbox("echo")}); !matchCode(err, http.StatusNotFound) {
			t.Errorf("another workspace's exec: %v, want 404", err)
		}
		var ro api.NewToken
		if code := c.do("POST", "/v1/workspaces/default/tokens", `{"name":"ro","scopes":["read"]}`, &ro); code != http.StatusCreated {
			t.Fatalf("create read-only token: %d", code)
		}
		if _, _, _, err := c.asToken(ro.Secret).exec(ctx, j.ID, api.ExecRequest{Command: toolbox("echo")}); !matchCode(err, http.StatusForbidden) {
			t.Errorf("read-only token's exec: %v, want 403", err)
		}
		if _, _, _, err := c.exec(ctx, "01jd2x4g9k5v0a8m3r7c6b1n2p", api.ExecRequest{Command: toolbox("echo")}); !matchCode(err, http.StatusNotFound) {
			t.Errorf("exec into no job: %v, want 404", err)
		}
	})

	var audit struct{ Entries []api.AuditEntry }
	c.do("GET", "/v1/audit?limit=100", "", &audit)
	if !strings.Contains(auditText(audit.Entries), "job.exec "+j.ID+` ["toolbox","echo","hi"]`) {
		t.Errorf("audit log lacks the exec: %s", auditText(audit.Entries))
	}

	// An ended job takes no exec.
	if _, err := c.api.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	c.waitEnded(j.ID)
	_, _, _, err := c.exec(ctx, j.ID, api.ExecRequest{Command: toolbox("echo")})
	if status, code := apiErrorCode(err); status != http.StatusConflict || code != "job_not_running" {
		t.Fatalf("exec into an ended job: %v, want 409 job_not_running", err)
	}
}

func matchCode(err error, status int) bool {
	s, _ := apiErrorCode(err)
	return s == status
}

func auditText(entries []api.AuditEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Action + " " + e.Target + "\n")
	}
	return b.String()
}

// TestExecIntoHostProcessJob: a host-process job's exec runs on its worker
// with the job's environment and working folder, and stops when its client
// hangs up.
func TestExecIntoHostProcessJob(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	j := c.runningJob(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo sleeping; exec sleep 300"}})
	ctx := context.Background()

	code, stdout, stderr, err := c.exec(ctx, j.ID, api.ExecRequest{Command: []string{"/bin/sh", "-c", `echo "$JOBGATE_JOB_ID"; pwd; [ "$(pwd)" = "$JOBGATE_WORKDIR" ]`}})
	lines := strings.Split(stdout, "\n")
	if err != nil || code != 0 || len(lines) < 2 || lines[0] != j.ID || !strings.Contains(lines[1], j.ID) {
		t.Fatalf("exec = %d, %v, stdout %q, stderr %q; want the job's ID and its working folder", code, err, stdout, stderr)
	}

	// The worker looks the command up in the job's PATH before it starts.
	_, _, _, err = c.exec(ctx, j.ID, api.ExecRequest{Command: []string{"jobgate-no-such-command"}})
	if status, code := apiErrorCode(err); status != http.StatusUnprocessableEntity || code != "start_failed" {
		t.Fatalf("exec of a command not on the worker: %v, want 422 start_failed", err)
	}

	// The client hangs up: the process it started is gone soon after.
	cctx, cancel := context.WithCancel(ctx)
	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = c.api.Exec(cctx, j.ID, []string{"/bin/sh", "-c", "echo up; exec sleep 617"}, writerFunc(func(p []byte) (int, error) {
			cancel()
			return len(p), nil
		}), nil)
	}()
	<-up
	testenv.Eventually(t, 30*time.Second, func() bool { return !jobProcessRuns(j.ID, "sleep\x00617") },
		"the exec's process still runs after its client went away")
	if _, err := c.api.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	c.waitEnded(j.ID)
}

// jobProcessRuns reports whether a process of job id (by JOBGATE_JOB_ID in
// its environment) runs with cmdline containing cmd.
func jobProcessRuns(id, cmd string) bool {
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range envs {
		env, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(env, []byte("JOBGATE_JOB_ID="+id+"\x00")) {
			continue
		}
		if line, err := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline")); err == nil && bytes.Contains(line, []byte(cmd)) {
			return true
		}
	}
	return false
}

// BenchmarkExecEcho measures one `exec ID -- toolbox echo hi` into a running
// container job, request to exit code: through the gateway, Redis and the
// worker (jobgate), and, as the peer, `podman exec` run on the worker's
// machine against the same container and podman service.
func BenchmarkExecEcho(b *testing.B) {
	c := newBenchCluster(b)
	j := c.submit(api.JobSpec{Command: toolbox("sleep", "600")})
	testenv.Eventually(b, 60*time.Second, func() bool { return strings.Contains(c.logs(j.ID), "sleeping") }, "job never came up")
	b.Run("jobgate", func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			start := time.Now()
			if code, err := c.api.Exec(context.Background(), j.ID, toolbox("echo", "hi"), nil, nil); err != nil || code != 0 {
				b.Fatalf("exec = %d, %v", code, err)
			}
			d = append(d, time.Since(start))
		}
		reportPercentiles(b, d)
	})
	b.Run("podman-exec-cli", func(b *testing.B) {
		name := worker.ContainerName(j.ID, 1)
		var d []time.Duration
		for b.Loop() {
			start := time.Now()
			out, err := exec.Command("podman", "--url", c.podman, "exec", name, "/bin/toolbox", "echo", "hi").CombinedOutput()
			if err != nil || string(out) != "hi\n" {
				b.Fatalf("podman exec: %v %s", err, out)
			}
			d = append(d, time.Since(start))
		}
		reportPercentiles(b, d)
	})
}
