package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// fakeExecutor is an Executor whose Run is RunFunc.
type fakeExecutor struct {
	RunFunc func(ctx context.Context, a Attempt, stdout, stderr io.Writer) (Outcome, error)
}

func (f fakeExecutor) Run(ctx context.Context, a Attempt, stdout, stderr io.Writer) (Outcome, error) {
	return f.RunFunc(ctx, a, stdout, stderr)
}
func (fakeExecutor) Cleanup(context.Context, string) error { return nil }
func (fakeExecutor) Name() string                          { return "fake" }

var _ Executor = fakeExecutor{}

func TestRunSteps(t *testing.T) {
	t.Parallel()
	type result struct {
		code int
		err  error
	}
	tests := []struct {
		name     string
		prep     []string
		prepRes  result
		stopPrep bool // the attempt's context ends while the preparation runs
		wantRuns []string
		wantErr  error // errors.Is; nil wants none
		wantMsg  string
		wantLog  string
		wantCode int
	}{
		{name: "no preparation", wantRuns: []string{"command"}, wantCode: 7},
		{name: "preparation then command", prep: []string{"prep"}, wantRuns: []string{"preparation", "command"},
			wantLog: "jobgate: preparation finished (exited with 0)\n", wantCode: 7},
		{name: "failed preparation", prep: []string{"prep"}, prepRes: result{code: 3}, wantRuns: []string{"preparation"},
			wantErr: errPreparationFailed, wantMsg: "preparation failed: exited with 3"},
		{name: "preparation cannot start", prep: []string{"prep"}, prepRes: result{err: fmt.Errorf("%w: no such file", ErrStart)},
			wantRuns: []string{"preparation"}, wantErr: ErrStart, wantMsg: "preparation: start failed: no such file"},
		{name: "stopped during preparation", prep: []string{"prep"}, prepRes: result{code: 143}, stopPrep: true,
			wantRuns: []string{"preparation"}, wantErr: errCancelRequested, wantMsg: "preparation stopped (exited with 143): cancel requested"},
		{name: "stopped preparation that exited 0", prep: []string{"prep"}, stopPrep: true,
			wantRuns: []string{"preparation"}, wantErr: errCancelRequested},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			var runs []string
			exec := fakeExecutor{RunFunc: func(ctx context.Context, a Attempt, stdout, stderr io.Writer) (Outcome, error) {
				if a.Step == StepPreparation {
					runs = append(runs, "preparation")
					if got := a.Argv(); !cmp.Equal(got, tt.prep) {
						t.Errorf("preparation argv = %q, want %q", got, tt.prep)
					}
					if tt.stopPrep {
						cancel(errCancelRequested)
					}
					return Outcome{ExitCode: tt.prepRes.code}, tt.prepRes.err
				}
				runs = append(runs, "command")
				if got := a.Argv(); !cmp.Equal(got, []string{"cmd"}) {
					t.Errorf("command argv = %q", got)
				}
				return Outcome{ExitCode: 7}, nil
			}}
			a := Attempt{JobID: "j", Number: 1, Spec: api.JobSpec{Command: []string{"cmd"}, Preparation: tt.prep}}
			var stderr strings.Builder
			out, err := runSteps(ctx, exec, a, io.Discard, &stderr)
			if diff := cmp.Diff(tt.wantRuns, runs); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want one wrapping %v", err, tt.wantErr)
			case tt.wantMsg != "" && err.Error() != tt.wantMsg:
				t.Errorf("err = %q, want %q", err, tt.wantMsg)
			}
			if err == nil && out.ExitCode != tt.wantCode {
				t.Errorf("exit code = %d, want %d", out.ExitCode, tt.wantCode)
			}
			if stderr.String() != tt.wantLog {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantLog)
			}
		})
	}
}

// The process executor runs in the working folder the attempt brings, and
// leaves it for the worker to remove.
func TestProcessExecutorAttemptWorkDir(t *testing.T) {
	t.Parallel()
	pt := newProcessTest(t)
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	a := pt.attempt(t, nil, "write", "prepared.txt", "ready")
	a.WorkDir, a.Step, a.Spec.Preparation = dir, StepPreparation, a.Spec.Command
	a.Spec.Command = []string{pt.toolbox, "pwd"}
	var stdout execBuffer
	if out, err := pt.exec.Run(t.Context(), a, &stdout, &stdout); err != nil || out.ExitCode != 0 {
		t.Fatalf("preparation: %+v, %v: %s", out, err, stdout.String())
	}
	a.Step = StepCommand
	if out, err := pt.exec.Run(t.Context(), a, &stdout, &stdout); err != nil || out.ExitCode != 0 {
		t.Fatalf("command: %+v, %v", out, err)
	}
	if got := stdout.String(); got != dir+"\n" {
		t.Errorf("pwd = %q, want %q", got, dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "prepared.txt")); err != nil || strings.TrimSpace(string(b)) != "ready" {
		t.Errorf("prepared.txt = %q, %v; want ready", b, err)
	}
	if left, _ := os.ReadDir(pt.workDir); len(left) != 0 {
		t.Errorf("the executor made working directories of its own: %v", left)
	}
}

// A preparation's container has a name of its own and the job's label, so
// a kept one is found by Cleanup; the working directory is the one given.
func TestPodmanExecutorPreparationContainer(t *testing.T) {
	t.Parallel()
	pt := newPodmanTest(t, func(c *PodmanConfig) { c.KeepFailed = true })
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}
	a := pt.attempt(t, nil, "pwd")
	t.Cleanup(func() { _ = pt.exec.Cleanup(context.Background(), a.JobID) })
	a.Mounts = []Mount{{Source: host, Target: ContainerWorkDir}}
	a.WorkDir = ContainerWorkDir
	a.Spec.Preparation = []string{"/bin/toolbox", "write", "prepared.txt", "ready"}

	prep := a
	prep.Step = StepPreparation
	out, _, stderr, err := pt.run(t, t.Context(), prep)
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("preparation: %+v, %v: %s", out, err, stderr)
	}
	pt.wantNoContainer(t, PreparationContainerName(a.JobID, a.Number))
	if b, err := os.ReadFile(filepath.Join(host, "prepared.txt")); err != nil || strings.TrimSpace(string(b)) != "ready" {
		t.Errorf("prepared.txt = %q, %v; want ready (written relative to the working directory)", b, err)
	}
	out, stdout, _, err := pt.run(t, t.Context(), a)
	if err != nil || out.ExitCode != 0 || stdout != ContainerWorkDir+"\n" {
		t.Fatalf("command: %+v, %v, pwd %q; want %s", out, err, stdout, ContainerWorkDir)
	}

	// A failed preparation is kept under its own name, and Cleanup finds it.
	prep.Spec.Preparation = []string{"/bin/toolbox", "exit", "4"}
	if out, err := pt.exec.Run(t.Context(), prep, nil, nil); err != nil || out.ExitCode != 4 {
		t.Fatalf("failing preparation: %+v, %v; want exit 4", out, err)
	}
	name := PreparationContainerName(a.JobID, a.Number)
	info, err := containers.Inspect(pt.conn, name, nil)
	if err != nil {
		t.Fatalf("failed preparation container %s not kept: %v", name, err)
	}
	if got := info.Config.Labels[LabelStep]; got != string(StepPreparation) {
		t.Errorf("label %s = %q, want %q", LabelStep, got, StepPreparation)
	}
	if name == ContainerName(a.JobID, a.Number) {
		t.Fatalf("preparation and command share the name %s", name)
	}
	if err := pt.exec.Cleanup(t.Context(), a.JobID); err != nil {
		t.Fatal(err)
	}
	pt.wantNoContainer(t, name)
}
