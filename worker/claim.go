package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jobgate/jobgate/internal/store"
)

// Two live processes must not share a worker ID: each would take the other's
// attempts for an earlier life's, requeue them and reap their containers. So
// a worker claims its ID in the registry at start (store.ClaimWorker) and
// heartbeats under its instance; the claim is refused while another instance
// holds the ID and is alive. Alive is decided, in this order:
//
//   - the registration is stopped, or has not heartbeated for LostAfter
//     (the scheduler calls it lost then too): not alive;
//   - it was made by a process on this machine (same boot, same PID
//     namespace, see procID): alive exactly while that process exists;
//   - otherwise it is watched: it is alive once it heartbeats again, and is
//     taken over when it stays silent past LostAfter.
//
// So a worker restarted after a clean stop, or after SIGKILL on the same
// machine, starts at once; one restarted on another machine (a moved
// container) after SIGKILL waits at most LostAfter; and a second live
// process under the same ID is refused within a heartbeat or two.

// errIDInUse is what Run's error is (errors.Is) when another live process
// holds the ID.
var errIDInUse = errors.New("worker ID in use")

// idInUseError is errIDInUse with words a person can act on.
type idInUseError string

func (e idInUseError) Error() string        { return string(e) }
func (e idInUseError) Is(target error) bool { return target == errIDInUse }

func idInUse(format string, args ...any) error { return idInUseError(fmt.Sprintf(format, args...)) }

// claim registers reg under this process's instance; see above.
func (w *Worker) claim(ctx context.Context, reg store.Worker) error {
	reg.Instance, reg.Proc = w.instance, procID()
	var watched *store.Holder
	var watchedAt time.Time
	replace := ""
	for {
		h, err := w.store.ClaimWorker(ctx, reg, w.cfg.LostAfter, replace)
		if !errors.Is(err, store.ErrWorkerIDInUse) {
			if err == nil && replace != "" {
				w.logger.InfoContext(ctx, "took over the worker ID from a process of it that is gone", slog.String("instance", replace))
			}
			return err
		}
		known, alive := procState(h.Proc)
		switch {
		case known && !alive:
			replace = h.Instance // its process is gone: take over now
			continue
		case known && alive,
			watched != nil && watched.Instance == h.Instance && h.SilentFor < watched.SilentFor+time.Since(watchedAt)-250*time.Millisecond:
			// It exists on this machine, or it heartbeated while we watched.
			return idInUse("worker ID %s is in use by a live worker on host %s (started %s, last heartbeat %s ago); give this one another --id",
				reg.ID, cmp.Or(h.Hostname, "?"), h.StartedAt.Format(time.RFC3339), h.SilentFor.Round(100*time.Millisecond))
		case watched == nil || watched.Instance != h.Instance:
			watched, watchedAt = h, time.Now()
			w.logger.WarnContext(ctx, "worker ID is registered by another process that may still run; waiting for it to heartbeat or fall silent",
				slog.String("hostname", h.Hostname), slog.Duration("silent_for", h.SilentFor), slog.Duration("lost_after", w.cfg.LostAfter))
		}
		t := time.NewTimer(w.cfg.HeartbeatInterval / 2)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// procID describes this process so that a later process on the same
// machine can tell whether it still runs: boot ID, PID namespace, PID and
// start time (Linux /proc); "" where that cannot be read.
func procID() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	pid := os.Getpid()
	start := procStart(pid)
	if start == "" {
		return ""
	}
	return strings.Join([]string{strings.TrimSpace(string(boot)), ns, strconv.Itoa(pid), start}, " ")
}

// procStart is the start time of process pid (field 22 of /proc/PID/stat,
// in clock ticks since boot), or "" when there is no such process.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// procState says of a process procID described whether this process can
// tell if it runs (the same machine and PID namespace, and not this very
// process: another Worker in it may have ended without a word), and if so
// whether it does.
func procState(proc string) (known, alive bool) {
	f := strings.Split(proc, " ")
	mine := strings.Split(procID(), " ")
	if len(f) != 4 || len(mine) != 4 || f[0] != mine[0] || f[1] != mine[1] || f[2] == mine[2] {
		return false, false
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil || pid <= 0 {
		return false, false
	}
	return true, procStart(pid) == f[3]
}
