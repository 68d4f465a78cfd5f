package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// A batch-score job (Spec.BatchScore) and each of its children (its
// partitions, BatchScore.Partition 1..InstanceCount-1) run the same code,
// in the worker, not as the job's command:
//
//  1. The plan: the *.csv, *.jsonl and *.ndjson regular files below the
//     input folder, sorted by path, made once per family (store.BatchScorePlan:
//     the first to write it wins, every attempt and partition uses it). The
//     folder is read through os.Root: a symbolic link in the datastore does
//     not lead the worker out of it.
//  2. The target: unless BatchScore.Deployment is set, the job's image and
//     command as a model server, given the model as a deployment's replica
//     is (giveModelServer) but with no endpoint in the store, and probed
//     until ready; else the deployment's scoring path on the router, with a
//     score token of the attempt (batchToken).
//  3. The claim loop: claim the next file no one scores (a lease of
//     batchScoreLease, renewed while scoring; a claim of an earlier attempt
//     of the same job is taken at once), score it (scoreFile) into a spool
//     file, write that whole under artifact.BatchScoreKey of the parent,
//     then mark the file done with its counts. A child ends when nothing is
//     left to claim; the parent waits until every file is done, taking over
//     the files whose claimant's lease lapsed.
//  4. The parent merges the files' results in plan order into
//     <outputs>/<BatchScore.Output> (collected as the job's artifact), fails
//     when the failed rows exceed ErrorThreshold (-1: any), and cancels the
//     children still queued (all its unfinished children when it fails).
//
// A file scored twice (a lease lapsed while its claimant lived) replaces
// its own results: no row is in the predictions twice, and a retried or
// resumed attempt skips the files already done.

const (
	// batchScoreLease is the life of a file's claim without renewal.
	batchScoreLease = 30 * time.Second
	// batchScoreRenewEvery renews the claim of the file being scored.
	batchScoreRenewEvery = 10 * time.Second
	// batchScoreWaitEvery is how often the parent looks again while the
	// files left are claimed by others.
	batchScoreWaitEvery = 500 * time.Millisecond
	// batchScoreKeep is how long the family's plan, claims and done marks
	// outlive their last write, past the job's timeout.
	batchScoreKeep = 7 * 24 * time.Hour
)

// errClaimLost ends the scoring of a file whose claim another attempt took
// (its lease lapsed): that one scores it.
var errClaimLost = errors.New("the file's claim was taken over")

// batchScoreStore is what a batch-score job needs of the store.
type batchScoreStore interface {
	BatchScorePlan(ctx context.Context, parent string, files []store.BatchScoreFile, ttl time.Duration) ([]store.BatchScoreFile, error)
	ClaimBatchScoreFile(ctx context.Context, parent string, n int, owner string, lease, ttl time.Duration) (index, left int, err error)
	RenewBatchScoreClaim(ctx context.Context, parent string, index int, owner string, lease time.Duration) error
	MarkBatchScoreDone(ctx context.Context, parent string, index int, owner string, d store.BatchScoreDone, ttl time.Duration) (bool, error)
	BatchScoreDoneFiles(ctx context.Context, parent string) (map[int]store.BatchScoreDone, error)
}

var _ batchScoreStore = (*store.Store)(nil)

// scoreFunc scores one file (scoreFile's contract).
type scoreFunc func(ctx context.Context, t scoreTarget, name string, in io.Reader, b *api.BatchScore, out io.Writer) (rows, failed int, err error)

// serverExit says the model server ended before it was stopped.
type serverExit struct {
	code  int
	ready bool
}

func (e *serverExit) Error() string {
	if e.ready {
		return fmt.Sprintf("the model server exited with %d while the files were scored", e.code)
	}
	return fmt.Sprintf("the model server exited with %d before it was ready", e.code)
}

// errScoringDone stops a batch-score job's model server when scoring ends.
var errScoringDone = errors.New("scoring done")

// errNothingLeft ends the wait for a model server when every file was
// scored meanwhile (by the job's other partitions).
var errNothingLeft = errors.New("every file is scored")

// runBatchScore runs a batch-score attempt (see above). a is the attempt
// with its inputs given, outDir the host folder of its outputs; the model
// server's output goes to stdout and stderr, the job's own notes to
// stderr too.
func (w *Worker) runBatchScore(ctx context.Context, exec Executor, a Attempt, job *api.Job, attempt int, outDir string, stdout, stderr io.Writer) (res Outcome, err error) {
	b := job.Spec.BatchScore
	parent := job.ID
	if b.Partition > 0 {
		if parent = job.Spec.ParentID; parent == "" {
			return Outcome{}, fmt.Errorf("%w: partition %d of a batch-score job has no parent", errBatchUnavailable, b.Partition)
		}
	}
	ctx, span := batchSpan(ctx, b.TraceParent, "batch-score", attribute.String("jobgate.job_id", job.ID),
		attribute.String("jobgate.batch_score.parent", parent), attribute.Int("jobgate.batch_score.partition", b.Partition),
		attribute.Int("jobgate.attempt", attempt), attribute.String("jobgate.model", fmt.Sprintf("%s:%d", b.ModelName, b.Version)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	if b.Partition > 0 {
		// A child started after its job ended (its cancel raced the
		// start) has nothing to do, and must not plan anew once the
		// family's keys expired.
		if pj, err := w.store.GetJobByID(ctx, parent); err == nil && pj.Status.Terminal() {
			fmt.Fprintf(stderr, "jobgate: batch-score: job %s ended (%s): partition %d has nothing to do\n", parent, pj.Status, b.Partition)
			return Outcome{}, nil
		}
	}
	dir, ok := inputHostPath(a, b.Input)
	if !ok {
		return Outcome{}, fmt.Errorf("%w: batch_score.input %q is not one of the job's inputs", errInputUnavailable, b.Input)
	}
	root, err := openInputRoot(dir, b.Input)
	if err != nil {
		return Outcome{}, err
	}
	defer root.Close()
	// The files' results are spooled in a folder of the attempt's own
	// (removed at its end, or by the worker's next life when it dies).
	spoolDir, err := w.attemptDir("batch-score", job.ID, attempt, 0o700)
	if err != nil {
		return Outcome{}, err
	}
	defer func() {
		if err := os.RemoveAll(spoolDir); err != nil {
			w.logger.WarnContext(ctx, "remove the batch-score spool folder", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	}()
	run := &batchScoreRun{st: w.store, arts: w.artifacts, logger: w.logger, b: b, jobID: job.ID, parent: parent,
		owner: fmt.Sprintf("%s:%d", job.ID, attempt), ttl: time.Duration(job.Spec.TimeoutSeconds)*time.Second + batchScoreKeep,
		spoolDir: spoolDir, root: root, logw: stderr, score: scoreFile,
		lease: batchScoreLease, renewEvery: batchScoreRenewEvery, waitEvery: batchScoreWaitEvery, metrics: w.cfg.Metrics}
	if b.Partition > 0 {
		run.parentEnded = func(ctx context.Context) bool {
			pj, err := w.store.GetJobByID(ctx, parent)
			return err == nil && pj.Status.Terminal()
		}
	}
	if err := run.makePlan(ctx); err != nil {
		return Outcome{}, err
	}
	done, err := run.st.BatchScoreDoneFiles(ctx, parent)
	if err != nil {
		return Outcome{}, err
	}
	if len(done) > 0 {
		fmt.Fprintf(stderr, "jobgate: batch-score resumes: %d of %d files already scored\n", len(done), len(run.plan))
	}
	if len(done) < len(run.plan) {
		t, stop, err := w.batchScoreTarget(ctx, exec, a, job, attempt, stdout, stderr, run.allDone)
		switch {
		case errors.Is(err, errNothingLeft):
		case err != nil:
			return serverOutcome(err, stderr)
		default:
			err = run.loop(t.ctx, t.target)
			stop()
			if err != nil {
				return serverOutcome(err, stderr)
			}
		}
	}
	if b.Partition > 0 {
		if over, err := run.overThreshold(ctx); err != nil || over {
			return Outcome{}, cmpErr(err, fmt.Errorf("%w: the job's failed rows are over error_threshold %d: partition %d stopped", errBatchErrors, b.ErrorThreshold, b.Partition))
		}
		fmt.Fprintf(stderr, "jobgate: batch-score: partition %d has no file left to claim\n", b.Partition)
		return Outcome{}, nil
	}
	return Outcome{}, w.finishBatchScore(ctx, run, job, outDir)
}

// removeBatchScoreDirs removes the batch-score spool folders an earlier
// life of this worker left for jobID.
func (w *Worker) removeBatchScoreDirs(ctx context.Context, jobID string) {
	dirs, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "batch-score", jobID+"-*"))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			w.logger.WarnContext(ctx, "remove the batch-score spool folder", slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}

// serverOutcome turns the end of a model server before it was stopped into
// the attempt's exit code (exit_code, retried as a command's would be);
// another err comes back as it is.
func serverOutcome(err error, stderr io.Writer) (Outcome, error) {
	var se *serverExit
	if errors.As(err, &se) && se.code != 0 {
		fmt.Fprintf(stderr, "jobgate: batch-score: %v\n", se)
		return Outcome{ExitCode: se.code}, nil
	}
	return Outcome{}, err
}

// finishBatchScore is the parent's end, once every file is done (or the
// errors went over the threshold): the merge, the threshold, the children.
func (w *Worker) finishBatchScore(ctx context.Context, run *batchScoreRun, job *api.Job, outDir string) error {
	b := run.b
	done, err := run.st.BatchScoreDoneFiles(ctx, run.parent)
	if err != nil {
		return err
	}
	rows, failed, err := run.merge(ctx, outDir, done)
	if err != nil {
		return err
	}
	over := b.ErrorThreshold >= 0 && failed > b.ErrorThreshold
	w.cancelPartitions(ctx, job, over)
	if over {
		return fmt.Errorf("%w: %d of %d rows failed, over error_threshold %d (%d of %d files scored)",
			errBatchErrors, failed, rows, b.ErrorThreshold, len(done), len(run.plan))
	}
	fmt.Fprintf(run.logw, "jobgate: batch-score done: %d files, %d rows, %d failed, in %s\n", len(run.plan), rows, failed, b.Output)
	return nil
}

// cancelPartitions cancels the job's children still queued, or with all
// every one not ended. A running child on success is left alone: nothing
// is left for it to claim, and it ends on its own.
func (w *Worker) cancelPartitions(ctx context.Context, job *api.Job, all bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	kids, err := w.store.Children(ctx, job.ID, maxInstanceChildren)
	if err != nil {
		w.logger.WarnContext(ctx, "list the batch-score job's partitions", slog.String("job_id", job.ID), slog.Any("error", err))
		return
	}
	for _, k := range kids {
		if k.Spec.BatchScore == nil || k.Status.Terminal() || (!all && k.Status != api.StatusQueued) {
			continue
		}
		res, err := w.store.Cancel(ctx, k.Workspace, k.ID, w.now())
		if err != nil {
			w.logger.WarnContext(ctx, "cancel a batch-score partition", slog.String("job_id", k.ID), slog.Any("error", err))
			continue
		}
		switch res {
		case store.CancelRequested:
			_ = w.rdb.Publish(ctx, queue.ChannelCancel, k.ID).Err()
		case store.CancelDone:
			_ = queue.Notify(ctx, w.rdb, queue.ChannelScheduler)
		}
	}
}

// maxInstanceChildren bounds the children a parent looks at: above
// instance_count's cap (64).
const maxInstanceChildren = 128

// target is where an attempt's mini-batches go, and the context they go
// under (it ends when the job's own model server does).
type target struct {
	ctx    context.Context
	target scoreTarget
}

// batchScoreTarget readies the attempt's target: the deployment's scoring
// path, or the job's own model server, started and ready. stop ends what
// it started (the server, the token). It fails with errNothingLeft when
// allDone says every file was scored while the server started.
func (w *Worker) batchScoreTarget(ctx context.Context, exec Executor, a Attempt, job *api.Job, attempt int, stdout, stderr io.Writer,
	allDone func(context.Context) bool) (target, func(), error) {
	b := job.Spec.BatchScore
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = b.MaxConcurrency
	client := &http.Client{Transport: tracedTransport(tr)}
	if b.Deployment != "" {
		if w.cfg.ScoringURL == "" {
			return target{}, nil, fmt.Errorf("%w: worker %s has no scoring router (start it with --scoring-url)", errBatchUnavailable, w.cfg.ID)
		}
		token, drop, err := w.batchToken(ctx, w.store, job, attempt)
		if err != nil {
			return target{}, nil, err
		}
		fmt.Fprintf(stderr, "jobgate: batch-score: scoring through deployment %s\n", b.Deployment)
		return target{ctx: ctx, target: scoreTarget{client: client, url: w.cfg.ScoringURL + "/v2/models/" + b.Deployment + "/infer", token: token}},
			func() { drop(); tr.CloseIdleConnections() }, nil
	}
	svc := &api.Service{Deployment: b.ModelName, Model: b.ModelName, Version: b.Version, SHA256: b.SHA256}
	r, err := w.giveModelServer(ctx, &a, exec, job.Workspace, svc, job.ID, attempt)
	if err != nil {
		return target{}, nil, err
	}
	// The server runs until scoring ends (errScoringDone), or with ctx
	// (a cancel, the timeout); ending on its own, it ends the scoring.
	work, stopWork := context.WithCancelCause(ctx)
	scoring, endScoring := context.WithCancelCause(ctx)
	exited := make(chan struct{})
	var res Outcome
	var runErr error
	go func() {
		defer close(exited)
		res, runErr = runSteps(work, exec, a, stdout, stderr)
		if !errors.Is(context.Cause(work), errScoringDone) {
			// Before it was ready, waitReady says so instead.
			endScoring(cmpErr(runErr, &serverExit{code: res.ExitCode, ready: true}))
		}
	}()
	stop := func() {
		stopWork(errScoringDone)
		<-exited
		r.close()
		tr.CloseIdleConnections()
		endScoring(nil)
	}
	fmt.Fprintf(stderr, "jobgate: batch-score: starting the model server (%s:%d) on %s\n", b.ModelName, b.Version, r.addr)
	if err := r.waitReady(ctx, exited, stderr, allDone); err != nil {
		stop()
		if errors.Is(err, errExited) {
			<-exited
			err = cmpErr(runErr, &serverExit{code: res.ExitCode})
		}
		return target{}, nil, err
	}
	fmt.Fprintf(stderr, "jobgate: batch-score: the model server is ready\n")
	return target{ctx: scoring, target: scoreTarget{client: client, url: "http://" + r.addr + "/v2/models/" + b.ModelName + "/infer"}}, stop, nil
}

func cmpErr(err error, or error) error {
	if err != nil {
		return err
	}
	return or
}

// errExited: the workload ended while waitReady waited.
var errExited = errors.New("the model server exited")

// waitReady probes the replica's server until it answers ready on a port
// its own (the check replica.watch makes), then returns nil; errExited
// when the workload ends first, errPortTaken when another program holds
// the port for portTakenFailAfter, errNothingLeft when allDone says so
// (looked at every second), ctx's cause when it ends.
func (r *replica) waitReady(ctx context.Context, exited <-chan struct{}, stderr io.Writer, allDone func(context.Context) bool) error {
	client := newProbeClient()
	defer client.CloseIdleConnections()
	probe := time.NewTimer(probeFast)
	defer probe.Stop()
	look := time.NewTicker(time.Second)
	defer look.Stop()
	for {
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-look.C:
			if allDone(ctx) {
				return errNothingLeft
			}
		case <-probe.C:
			ok, taken := probeOnce(ctx, client, r.probeURL), false
			if ok && r.pids != nil {
				ok, taken = r.ownsPort(ctx, stderr)
			}
			if ok {
				return nil
			}
			if taken && r.w.now().Sub(r.takenSince) >= portTakenFailAfter {
				return fmt.Errorf("%w: port %d on %s was held by another program's listener for %s", errPortTaken, r.port, r.w.cfg.AdvertiseHost, portTakenFailAfter)
			}
			next := probeFast
			if taken {
				next = probeSlow
			}
			probe.Reset(next)
		}
	}
}

// inputHostPath is where input name of attempt a is on this host, as
// giveInputs gave it: the source of its mount in a container, its path in
// the environment for a host process.
func inputHostPath(a Attempt, name string) (string, bool) {
	if a.Spec.Mode == api.ModeContainer {
		target := path.Join(inputsTarget, name)
		for _, m := range a.Mounts {
			if m.Target == target {
				return m.Source, true
			}
		}
		return "", false
	}
	p := a.Env["JOBGATE_INPUT_"+strings.ToUpper(name)]
	return p, p != ""
}

// openInputRoot opens the input folder dir as an os.Root.
func openInputRoot(dir, name string) (*os.Root, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: inputs.%s: %s", errInputUnavailable, name, pathDetail(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: inputs.%s is a file: a batch-score job scores the files of a folder", errInputUnavailable, name)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: inputs.%s: %s", errInputUnavailable, name, pathDetail(err))
	}
	return root, nil
}

// scoredExt says whether name is a file a batch-score job scores.
func scoredExt(name string) bool {
	switch path.Ext(name) {
	case ".csv", ".jsonl", ".ndjson":
		return true
	}
	return false
}

// listScoreFiles lists the regular *.csv, *.jsonl and *.ndjson files below
// root, at any depth, sorted by path (byte order); skipped are the other
// entries that are not folders (links are neither followed nor scored).
func listScoreFiles(root *os.Root) (files []store.BatchScoreFile, skipped []string, err error) {
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() || !scoredExt(p) {
			skipped = append(skipped, p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, store.BatchScoreFile{Path: p, Size: info.Size()})
		return nil
	})
	slices.SortFunc(files, func(a, b store.BatchScoreFile) int { return strings.Compare(a.Path, b.Path) })
	return files, skipped, err
}

// batchScoreRun is one attempt's part of a batch-score job's work.
type batchScoreRun struct {
	st     batchScoreStore
	arts   artifact.Store
	logger *slog.Logger
	b      *api.BatchScore
	jobID  string
	// parent is the family's job (jobID for partition 0).
	parent string
	// owner names the attempt in claims, "<job id>:<attempt>".
	owner string
	// ttl is the life of the family's keys.
	ttl      time.Duration
	spoolDir string
	root     *os.Root
	plan     []store.BatchScoreFile
	// logw is the job's log.
	logw  io.Writer
	score scoreFunc
	// lease, renewEvery and waitEvery: batchScoreLease,
	// batchScoreRenewEvery, batchScoreWaitEvery, but in tests.
	lease, renewEvery, waitEvery time.Duration
	// parentEnded, for a child, says whether the family's job has ended
	// (failed for good, canceled): then no one will merge what it scores.
	parentEnded func(context.Context) bool
	// metrics counts the rows scored; nil: off.
	metrics *metrics.Worker
}

// makePlan lists the input folder and makes it the family's plan, unless
// it has one: then that one is used.
func (r *batchScoreRun) makePlan(ctx context.Context) error {
	files, skipped, err := listScoreFiles(r.root)
	if err != nil {
		return fmt.Errorf("%w: inputs.%s: %s", errInputUnavailable, r.b.Input, pathDetail(err))
	}
	if len(skipped) > 0 {
		show := skipped[:min(len(skipped), 5)]
		more := ""
		if len(skipped) > len(show) {
			more = fmt.Sprintf(" and %d more", len(skipped)-len(show))
		}
		fmt.Fprintf(r.logw, "jobgate: batch-score: skipped %d entries of inputs.%s that are not regular *.csv, *.jsonl or *.ndjson files: %s%s\n",
			len(skipped), r.b.Input, strings.Join(show, ", "), more)
	}
	plan, err := r.st.BatchScorePlan(ctx, r.parent, files, r.ttl)
	if err != nil {
		return err
	}
	if len(plan) == 0 {
		return fmt.Errorf("%w: inputs.%s holds no *.csv, *.jsonl or *.ndjson file to score", errInputUnavailable, r.b.Input)
	}
	r.plan = plan
	var size int64
	for _, f := range plan {
		size += f.Size
	}
	fmt.Fprintf(r.logw, "jobgate: batch-score plan: %d files (%d bytes) of inputs.%s, %d rows a mini-batch, %d partitions\n",
		len(plan), size, r.b.Input, r.b.MiniBatchSize, r.b.InstanceCount)
	return nil
}

// allDone says whether every file of the plan is done (false when the
// store does not answer).
func (r *batchScoreRun) allDone(ctx context.Context) bool {
	done, err := r.st.BatchScoreDoneFiles(ctx, r.parent)
	return err == nil && len(done) >= len(r.plan)
}

// loop claims and scores files until none is left to claim (a child) or
// every file is done (the parent); it stops early, without an error, once
// the failed rows of the done files exceed the threshold (the parent then
// fails the job).
func (r *batchScoreRun) loop(ctx context.Context, t scoreTarget) error {
	for {
		if r.parentEnded != nil && r.parentEnded(ctx) {
			// The job failed for good (its own attempts used up, its
			// timeout) or was canceled: scoring on would be for no one.
			fmt.Fprintf(r.logw, "jobgate: batch-score: job %s ended: partition %d stops claiming files\n", r.parent, r.b.Partition)
			return nil
		}
		i, left, err := r.st.ClaimBatchScoreFile(ctx, r.parent, len(r.plan), r.owner, r.lease, r.ttl)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		if i >= 0 {
			if err := r.scoreOne(ctx, t, i); err != nil {
				return err
			}
		}
		if over, err := r.overThreshold(ctx); err != nil || over {
			return err
		}
		if i >= 0 {
			continue
		}
		if left == 0 || r.b.Partition > 0 {
			return nil
		}
		// The files left are another's: wait for them to be done, or
		// for a lease to lapse.
		wait := time.NewTimer(r.waitEvery)
		select {
		case <-ctx.Done():
			wait.Stop()
			return context.Cause(ctx)
		case <-wait.C:
		}
	}
}

// overThreshold says whether the failed rows of the files done exceed the
// job's error threshold.
func (r *batchScoreRun) overThreshold(ctx context.Context) (bool, error) {
	if r.b.ErrorThreshold < 0 {
		return false, nil
	}
	done, err := r.st.BatchScoreDoneFiles(ctx, r.parent)
	if err != nil {
		return false, err
	}
	failed := 0
	for _, d := range done {
		failed += d.Failed
	}
	return failed > r.b.ErrorThreshold, nil
}

// scoreOne scores file i of the plan, claimed, into its results and marks
// it done. A claim lost meanwhile (another attempt took it over) drops what
// was scored: the other attempt writes it.
func (r *batchScoreRun) scoreOne(ctx context.Context, t scoreTarget, i int) error {
	f := r.plan[i]
	n := len(r.plan)
	fmt.Fprintf(r.logw, "jobgate: batch-score: file %d of %d claimed: %s (%d bytes)\n", i+1, n, f.Path, f.Size)
	// O_NONBLOCK: a file turned into a FIFO since the plan (the model
	// server of a download-mode job can write its inputs folder) must not
	// block the open for ever; the check below then refuses it.
	in, err := r.root.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("%w: inputs.%s: %s: %s", errInputUnavailable, r.b.Input, f.Path, pathDetail(err))
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: inputs.%s: %s is no longer a regular file", errInputUnavailable, r.b.Input, f.Path)
	}
	spool, err := os.CreateTemp(r.spoolDir, "batch-score-*.jsonl")
	if err != nil {
		return fmt.Errorf("batch-score spool: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()

	fileCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		r.renew(fileCtx, i, cancel)
	}()
	// The claim is renewed until the file is marked done: writing its
	// results can outlast a lease too.
	defer func() {
		cancel(nil)
		<-renewed
	}()
	bw := bufio.NewWriterSize(spool, 256<<10)
	rows, failed, err := r.score(fileCtx, t, f.Path, in, r.b, bw)
	lost := errors.Is(context.Cause(fileCtx), errClaimLost)
	if lost && ctx.Err() == nil {
		fmt.Fprintf(r.logw, "jobgate: batch-score: file %d of %d, %s: its claim was taken over (a lapsed lease); left to the other\n", i+1, n, f.Path)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("score %s: %w", f.Path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("batch-score spool: %w", err)
	}
	// Still ours? A file taken over is written by the other.
	if err := r.st.RenewBatchScoreClaim(ctx, r.parent, i, r.owner, r.lease); errors.Is(err, store.ErrConflict) {
		fmt.Fprintf(r.logw, "jobgate: batch-score: file %d of %d, %s: its claim was taken over (a lapsed lease); left to the other\n", i+1, n, f.Path)
		return nil
	} else if err != nil {
		return err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := r.arts.Put(ctx, artifact.BatchScoreKey(r.parent, i), spool); err != nil {
		return fmt.Errorf("write the results of %s: %w", f.Path, err)
	}
	if errors.Is(context.Cause(fileCtx), errClaimLost) {
		// Taken over while its results were written: the other marks it.
		fmt.Fprintf(r.logw, "jobgate: batch-score: file %d of %d, %s: its claim was taken over (a lapsed lease); left to the other\n", i+1, n, f.Path)
		return nil
	}
	if _, err := r.st.MarkBatchScoreDone(ctx, r.parent, i, r.owner, store.BatchScoreDone{Rows: rows, Failed: failed}, r.ttl); err != nil {
		return err
	}
	r.metrics.BatchRows(metrics.BatchKindBatchScore, rows-failed, failed)
	fmt.Fprintf(r.logw, "jobgate: batch-score: file %d of %d done: %s, %d rows, %d failed\n", i+1, n, f.Path, rows, failed)
	return nil
}

// renew renews the claim on file i every renewEvery until ctx ends; when
// another attempt took the claim it cancels ctx with errClaimLost. A
// renewal Redis does not answer is tried again next time: the lease
// outlasts two of them.
func (r *batchScoreRun) renew(ctx context.Context, i int, cancel context.CancelCauseFunc) {
	t := time.NewTicker(r.renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := r.st.RenewBatchScoreClaim(ctx, r.parent, i, r.owner, r.lease)
			switch {
			case errors.Is(err, store.ErrConflict):
				cancel(errClaimLost)
				return
			case err != nil && ctx.Err() == nil:
				r.logger.WarnContext(ctx, "renew a batch-score file's claim", slog.String("job_id", r.jobID), slog.Int("file", i), slog.Any("error", err))
			}
		}
	}
}

// merge writes the results of the done files, in plan order, to the
// output file in outDir (read through an os.Root: the model server, which
// sees the outputs folder, cannot point the worker elsewhere with a link),
// streamed, and returns the rows and failed rows written.
func (r *batchScoreRun) merge(ctx context.Context, outDir string, done map[int]store.BatchScoreDone) (rows, failed int, err error) {
	out, err := os.OpenRoot(outDir)
	if err != nil {
		return 0, 0, fmt.Errorf("outputs folder: %w", err)
	}
	defer out.Close()
	name := filepath.FromSlash(r.b.Output)
	if d := filepath.Dir(name); d != "." {
		if err := out.MkdirAll(d, 0o755); err != nil {
			return 0, 0, fmt.Errorf("batch_score.output %s: %w", r.b.Output, err)
		}
	}
	if err := out.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, fmt.Errorf("batch_score.output %s: %w", r.b.Output, err)
	}
	f, err := out.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, 0, fmt.Errorf("batch_score.output %s: %w", r.b.Output, err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	for i := range r.plan {
		d, ok := done[i]
		if !ok {
			continue
		}
		if err := r.copyResults(ctx, bw, i); err != nil {
			return 0, 0, err
		}
		rows += d.Rows
		failed += d.Failed
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("batch_score.output %s: %w", r.b.Output, err)
	}
	return rows, failed, f.Close()
}

// copyResults copies file i's results to w, ending in a newline.
func (r *batchScoreRun) copyResults(ctx context.Context, w *bufio.Writer, i int) error {
	rc, err := r.arts.Open(ctx, artifact.BatchScoreKey(r.parent, i))
	if err != nil {
		return fmt.Errorf("the results of %s: %w", r.plan[i].Path, err)
	}
	defer rc.Close()
	lw := &lastByte{w: w}
	if _, err := io.Copy(lw, rc); err != nil {
		return fmt.Errorf("merge the results of %s: %w", r.plan[i].Path, err)
	}
	if lw.n > 0 && lw.last != '\n' {
		return w.WriteByte('\n')
	}
	return nil
}

// lastByte passes writes on and remembers the last byte.
type lastByte struct {
	w    io.Writer
	n    int64
	last byte
}

func (l *lastByte) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.n += int64(n)
		l.last = p[n-1]
	}
	return n, err
}
