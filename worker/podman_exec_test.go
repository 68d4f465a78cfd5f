package worker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containers/podman/v4/libpod/define"
)

func TestPodmanExecutorExec(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, nil)
	a := pt.attempt(t, map[string]string{"JOBGATE_JOB_ID": "", "GREETING": "hi from the job"}, "sleep", "60")
	a.Env["JOBGATE_JOB_ID"] = a.JobID
	tests := []struct {
		name                string
		args                []string
		wantCode            int
		wantStdout, wantErr string
	}{
		{name: "job env", args: []string{"env", "JOBGATE_JOB_ID"}, wantStdout: a.JobID + "\n"},
		{name: "spec env", args: []string{"env", "GREETING"}, wantStdout: "hi from the job\n"},
		{name: "exit code", args: []string{"exit", "3"}, wantCode: 3},
		{name: "stderr", args: []string{"stderr", "oops"}, wantErr: "oops\n"},
		{name: "working folder", args: []string{"pwd"}, wantStdout: "/\n"},
		{name: "many lines", args: []string{"lines", "5000"}},
	}
	pt.whileRunning(t, a, func(*define.InspectContainerData) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var stdout, stderr execBuffer
				started := false
				code, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, append([]string{"/bin/toolbox"}, tt.args...),
					ExecIO{Stdout: &stdout, Stderr: &stderr, Started: func() { started = true }})
				if err != nil || code != tt.wantCode || !started {
					t.Fatalf("Exec = %d, %v, started %v; want %d, nil, started\nstderr: %s", code, err, started, tt.wantCode, stderr.String())
				}
				if tt.name == "many lines" {
					wantLines(t, stdout.String(), 5000, "line %06d")
					return
				}
				if stdout.String() != tt.wantStdout || stderr.String() != tt.wantErr {
					t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tt.wantStdout, tt.wantErr)
				}
			})
		}
		t.Run("command not found", func(t *testing.T) {
			// As `podman exec` and a shell say it: 127 and why on stderr.
			var stderr execBuffer
			code, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, []string{"/bin/jobgate-no-such-command"}, ExecIO{Stderr: &stderr})
			if err != nil || code != 127 || !strings.Contains(stderr.String(), "jobgate-no-such-command") {
				t.Errorf("Exec = %d, %v, stderr %q; want 127, nil and a message naming the command", code, err, stderr.String())
			}
		})
		// The API cannot stop an exec session; Exec signals its process.
		t.Run("stop", func(t *testing.T) {
			for _, tt := range []struct {
				args     []string
				wantCode int
			}{{[]string{"sleep", "600"}, 143}, {[]string{"sleep", "600", "--ignore-term"}, 137}} {
				ctx, cancel := context.WithCancel(t.Context())
				var stdout execBuffer
				go cancelWhen(t, cancel, func() bool { return strings.Contains(stdout.String(), "sleeping") })
				code, err := pt.exec.Exec(ctx, a.JobID, a.Number, append([]string{"/bin/toolbox"}, tt.args...), ExecIO{Stdout: &stdout})
				if err != nil || code != tt.wantCode {
					t.Errorf("%v: Exec = %d, %v; want %d, nil", tt.args, code, err, tt.wantCode)
				}
			}
		})
	})
	// The attempt has ended: nothing to exec into, and nothing started.
	started := false
	_, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, []string{"/bin/toolbox", "echo"}, ExecIO{Started: func() { started = true }})
	if !errors.Is(err, ErrNotRunning) || started {
		t.Fatalf("Exec after the attempt = %v, started %v; want ErrNotRunning, not started", err, started)
	}
}
