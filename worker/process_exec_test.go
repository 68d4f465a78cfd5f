package worker

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/testenv"
)

// runningProcess starts a (a toolbox sleep) and returns once it is up; the
// returned func stops it (once; later calls only repeat) and returns Run's
// result.
func (pt processTest) runningProcess(t *testing.T, a Attempt) (stop func() (Outcome, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout execBuffer
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := pt.exec.Run(ctx, a, &stdout, nil)
		done <- result{out, err}
	}()
	testenv.Eventually(t, 20*time.Second, func() bool { return strings.Contains(stdout.String(), "sleeping") }, "workload never started")
	var once sync.Once
	var r result
	return func() (Outcome, error) {
		once.Do(func() { cancel(); r = <-done })
		return r.out, r.err
	}
}

func TestProcessExecutorExec(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	a := pt.attempt(t, map[string]string{"GREETING": "hi from the job"}, "sleep", "60")
	stop := pt.runningProcess(t, a)
	defer stop()

	tests := []struct {
		name                string
		argv                []string
		wantCode            int
		wantStdout, wantErr string
	}{
		{name: "job env", argv: []string{pt.toolbox, "env", "JOBGATE_JOB_ID"}, wantStdout: a.JobID + "\n"},
		{name: "spec env", argv: []string{pt.toolbox, "env", "GREETING"}, wantStdout: "hi from the job\n"},
		{name: "exit code", argv: []string{pt.toolbox, "exit", "3"}, wantCode: 3},
		{name: "stderr", argv: []string{pt.toolbox, "stderr", "oops"}, wantErr: "oops\n"},
		// The attempt's working folder is its HOME; the command runs there.
		{name: "working folder", argv: []string{"/bin/sh", "-c", `[ "$(pwd)" = "$HOME" ] && pwd`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr execBuffer
			started := false
			code, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, tt.argv, ExecIO{Stdout: &stdout, Stderr: &stderr, Started: func() { started = true }})
			if err != nil || code != tt.wantCode || !started {
				t.Fatalf("Exec = %d, %v, started %v; want %d, nil, started\nstderr: %s", code, err, started, tt.wantCode, stderr.String())
			}
			if tt.name == "working folder" {
				if dir := strings.TrimSpace(stdout.String()); filepath.Dir(dir) != pt.workDir {
					t.Errorf("working folder %q, want one in %s", dir, pt.workDir)
				}
				return
			}
			if stdout.String() != tt.wantStdout || stderr.String() != tt.wantErr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tt.wantStdout, tt.wantErr)
			}
		})
	}
	t.Run("not found", func(t *testing.T) {
		_, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, []string{"jobgate-no-such-command"}, ExecIO{})
		if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "jobgate-no-such-command") {
			t.Errorf("Exec = %v, want ErrStart naming the command", err)
		}
	})
	t.Run("stopped with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var stdout execBuffer
		go cancelWhen(t, cancel, func() bool { return strings.Contains(stdout.String(), "sleeping") })
		code, err := pt.exec.Exec(ctx, a.JobID, a.Number, []string{pt.toolbox, "sleep", "60"}, ExecIO{Stdout: &stdout})
		if err != nil || code != 143 {
			t.Errorf("Exec = %d, %v; want 143 (SIGTERM), nil", code, err)
		}
	})

	// An exec ends with the attempt, and the attempt waits for it.
	var stdout execBuffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, []string{pt.toolbox, "sleep", "60"}, ExecIO{Stdout: &stdout})
		done <- result{code, err}
	}()
	testenv.Eventually(t, 20*time.Second, func() bool { return strings.Contains(stdout.String(), "sleeping") }, "exec never started")
	if out, err := stop(); err != nil || out.ExitCode != 143 {
		t.Fatalf("Run = %+v, %v; want exit 143, nil", out, err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.code != 143 {
			t.Fatalf("Exec while the attempt ended = %d, %v; want 143, nil", r.code, r.err)
		}
	default:
		t.Fatal("Run returned while an exec beside it was still running")
	}
	if _, err := pt.exec.Exec(t.Context(), a.JobID, a.Number, []string{pt.toolbox, "echo"}, ExecIO{}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Exec after the attempt = %v, want ErrNotRunning", err)
	}
}
