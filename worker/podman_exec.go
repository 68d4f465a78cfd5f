package worker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/containers/podman/v4/pkg/api/handlers"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/errorhandling"
	"golang.org/x/sys/unix"
)

var _ Execer = (*PodmanExecutor)(nil)

// Exec runs argv in the container of attempt number of jobID, as `podman
// exec` does: with the container's environment (JOBGATE_* included), user and
// working folder. See Execer.
//
// The podman API has no call that stops an exec session, so when ctx ends
// first Exec signals the session's process itself: SIGTERM, then SIGKILL
// after StopGrace. That works where the worker sees the podman service's
// processes (same machine and pid namespace, as root); elsewhere Exec stops
// waiting, says so in its error, and the command runs on until it or the
// container ends. Only the process Exec started is signalled, not children
// it left behind.
func (p *PodmanExecutor) Exec(ctx context.Context, jobID string, number int, argv []string, o ExecIO) (int, error) {
	if len(argv) == 0 {
		return 0, fmt.Errorf("%w: empty command", ErrStart)
	}
	name := ContainerName(jobID, number)
	log := p.logger.With(slog.String("job_id", jobID), slog.Int("attempt", number), slog.String("container", name))
	cfg := &handlers.ExecCreateConfig{}
	cfg.AttachStdout, cfg.AttachStderr, cfg.Cmd = true, true, argv
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	session, err := containers.ExecCreate(p.bind(cctx), name, cfg)
	cancel()
	if err != nil {
		return 0, p.execCreateError(ctx, name, err)
	}

	// A connection of its own, for the reasons attach gives: the bindings
	// swap its transport and read a socket only closing interrupts.
	conn, err := connect(ctx, p.cfg.URL)
	if err != nil {
		return 0, err
	}
	conns := &connSet{}
	if err := conns.install(conn); err != nil {
		return 0, err
	}
	out, errOut := &streamWriter{w: o.Stdout}, &streamWriter{w: o.Stderr}
	opts := new(containers.ExecStartAndAttachOptions).WithOutputStream(out).WithErrorStream(errOut).
		WithAttachOutput(true).WithAttachError(true)
	actx := boundContext{Context: context.WithoutCancel(ctx), conn: conn}
	// A command that is not in the image fails later, as runc does: exit
	// code 127 and its message on stderr.
	o.started()
	done, attached := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(attached)
		done <- containers.ExecStartAndAttach(actx, session, opts)
	}()
	// Nothing is written to o's writers after Exec returns.
	defer func() { conns.closeAll(); <-attached }()

	select {
	case err = <-done:
	case <-ctx.Done():
		log.InfoContext(ctx, "stopping exec", slog.String("exec_id", session), slog.Any("cause", context.Cause(ctx)))
		var stopErr error
		if err, stopErr = p.stopExec(ctx, jobID, session, done); stopErr != nil {
			return 0, stopErr
		}
	}
	var apiErr *errorhandling.ErrorModel
	if errors.As(err, &apiErr) && apiErr.ResponseCode == http.StatusConflict {
		return 0, fmt.Errorf("%w: container %s stopped: %v", ErrNotRunning, name, err)
	}
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", name, err)
	}
	code, err := p.execExitCode(ctx, session)
	return code, cmp.Or(err, out.err, errOut.err)
}

// execCreateError says why no exec session could be made: ErrNotRunning
// when the container is gone or no longer running, else podman's error.
func (p *PodmanExecutor) execCreateError(ctx context.Context, name string, err error) error {
	var apiErr *errorhandling.ErrorModel
	if errors.As(err, &apiErr) && apiErr.ResponseCode == http.StatusNotFound {
		return fmt.Errorf("%w: no container %s", ErrNotRunning, name)
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// A stopped container answers with a 500, like every other failure;
	// its state tells them apart.
	data, ierr := containers.Inspect(p.bind(ictx), name, nil)
	if ierr == nil && (data.State == nil || !data.State.Running) {
		return fmt.Errorf("%w: container %s is not running", ErrNotRunning, name)
	}
	return fmt.Errorf("create exec session in %s: %w", name, err)
}

// stopExec signals the exec session's process and waits for its stream to
// end; the first result is the stream's, the second why stopping failed.
func (p *PodmanExecutor) stopExec(ctx context.Context, jobID, session string, done <-chan error) (error, error) {
	for i, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := p.signalExec(ctx, jobID, session, sig); err != nil {
			// Wait no longer: the stream would last as long as the command.
			return nil, fmt.Errorf("stop exec session %s: %w", session, err)
		}
		wait := p.cfg.StopGrace
		if i == 1 {
			wait = cleanupTimeout
		}
		t := time.NewTimer(wait)
		select {
		case err := <-done:
			t.Stop()
			return err, nil
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("exec session %s still running %s after SIGKILL", session, cleanupTimeout)
}

// signalExec sends sig to the exec session's process. The service reports
// the pid as it sees it; a pidfd pins the process, and its environment must
// name jobID, so a pid of another namespace, or one reused meanwhile, is
// never signalled.
func (p *PodmanExecutor) signalExec(ctx context.Context, jobID, session string, sig unix.Signal) error {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	insp, err := containers.ExecInspect(p.bind(ictx), session, nil)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if !insp.Running || insp.Pid <= 0 {
		return nil // It ended meanwhile; the stream is ending too.
	}
	fd, err := unix.PidfdOpen(insp.Pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open process %d: %w", insp.Pid, err)
	}
	defer unix.Close(fd)
	env, err := os.ReadFile("/proc/" + strconv.Itoa(insp.Pid) + "/environ")
	if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00JOBGATE_JOB_ID="+jobID+"\x00")) {
		return fmt.Errorf("process %d is not visible from this worker (is the podman service on another machine or in another pid namespace?)", insp.Pid)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal process %d: %w", insp.Pid, err)
	}
	return nil
}

// execExitCode is the exit status of an ended exec session. The stream may
// end a moment before the service records the exit, so it looks again for
// a short while.
func (p *PodmanExecutor) execExitCode(ctx context.Context, session string) (int, error) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for {
		insp, err := containers.ExecInspect(p.bind(ictx), session, nil)
		if err != nil {
			return 0, fmt.Errorf("inspect exec session %s: %w", session, err)
		}
		if !insp.Running {
			return insp.ExitCode, nil
		}
		select {
		case <-ictx.Done():
			return 0, fmt.Errorf("exec session %s still running after its output ended", session)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
