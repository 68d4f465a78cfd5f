package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// Bounds on what node preparation output goes where: each line into the
// worker's log, the last few into the registry's problem.
const (
	nodePrepLineMax  = 4 << 10
	nodePrepTailKeep = 5
	nodePrepTailMax  = 1 << 10
)

// prepareNode runs Config.NodePrep, when set, with the worker registered as
// preparing (and heartbeating, as it does from its claim on). It returns true once the worker may take jobs.
// When node preparation fails the worker is marked out of service with the
// reason, keeps heartbeating so that people see why, and prepareNode returns
// false once ctx is done; it also returns false when ctx ends during the
// preparation. Either way the worker has left the registry by then.
func (w *Worker) prepareNode(ctx context.Context) (bool, error) {
	if w.cfg.NodePrep == "" {
		return true, nil
	}
	log := w.logger.With(slog.String("node_prep", w.cfg.NodePrep))
	log.InfoContext(ctx, "node preparation started", slog.Duration("timeout", w.cfg.NodePrepTimeout))
	started := w.now()
	problem := w.runNodePrep(ctx, log)
	if problem == "" {
		log.InfoContext(ctx, "node preparation finished", slog.Duration("took", w.now().Sub(started)))
		if err := w.store.SetWorkerStatus(ctx, w.cfg.ID, store.WorkerUp, ""); err != nil {
			return false, fmt.Errorf("leave preparing status: %w", err)
		}
		return true, nil
	}
	if ctx.Err() == nil {
		log.ErrorContext(ctx, "worker OUT OF SERVICE: node preparation failed; it takes no jobs until it is restarted with a working --node-prep",
			slog.String("problem", problem))
		if err := w.store.SetWorkerStatus(ctx, w.cfg.ID, store.WorkerOutOfService, problem); err != nil {
			log.ErrorContext(ctx, "record out-of-service status", slog.Any("error", err))
		}
		// The scheduler hands back what was placed here meanwhile.
		_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)
		<-ctx.Done()
	}
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.store.StopWorker(cleanup, w.cfg.ID); err != nil {
		w.logger.WarnContext(cleanup, "leave registry", slog.Any("error", err))
	}
	return false, nil
}

// runNodePrep runs the node preparation executable on the host, in its own
// process group, within NodePrepTimeout, and logs its output. It returns ""
// when it exited 0, else what went wrong with the last lines of its output.
func (w *Worker) runNodePrep(ctx context.Context, log *slog.Logger) string {
	path := w.cfg.NodePrep
	rctx, cancel := context.WithTimeout(ctx, w.cfg.NodePrepTimeout)
	defer cancel()
	out := &lineLog{log: log}
	cmd := exec.CommandContext(rctx, path)
	cmd.Env = append(os.Environ(), "JOBGATE_WORKER_ID="+w.cfg.ID)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On timeout or shutdown the whole group goes, children included;
	// WaitDelay bounds the wait for output a stray process still holds.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = DefaultStopGrace
	err := cmd.Run()
	out.flush()
	var what string
	switch {
	case err == nil:
		return ""
	case ctx.Err() != nil:
		what = "was stopped with the worker"
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		what = fmt.Sprintf("timed out after %s (--node-prep-timeout)", w.cfg.NodePrepTimeout)
	case cmd.ProcessState == nil:
		what = fmt.Sprintf("could not start: %v", err)
	default:
		what = fmt.Sprintf("failed: %v", err)
	}
	msg := fmt.Sprintf("node preparation %s %s", path, what)
	if tail := out.tail(); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// lineLog logs a process's output line by line and keeps its last lines.
type lineLog struct {
	log *slog.Logger
	// mu guards the fields below.
	mu      sync.Mutex
	partial []byte
	last    []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > nodePrepLineMax {
		l.line(l.partial)
		l.partial = nil
	}
	return len(p), nil
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(l.partial)
		l.partial = nil
	}
}

// line logs one line; mu is held.
func (l *lineLog) line(b []byte) {
	s := strings.TrimRight(string(b[:min(len(b), nodePrepLineMax)]), "\r")
	l.log.Info("node preparation output", slog.String("line", s))
	if strings.TrimSpace(s) == "" {
		return
	}
	l.last = append(l.last, s)
	if len(l.last) > nodePrepTailKeep {
		l.last = l.last[1:]
	}
}

// tail is the last lines of output, joined with " | ", at most
// nodePrepTailMax bytes (the newest kept).
func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := strings.Join(l.last, " | ")
	if len(t) > nodePrepTailMax {
		t = "…" + t[len(t)-nodePrepTailMax:]
	}
	return t
}
