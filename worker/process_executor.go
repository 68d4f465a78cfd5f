package worker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultPath is the PATH a process-mode workload starts with, before the
// attempt's own environment is laid over it.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ProcessConfig configures a ProcessExecutor. The zero value works.
type ProcessConfig struct {
	// StopGrace is how long a stopped workload gets between SIGTERM and
	// SIGKILL. Default DefaultStopGrace.
	StopGrace time.Duration
	// WorkDir is the folder under which each attempt that brings no working
	// directory of its own (Attempt.WorkDir) gets a fresh one (also its
	// HOME), removed when the attempt ends. Default os.TempDir().
	WorkDir string
}

// ProcessExecutor runs each attempt as a host process (Batch AI's "VM
// mode"): the spec's command (or preparation), without a shell, in its own
// process group, in the attempt's working directory or else a fresh one. The
// image is ignored. It is safe for concurrent
// use.
type ProcessExecutor struct {
	cfg    ProcessConfig
	logger *slog.Logger

	// mu guards the field below.
	mu sync.Mutex
	// attempts are the running attempts Exec may run beside, by procKey.
	attempts map[string]*procAttempt
}

var _ Executor = (*ProcessExecutor)(nil)

// NewProcessExecutor returns a ProcessExecutor; a nil logger discards.
func NewProcessExecutor(cfg ProcessConfig, logger *slog.Logger) *ProcessExecutor {
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	cfg.WorkDir = cmp.Or(cfg.WorkDir, os.TempDir())
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ProcessExecutor{cfg: cfg, logger: logger.With(slog.String("executor", "process"))}
}

// Name returns "process".
func (p *ProcessExecutor) Name() string { return "process" }

// workDirPrefix starts the name of every working directory of jobID, so that
// Cleanup finds those a crashed worker left.
func workDirPrefix(jobID string) string { return "jobgate-" + jobID + "-" }

// Run runs the attempt's command and waits for it, and for its output. A
// command that cannot be found or executed wraps ErrStart. When ctx is done
// the whole process group gets SIGTERM, then SIGKILL after the attempt's
// StopGrace (or else the executor's); a workload killed by a signal reports
// 128+signal. Whatever is left of the
// process group when the command exits is killed.
func (p *ProcessExecutor) Run(ctx context.Context, a Attempt, stdout, stderr io.Writer) (Outcome, error) {
	log := p.logger.With(slog.String("job_id", a.JobID), slog.Int("attempt", a.Number))
	argv := a.Argv()
	if len(argv) == 0 {
		return Outcome{}, fmt.Errorf("%w: empty command", ErrStart)
	}
	if strings.ContainsRune(a.JobID, os.PathSeparator) {
		return Outcome{}, fmt.Errorf("%w: job id %q holds a path separator", ErrStart, a.JobID)
	}
	// The attempt's own folder belongs to the worker, which shares it
	// between the preparation and the command and removes it afterwards.
	dir := a.WorkDir
	if dir == "" {
		var err error
		if dir, err = p.tempWorkDir(a); err != nil {
			return Outcome{}, err
		}
		defer func() {
			if err := os.RemoveAll(dir); err != nil {
				log.WarnContext(ctx, "remove working directory", slog.String("dir", dir), slog.Any("error", err))
			}
		}()
	}

	env := map[string]string{"PATH": defaultPath, "HOME": dir, "JOBGATE_JOB_ID": a.JobID}
	maps.Copy(env, a.Env)
	if a.Step == StepCommand {
		// Exec runs beside the command, as it does in a container.
		defer p.track(a.JobID, a.Number, dir, env)()
	}
	path, err := lookPath(argv[0], env["PATH"], dir)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %v", ErrStart, err)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Env:         envList(env),
		Dir:         dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	out, err := startWithOutput(cmd, stdout, stderr)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %s: %v", ErrStart, argv[0], err)
	}
	pgid := cmd.Process.Pid // Setpgid: the group is named after its leader.
	log.DebugContext(ctx, "process started", slog.Int("pid", pgid))
	if a.Step == StepCommand {
		p.started(a.JobID, a.Number, pgid)
	}

	waitOrStop(ctx, log, pgid, cmp.Or(a.StopGrace, p.cfg.StopGrace))
	// The leader is gone; what it started must not outlive the attempt, and
	// the pipes close only once nothing holds them.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitErr := cmd.Wait() // Reaps the leader.
	if err := out.wait(cleanupTimeout); err != nil {
		log.WarnContext(ctx, "process output may be incomplete", slog.Any("error", err))
	}
	if cmd.ProcessState == nil {
		return Outcome{}, fmt.Errorf("wait for process %d: %w", pgid, waitErr)
	}
	return Outcome{ExitCode: exitCode(cmd.ProcessState)}, nil
}

// tempWorkDir makes a fresh working directory for an attempt that brings
// none.
func (p *ProcessExecutor) tempWorkDir(a Attempt) (string, error) {
	// The base may not exist yet on a fresh data dir.
	if err := os.MkdirAll(p.cfg.WorkDir, 0o700); err != nil {
		return "", fmt.Errorf("make working directory base: %w", err)
	}
	dir, err := os.MkdirTemp(p.cfg.WorkDir, workDirPrefix(a.JobID)+strconv.Itoa(a.Number)+"-")
	if err != nil {
		return "", fmt.Errorf("make working directory: %w", err)
	}
	return dir, nil
}

// exitCode is the process's exit status, or 128+signal when a signal ended it.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// waitOrStop waits until the leader of process group pgid exits; when ctx
// ends first it stops the group: SIGTERM, then SIGKILL after grace. It
// learns of the exit without reaping the leader: while it is a zombie its
// pid, the group's ID, cannot be reused, so the caller may still kill the
// group without hitting a stranger (and must then reap it, with cmd.Wait).
func waitOrStop(ctx context.Context, log *slog.Logger, pgid int, grace time.Duration) {
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
	}()
	select {
	case <-exited:
	case <-ctx.Done():
		grace = fencedGrace(ctx, grace)
		log.InfoContext(ctx, "stopping process group", slog.Int("pgid", pgid),
			slog.Duration("grace", grace), slog.Any("cause", context.Cause(ctx)))
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-exited:
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}
}

// lookPath finds name as the workload would: in its own PATH, not the
// worker's; a name with a slash is taken as is, relative to dir.
func lookPath(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return name, executable(name)
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // Never the working directory by accident.
		}
		if p := filepath.Join(d, name); executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in PATH %s", name, path)
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", path, fs.ErrPermission)
	}
	return nil
}

func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	return list
}

// output copies a process's stdout and stderr pipes to their writers.
//
// The pipes are made here rather than by os/exec so that Run can kill the
// rest of the process group after the leader exits and before waiting for
// the copies: exec.Cmd.Wait would wait for them first, for as long as a
// leftover child holds a pipe open.
type output struct {
	wg    sync.WaitGroup
	pipes []*os.File
	// mu guards the fields below.
	mu  sync.Mutex
	err error
}

// startWithOutput starts cmd with its output copied to stdout and stderr. One
// pipe serves both when they are the same writer, which keeps the order
// between them.
func startWithOutput(cmd *exec.Cmd, stdout, stderr io.Writer) (*output, error) {
	o := &output{}
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close() // The child has its own copies.
		}
	}()
	pipe := func(w io.Writer) (*os.File, error) {
		r, wr, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		o.pipes = append(o.pipes, r)
		childEnds = append(childEnds, wr)
		o.wg.Go(func() { o.copy(w, r) })
		return wr, nil
	}
	var err error
	if cmd.Stdout, err = pipe(stdout); err != nil {
		o.abort()
		return nil, err
	}
	if sameWriter(stdout, stderr) {
		cmd.Stderr = cmd.Stdout
	} else if cmd.Stderr, err = pipe(stderr); err != nil {
		o.abort()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		o.abort()
		return nil, err
	}
	return o, nil
}

func (o *output) copy(w io.Writer, r *os.File) {
	if w == nil {
		w = io.Discard
	}
	_, err := io.Copy(w, r)
	if err != nil && !errors.Is(err, os.ErrClosed) {
		o.mu.Lock()
		o.err = cmp.Or(o.err, err)
		o.mu.Unlock()
	}
	// Whatever the writer did, keep the pipe drained so the workload never
	// blocks on a full one.
	_, _ = io.Copy(io.Discard, r)
}

// wait waits up to timeout for both copies to reach the end of their pipes,
// then closes the pipes (a process that left the group may still hold them).
func (o *output) wait(timeout time.Duration) error {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-done:
	case <-t.C:
		err = fmt.Errorf("output pipes still open %s after the process group was killed", timeout)
	}
	o.abort()
	<-done
	o.mu.Lock()
	defer o.mu.Unlock()
	return cmp.Or(err, o.err)
}

func (o *output) abort() {
	for _, f := range o.pipes {
		f.Close()
	}
}

// sameWriter reports whether a and b are the same writer; writers of
// uncomparable types are never the same.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// Cleanup kills the process groups of jobID that a crashed worker left
// running (found by JOBGATE_JOB_ID in their environment) and removes their
// working directories.
func (p *ProcessExecutor) Cleanup(ctx context.Context, jobID string) error {
	var errs []error
	for _, pgid := range leftoverGroups(jobID) {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill process group %d: %w", pgid, err))
			continue
		}
		p.logger.InfoContext(ctx, "killed leftover process group", slog.String("job_id", jobID), slog.Int("pgid", pgid))
	}
	dirs, err := filepath.Glob(filepath.Join(p.cfg.WorkDir, workDirPrefix(jobID)+"*"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove working directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// leftoverGroups returns the process groups, other than this process's own,
// of processes whose environment says they belong to jobID.
func leftoverGroups(jobID string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	self := syscall.Getpgrp()
	want := []byte("JOBGATE_JOB_ID=" + jobID)
	var groups []int
	for _, f := range procs {
		env, err := os.ReadFile(f)
		if err != nil {
			continue // Gone meanwhile, or not ours to read.
		}
		if !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		pgid, err := syscall.Getpgid(pid)
		if err != nil || pgid == self || pgid <= 1 || slices.Contains(groups, pgid) {
			continue
		}
		groups = append(groups, pgid)
	}
	return groups
}
