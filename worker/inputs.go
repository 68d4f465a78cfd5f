package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Where a container finds its data: input NAME at /inputs/NAME, cluster
// mount NAME (worker --mount) at /mounts/NAME.
const (
	inputsTarget = "/inputs"
	mountsTarget = "/mounts"
)

// errInputUnavailable means an input could not be given to the job: its
// datastore was deleted, the data is missing on this worker or leads out of
// its datastore, or it could not be copied. The job fails without a retry.
var errInputUnavailable = errors.New("input unavailable")

// mountNameRE is the rule for cluster mount names, the same as for input
// names: each becomes part of an environment variable's name.
var mountNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// validateMounts checks the cluster-level mounts: names, and folders that
// exist on this machine.
func (c Config) validateMounts() error {
	for _, name := range slices.Sorted(maps.Keys(c.Mounts)) {
		p := c.Mounts[name]
		if !mountNameRE.MatchString(name) {
			return fmt.Errorf("worker: --mount %s=%s: the name must be 1-63 lower-case letters, digits or '_', starting with a letter", name, p)
		}
		if !filepath.IsAbs(p) {
			return fmt.Errorf("worker: --mount %s=%s: the path must be absolute", name, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("worker: --mount %s=%s: %w (the folder must exist on this machine)", name, p, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("worker: --mount %s=%s: not a folder", name, p)
		}
	}
	return nil
}

// mountNames are the names of the cluster-level mounts, sorted.
func (w *Worker) mountNames() []string { return slices.Sorted(maps.Keys(w.cfg.Mounts)) }

// giveInputs gives attempt a the worker's cluster-level mounts and the job's
// inputs, and returns what removes the attempt's copies (never nil).
//
// A container gets each mount read-only at /mounts/NAME, each ro_mount input
// read-only at /inputs/NAME, and each download input, copied into a folder of
// the attempt's own, writable at /inputs/NAME; JOBGATE_INPUTS is /inputs. A
// host process cannot be given a read-only view: it gets the host paths, and
// JOBGATE_INPUTS is a folder of the attempt's own holding a link to each
// ro_mount input and each download's copy, so $JOBGATE_INPUTS/NAME works in
// both modes. JOBGATE_INPUT_NAME and JOBGATE_MOUNT_NAME hold the path the
// job sees.
//
// An input that cannot be given wraps errInputUnavailable; when ctx ends
// during a copy, ctx's error comes back, so a cancel or timeout is reported
// as such. Notes for the job's log go to note.
func (w *Worker) giveInputs(ctx context.Context, a *Attempt, job *api.Job, attempt int, note io.Writer) (func(), error) {
	container := a.Spec.Mode == api.ModeContainer
	for _, name := range w.mountNames() {
		host, env := w.cfg.Mounts[name], "JOBGATE_MOUNT_"+strings.ToUpper(name)
		if !container {
			a.Env[env] = host
			continue
		}
		target := path.Join(mountsTarget, name)
		a.Mounts = append(a.Mounts, Mount{Source: host, Target: target, ReadOnly: true})
		a.Env[env] = target
	}
	inputs := job.Spec.Inputs
	if len(inputs) == 0 {
		return func() {}, nil
	}
	download := false
	for _, in := range inputs {
		download = download || in.Mode == api.InputDownload
	}
	dir := ""
	drop := func() {}
	if download || !container {
		var err error
		if dir, err = w.inputsDir(job.ID, attempt); err != nil {
			return drop, err
		}
		drop = func() {
			if err := os.RemoveAll(dir); err != nil {
				w.logger.WarnContext(ctx, "remove inputs folder", slog.String("job_id", job.ID), slog.Any("error", err))
			}
		}
	}
	// What all downloads of the attempt may copy together (--max-input-mb).
	budget := w.cfg.MaxInputBytes
	a.Env["JOBGATE_INPUTS"] = inputsTarget
	if !container {
		a.Env["JOBGATE_INPUTS"] = dir
	}
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		in := inputs[name]
		src, err := w.inputSource(ctx, job.Workspace, in)
		if err != nil {
			return drop, fmt.Errorf("inputs.%s: %w", name, err)
		}
		env, target := "JOBGATE_INPUT_"+strings.ToUpper(name), path.Join(inputsTarget, name)
		switch {
		case in.Mode == api.InputDownload:
			dst := filepath.Join(dir, name)
			files, size, err := copyInput(ctx, src, dst, &budget, func(skipped string) {
				fmt.Fprintf(note, "jobgate: inputs.%s: skipped %s: not a regular file or folder (links are not followed)\n", name, skipped)
			})
			if ctx.Err() != nil {
				return drop, ctx.Err()
			}
			if errors.Is(err, errInputTooLarge) {
				return drop, fmt.Errorf("%w: inputs.%s: the downloads of this job exceed the worker's cap of %d bytes (--max-input-mb); use mode ro_mount",
					errInputUnavailable, name, w.cfg.MaxInputBytes)
			}
			if err != nil {
				w.logger.WarnContext(ctx, "copy input", slog.String("job_id", job.ID), slog.String("input", name), slog.Any("error", err))
				return drop, fmt.Errorf("%w: inputs.%s: copy from datastore %s: %s", errInputUnavailable, name, in.Datastore, pathDetail(err))
			}
			fmt.Fprintf(note, "jobgate: inputs.%s: copied %d files (%d bytes) from datastore %s\n", name, files, size, in.Datastore)
			if container {
				a.Mounts = append(a.Mounts, Mount{Source: dst, Target: target})
				a.Env[env] = target
			} else {
				a.Env[env] = dst
			}
		case container:
			a.Mounts = append(a.Mounts, Mount{Source: src, Target: target, ReadOnly: true})
			a.Env[env] = target
		default:
			if err := os.Symlink(src, filepath.Join(dir, name)); err != nil {
				return drop, fmt.Errorf("inputs.%s: %w", name, err)
			}
			a.Env[env] = src
		}
	}
	return drop, nil
}

// inputSource is where input in of a job of workspace ws is on this
// worker: a real path (links resolved) inside its datastore's folder.
func (w *Worker) inputSource(ctx context.Context, ws string, in api.Input) (string, error) {
	ds, err := w.store.Datastore(ctx, ws, in.Datastore)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: datastore %q was deleted", errInputUnavailable, in.Datastore)
	}
	if err != nil {
		return "", fmt.Errorf("datastore %q: %w", in.Datastore, err)
	}
	src, err := resolveInput(ds.Path, ds.Root, in.Path, in.Within)
	if err != nil {
		return "", fmt.Errorf("%w: datastore %s on worker %s: %v", errInputUnavailable, in.Datastore, w.cfg.ID, err)
	}
	return src, nil
}

// resolveInput resolves sub (an input's clean relative path) below the
// datastore folder dsPath, with every link resolved, and refuses what leads
// out: the datastore folder out of root (when a workspace admin registered it
// below the operator's root), sub out of the datastore folder, or sub out of
// any of within (clean relative paths too: the inputs of the job whose token
// submitted this one, which its own view of the datastore ends at). The
// gateway checked the paths as written; links may have changed since, and
// only here are the workers' folders seen.
func resolveInput(dsPath, root, sub string, within []string) (string, error) {
	realDS, err := filepath.EvalSymlinks(dsPath)
	if err != nil {
		return "", fmt.Errorf("folder %s: %w", dsPath, unwrapPath(err))
	}
	if root != "" {
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil || !inside(realRoot, realDS) {
			return "", fmt.Errorf("folder %s leads out of its datastore root %s (a symbolic link?)", dsPath, root)
		}
	}
	realSrc, err := filepath.EvalSymlinks(filepath.Join(realDS, filepath.FromSlash(sub)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path.Join(dsPath, sub), unwrapPath(err))
	}
	if !inside(realDS, realSrc) {
		return "", fmt.Errorf("%s leads out of the datastore's folder (a symbolic link?)", path.Join(dsPath, sub))
	}
	for _, w := range within {
		realW, err := filepath.EvalSymlinks(filepath.Join(realDS, filepath.FromSlash(w)))
		if err != nil {
			return "", fmt.Errorf("%s, the input of the job that submitted this one: %w", path.Join(dsPath, w), unwrapPath(err))
		}
		if !inside(realW, realSrc) {
			return "", fmt.Errorf("%s leads out of %s, the input of the job that submitted this one (a symbolic link?)", path.Join(dsPath, sub), path.Join(dsPath, w))
		}
	}
	return realSrc, nil
}

// unwrapPath drops a PathError's operation and path ("lstat /x/y"), which
// would name a path the error message already names differently.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pathDetail says what went wrong with a file in words a job's record may
// hold: the path and the system's reason ("/srv/d/x: permission denied"),
// without Go's operation names; an error of another kind is not shown.
func pathDetail(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return "a file could not be read (the worker's log says why)"
}

// inside reports whether p is base or below it; both clean and absolute.
func inside(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// inputsDir makes the empty inputs folder of one attempt,
// <spool>/inputs/<job>-<attempt>.
func (w *Worker) inputsDir(jobID string, attempt int) (string, error) {
	return w.attemptDir("inputs", jobID, attempt, 0o700)
}

// removeInputsDirs removes the inputs folders an earlier life of this worker
// left for jobID.
func (w *Worker) removeInputsDirs(ctx context.Context, jobID string) {
	dirs, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "inputs", jobID+"-*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			w.logger.WarnContext(ctx, "remove inputs folder", slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}

// copyInput copies src, a file or a folder tree, to dst, which must not
// exist, and returns how many files and bytes it copied. Only regular files
// and folders are copied; anything else (symbolic links, devices, sockets)
// is reported to skipped and neither copied nor followed, so nothing outside
// src is read. What it makes is writable by any user, as the job may run as
// any. A file or folder that cannot be read fails the copy: a job must not
// train on part of its data unknowingly. It stops with ctx's error when ctx
// is done.
// errInputTooLarge means the downloads went past their byte budget.
var errInputTooLarge = errors.New("inputs too large")

func copyInput(ctx context.Context, src, dst string, budget *int64, skipped func(rel string)) (files int, size int64, err error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return 0, 0, err
	}
	if fi.Mode().IsRegular() {
		n, err := copyFile(ctx, src, dst, fi.Mode(), budget)
		return 1, n, err
	}
	err = filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			if err := os.Mkdir(target, 0o777); err != nil {
				return err
			}
			return os.Chmod(target, 0o777) // past the umask
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				return err
			}
			n, err := copyFile(ctx, p, target, info.Mode(), budget)
			files, size = files+1, size+n
			return err
		}
		skipped(filepath.ToSlash(rel))
		return nil
	})
	return files, size, err
}

// copyFile copies regular file src to new file dst, keeping its execute
// bits, readable and writable by all; it takes what it copies from budget,
// and fails with errInputTooLarge rather than go past it.
func copyFile(ctx context.Context, src, dst string, mode fs.FileMode, budget *int64) (int64, error) {
	// O_NOFOLLOW: the file must not turn into a link between the walk and here.
	r, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	perm := 0o666 | mode.Perm()&0o111
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, *budget+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if n > *budget {
		return n, errInputTooLarge
	}
	*budget -= n
	if err == nil {
		err = os.Chmod(dst, perm) // past the umask
	}
	return n, err
}

// ctxReader stops a long copy once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
