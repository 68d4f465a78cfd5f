package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
)

var _ Execer = (*ProcessExecutor)(nil)

// procAttempt is what Exec needs of a running attempt: where it runs and
// with what environment. done is closed when the attempt's Run returns;
// execs wait on it to end with the attempt.
type procAttempt struct {
	dir  string
	env  map[string]string
	done chan struct{}
	// pid is the command's process (its group's leader) once it started;
	// guarded by ProcessExecutor.mu.
	pid int
	// execs counts the Execs running beside the attempt; Run waits for
	// them, so none outlives the working folder.
	execs sync.WaitGroup
}

func procKey(jobID string, number int) string { return jobID + "/" + strconv.Itoa(number) }

// track records a running attempt for Exec. The returned func forgets it,
// stops the commands Exec runs beside it and waits for them.
func (p *ProcessExecutor) track(jobID string, number int, dir string, env map[string]string) func() {
	a := &procAttempt{dir: dir, env: env, done: make(chan struct{})}
	key := procKey(jobID, number)
	p.mu.Lock()
	if p.attempts == nil {
		p.attempts = map[string]*procAttempt{}
	}
	p.attempts[key] = a
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.attempts, key)
		p.mu.Unlock()
		close(a.done)
		a.execs.Wait()
	}
}

// started records the started command's pid for workloadPID.
func (p *ProcessExecutor) started(jobID string, number, pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.attempts[procKey(jobID, number)]; a != nil {
		a.pid = pid
	}
}

// workloadPID is the host PID of attempt number of jobID's command, the
// leader of its process group; 0 when it has not started (or ended).
func (p *ProcessExecutor) workloadPID(_ context.Context, jobID string, number int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.attempts[procKey(jobID, number)]; a != nil {
		return a.pid, nil
	}
	return 0, nil
}

// Exec runs argv on the host beside attempt number of jobID: with the
// attempt's environment, in its working folder, in a process group of its
// own, found in the attempt's PATH. When ctx ends or the attempt does, the
// group gets SIGTERM, then SIGKILL after StopGrace. See Execer.
func (p *ProcessExecutor) Exec(ctx context.Context, jobID string, number int, argv []string, o ExecIO) (int, error) {
	if len(argv) == 0 {
		return 0, fmt.Errorf("%w: empty command", ErrStart)
	}
	p.mu.Lock()
	a := p.attempts[procKey(jobID, number)]
	if a != nil {
		a.execs.Add(1)
	}
	p.mu.Unlock()
	if a == nil {
		return 0, fmt.Errorf("%w: no process of attempt %d of job %s", ErrNotRunning, number, jobID)
	}
	defer a.execs.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-a.done:
			cancel(fmt.Errorf("attempt %d of job %s ended", number, jobID))
		case <-ctx.Done():
		}
	}()

	path, err := lookPath(argv[0], a.env["PATH"], a.dir)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrStart, err)
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Env: envList(a.env), Dir: a.dir, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	o.started()
	out, err := startWithOutput(cmd, o.Stdout, o.Stderr)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrStart, argv[0], err)
	}
	pgid := cmd.Process.Pid
	log := p.logger.With(slog.String("job_id", jobID), slog.Int("attempt", number), slog.Int("pgid", pgid))
	waitOrStop(ctx, log, pgid, p.cfg.StopGrace)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	if err := out.wait(cleanupTimeout); err != nil {
		log.WarnContext(ctx, "exec output may be incomplete", slog.Any("error", err))
	}
	if cmd.ProcessState == nil {
		return 0, fmt.Errorf("wait for exec process %d: %w", pgid, waitErr)
	}
	return exitCode(cmd.ProcessState), nil
}
