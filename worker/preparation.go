package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// ContainerWorkDir is where a container finds its attempt's working folder
// (JOBGATE_WORKDIR); it is also the container's working directory.
const ContainerWorkDir = "/workdir"

// errPreparationFailed means the job's preparation exited non-zero; its
// command did not run.
var errPreparationFailed = errors.New("preparation failed")

// errInPreparation marks an error of the preparation, not of the command.
var errInPreparation = errors.New("preparation")

// runSteps runs the attempt's preparation, when the spec has one, then its
// command, both through exec with the same environment, mounts and working
// folder, their output going to the same writers. The command runs only
// after the preparation exited 0 with ctx still live. A preparation that
// exits non-zero wraps errPreparationFailed; one that could not run wraps the
// executor's error (ErrStart, ErrImageNotFound, ...).
func runSteps(ctx context.Context, exec Executor, a Attempt, stdout, stderr io.Writer) (Outcome, error) {
	if len(a.Spec.Preparation) == 0 {
		return exec.Run(ctx, a, stdout, stderr)
	}
	prep := a
	prep.Step = StepPreparation
	res, err := exec.Run(ctx, prep, stdout, stderr)
	switch {
	case err != nil:
		return Outcome{}, fmt.Errorf("%w: %w", errInPreparation, err)
	case ctx.Err() != nil:
		// Canceled, preempted, timed out or shut down meanwhile; the cause
		// says which, and the caller records it as it would for the command.
		return Outcome{}, fmt.Errorf("preparation stopped (exited with %d): %w", res.ExitCode, context.Cause(ctx))
	case res.ExitCode != 0:
		return Outcome{}, fmt.Errorf("%w: exited with %d", errPreparationFailed, res.ExitCode)
	}
	// Where the preparation's output ends and the command's begins.
	fmt.Fprintln(stderr, "jobgate: preparation finished (exited with 0)")
	return exec.Run(ctx, a, stdout, stderr)
}

// giveWorkDir makes the attempt's empty working folder,
// <spool>/work/<job>-<attempt>, and gives it to the workload as
// JOBGATE_WORKDIR and its working directory: bound at ContainerWorkDir in a
// container, the host folder for a process. remove deletes it.
func (w *Worker) giveWorkDir(a *Attempt) (remove func(context.Context), err error) {
	dir, err := w.attemptDir("work", a.JobID, a.Number, 0o777)
	if err != nil {
		return nil, err
	}
	giveFolder(a, "JOBGATE_WORKDIR", dir, ContainerWorkDir)
	a.WorkDir = a.Env["JOBGATE_WORKDIR"]
	return func(ctx context.Context) {
		if err := os.RemoveAll(dir); err != nil {
			w.logger.WarnContext(ctx, "remove working folder", slog.String("job_id", a.JobID), slog.Any("error", err))
		}
	}, nil
}

// removeWorkDirs removes the working folders an earlier life of this worker
// left for jobID.
func (w *Worker) removeWorkDirs(ctx context.Context, jobID string) {
	dirs, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "work", jobID+"-*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			w.logger.WarnContext(ctx, "remove working folder", slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}
