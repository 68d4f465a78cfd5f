package worker

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jobgate/jobgate/internal/artifact"
)

// createSpool makes the local file that collects the log of one attempt
// until it is stored at rest. The file stays locked (flock) while the
// attempt runs, so that sweepSpool can tell the files of live attempts from
// those of dead ones in a spool folder several workers share.
func (w *Worker) createSpool(jobID string, attempt int) (*os.File, error) {
	f, err := os.CreateTemp(w.cfg.SpoolDir, fmt.Sprintf("%s-%d-*.log", jobID, attempt))
	if err != nil {
		return nil, fmt.Errorf("spool log: %w", err)
	}
	// Blocking: a sweep that locked the new file first lets go at once.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("spool log: lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// sweepSpool removes the spool files that attempts of dead workers left (a
// worker killed mid-attempt removes nothing); their lines are in the live
// log stream, and the next attempt of their job stores them at rest
// (storeLostLogs). A file that is still locked belongs to a live attempt.
func (w *Worker) sweepSpool(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "*.log"))
	removed := 0
	for _, p := range files {
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if err := os.Remove(p); err != nil {
				w.logger.WarnContext(ctx, "remove spool file of a dead attempt", slog.String("path", p), slog.Any("error", err))
			} else {
				removed++
			}
		}
		f.Close()
	}
	if removed > 0 {
		w.logger.InfoContext(ctx, "removed spool files of dead attempts", slog.Int("files", removed))
	}
}

// lostLogTimeout bounds storing the logs of earlier attempts at rest.
const lostLogTimeout = 5 * time.Minute

// storeLostLogs stores at rest the log of each attempt of jobID before
// attempt that has none there: an attempt whose worker died (worker_lost)
// never stored its own. The lines come from the live log stream, with a note
// at the end saying so. A failure is logged, not returned: the gateway serves
// such an attempt's lines from the stream while it lasts.
func (w *Worker) storeLostLogs(ctx context.Context, jobID string, attempt int) {
	ctx, cancel := context.WithTimeout(ctx, lostLogTimeout)
	defer cancel()
	for a := 1; a < attempt; a++ {
		key := artifact.LogKey(jobID, a)
		if _, err := w.artifacts.Stat(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
			continue // stored, or the store cannot say: leave it as it is
		}
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			bw := bufio.NewWriterSize(pw, 64<<10)
			n, err := w.store.CopyLogs(ctx, bw, jobID, a)
			if err == nil {
				fmt.Fprintf(bw, "jobgate: attempt %d ended without its worker storing its log; these %d lines are what the live log stream held of it\n", a, n)
				err = bw.Flush()
			}
			pw.CloseWithError(err)
		}()
		err := w.artifacts.Put(ctx, key, pr)
		pr.CloseWithError(cmp.Or(err, io.ErrClosedPipe)) // a Put that stopped early stops the copy
		<-done
		if err != nil {
			w.logger.WarnContext(ctx, "store the log of a lost attempt", slog.String("job_id", jobID), slog.Int("attempt", a), slog.Any("error", err))
			continue
		}
		w.logger.InfoContext(ctx, "stored the log of a lost attempt from the live stream", slog.String("job_id", jobID), slog.Int("attempt", a))
	}
}
