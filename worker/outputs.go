package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/jobgate/jobgate/internal/artifact"
)

// errOutputsTooLarge means an attempt left more in its outputs folder than
// Config.MaxOutputBytes allows; the job fails without a retry.
var errOutputsTooLarge = errors.New("outputs too large")

// outputsDir makes the empty outputs folder of one attempt,
// <spool>/outputs/<job>-<attempt>, writable by whichever user the job runs as.
func (w *Worker) outputsDir(jobID string, attempt int) (string, error) {
	return w.attemptDir("outputs", jobID, attempt, 0o777)
}

// attemptDir makes an empty folder of one attempt, <spool>/<kind>/<job>-
// <attempt>, with mode perm (past the umask: 0o777 when the job, which may
// run as any user, writes there).
func (w *Worker) attemptDir(kind, jobID string, attempt int, perm os.FileMode) (string, error) {
	parent := filepath.Join(w.cfg.SpoolDir, kind)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("%s folder: %w", kind, err)
	}
	dir := filepath.Join(parent, jobID+"-"+strconv.Itoa(attempt))
	// A worker that died mid-attempt may have left one behind.
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("%s folder: %w", kind, err)
	}
	if err := os.Mkdir(dir, perm); err != nil {
		return "", fmt.Errorf("%s folder: %w", kind, err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return "", fmt.Errorf("%s folder: %w", kind, err)
	}
	return dir, nil
}

// removeOutputsDirs removes the outputs folders an earlier life of this
// worker left for jobID.
func (w *Worker) removeOutputsDirs(ctx context.Context, jobID string) {
	dirs, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "outputs", jobID+"-*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			w.logger.WarnContext(ctx, "remove outputs folder", slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}

// collectOutputs stores the regular files below dir under
// artifact.OutputPrefix(jobID), each at its slash-separated path relative to
// dir; a file an earlier attempt stored at the same path is replaced. Symbolic
// links, devices and sockets are skipped and never followed, so nothing
// outside dir is read. When the files add up to more than MaxOutputBytes
// nothing is stored and the error wraps errOutputsTooLarge. Files that cannot
// be read, or whose names the artifact store cannot hold (a backslash in
// one), are skipped with a line in the job's log (note); an error of the
// store is returned.
func (w *Worker) collectOutputs(ctx context.Context, jobID, dir string, note io.Writer) error {
	type file struct {
		path, rel string
		size      int64
	}
	var files []file
	var total int64
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return nil // the job removed its outputs folder: no outputs
			}
			fmt.Fprintf(note, "jobgate: outputs: skipped %s: %v\n", p, err)
			if e != nil && e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil // folders are walked; links and special files skipped
		}
		fi, err := e.Info()
		if err != nil {
			fmt.Fprintf(note, "jobgate: outputs: skipped %s: %v\n", p, err)
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := artifact.CheckKey(artifact.OutputPrefix(jobID) + rel); err != nil {
			// A name the artifact store cannot hold (a backslash in it):
			// the job's fault at most, not a reason to fail it.
			fmt.Fprintf(note, "jobgate: outputs: skipped %q: the artifact store cannot name it\n", rel)
			return nil
		}
		files = append(files, file{path: p, rel: rel, size: fi.Size()})
		total += fi.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("collect outputs: %w", err)
	}
	if total > w.cfg.MaxOutputBytes {
		return fmt.Errorf("%w: %d files with %d bytes in JOBGATE_OUTPUTS exceed the worker's cap of %d bytes (--max-output-mb); none were collected",
			errOutputsTooLarge, len(files), total, w.cfg.MaxOutputBytes)
	}
	stored := 0
	for _, f := range files {
		// O_NOFOLLOW: the workload has ended, but a file must not turn into
		// a link between the walk and here.
		r, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			fmt.Fprintf(note, "jobgate: outputs: skipped %s: %v\n", f.rel, err)
			continue
		}
		// At most the size the cap was checked against.
		err = w.artifacts.Put(ctx, artifact.OutputPrefix(jobID)+f.rel, io.LimitReader(r, f.size))
		r.Close()
		if err != nil {
			return fmt.Errorf("collect output %s: %w", f.rel, err)
		}
		stored++
	}
	if stored > 0 {
		fmt.Fprintf(note, "jobgate: collected %d output files (%d bytes)\n", stored, total)
	}
	return nil
}
