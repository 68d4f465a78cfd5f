package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestListScoreFiles: the plan is the regular *.csv, *.jsonl and *.ndjson
// files at any depth, in byte order of their paths; links (to a file or a
// folder outside) and other entries are skipped, not followed, and a
// planned file turned into a link out of the folder is not read.
func TestListScoreFiles(t *testing.T) {
	outside := t.TempDir()
	write := func(dir, rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(outside, "secret.csv", "x\n1\n")
	dir := t.TempDir()
	write(dir, "a/b.csv", "x\n1\n")
	write(dir, "a-b.csv", "x\n1\n2\n")
	write(dir, "sub/deeper/c.ndjson", "[1]\n")
	write(dir, "d.jsonl", "[1]\n")
	write(dir, "notes.txt", "hi")
	for name, target := range map[string]string{"link.csv": filepath.Join(outside, "secret.csv"), "out": outside} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	files, skipped, err := listScoreFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.BatchScoreFile{{Path: "a-b.csv", Size: 6}, {Path: "a/b.csv", Size: 4}, {Path: "d.jsonl", Size: 4}, {Path: "sub/deeper/c.ndjson", Size: 4}}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"link.csv", "notes.txt", "out", "pipe.csv"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}

	// d.jsonl, planned, becomes a link out of the folder before it is read.
	if err := os.Remove(filepath.Join(dir, "d.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(dir, "d.jsonl")); err != nil {
		t.Fatal(err)
	}
	f := newFamily(t, dir, want)
	run := f.run("p", 1, 0)
	run.score = func(context.Context, scoreTarget, string, io.Reader, *api.BatchScore, io.Writer) (int, int, error) {
		t.Fatal("a link out of the folder was scored")
		return 0, 0, nil
	}
	err = run.scoreOne(context.Background(), scoreTarget{}, 2)
	if !errors.Is(err, errInputUnavailable) || !strings.Contains(err.Error(), "d.jsonl") {
		t.Fatalf("scoring a file turned into a link out: %v, want input unavailable naming it", err)
	}
}

// family is a batch-score family's shared state on real Redis and an
// artifact folder, with its input folder.
type family struct {
	t     *testing.T
	st    *store.Store
	rdb   redis.UniversalClient
	arts  artifact.Dir
	root  *os.Root
	files []store.BatchScoreFile
	// calls counts the scorings of each file.
	mu    sync.Mutex
	calls map[string]int
}

func newFamily(t *testing.T, dir string, files []store.BatchScoreFile) *family {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return &family{t: t, st: store.New(rdb, store.Config{}), rdb: rdb, arts: artifact.Dir{Root: t.TempDir()}, root: root, files: files, calls: map[string]int{}}
}

// run is attempt attempt of partition p of job id (the parent "p" for 0)
// with a scorer that answers each line of a file with its number, and
// fails the rows of files named bad*.
func (f *family) run(id string, attempt, partition int) *batchScoreRun {
	b := &api.BatchScore{Input: "data", MiniBatchSize: 10, InstanceCount: 2, Output: "out/predictions.jsonl", Partition: partition}
	return &batchScoreRun{st: f.st, arts: f.arts, logger: slog.Default(), b: b, jobID: id, parent: "p", owner: fmt.Sprintf("%s:%d", id, attempt),
		ttl: time.Hour, spoolDir: f.t.TempDir(), root: f.root, plan: f.files, logw: io.Discard, score: f.score,
		lease: time.Minute, renewEvery: 10 * time.Millisecond, waitEvery: 10 * time.Millisecond}
}

func (f *family) score(ctx context.Context, _ scoreTarget, name string, in io.Reader, _ *api.BatchScore, out io.Writer) (rows, failed int, err error) {
	f.mu.Lock()
	f.calls[name]++
	f.mu.Unlock()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		p := api.BatchScorePrediction{File: name, Row: rows}
		if strings.HasPrefix(filepath.Base(name), "bad") {
			p.Error, failed = "refused", failed+1
		} else {
			p.Outputs = []json.RawMessage{json.RawMessage(sc.Text())}
		}
		b, _ := json.Marshal(p)
		out.Write(append(b, '\n'))
		rows++
	}
	return rows, failed, sc.Err()
}

// writeFiles makes dir hold files of n lines each ("<name>-<i>").
func writeFiles(t *testing.T, dir string, n int, names ...string) []store.BatchScoreFile {
	t.Helper()
	var out []store.BatchScoreFile
	for _, name := range names {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%q\n", fmt.Sprintf("%s-%d", name, i))
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, store.BatchScoreFile{Path: name, Size: int64(b.Len())})
	}
	return out
}

// merged reads the merge of run into a fresh outputs folder.
func merged(t *testing.T, run *batchScoreRun) ([]api.BatchScorePrediction, int, int) {
	t.Helper()
	ctx := context.Background()
	done, err := run.st.BatchScoreDoneFiles(ctx, run.parent)
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	rows, failed, err := run.merge(ctx, outDir, done)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(outDir, "out", "predictions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []api.BatchScorePrediction
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var p api.BatchScorePrediction
		if err := json.Unmarshal(l, &p); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ps = append(ps, p)
	}
	return ps, rows, failed
}

// checkOrder says what is wrong with ps as every row of files once, in
// order (file, row).
func checkOrder(ps []api.BatchScorePrediction, files []store.BatchScoreFile, n int) error {
	if len(ps) != len(files)*n {
		return fmt.Errorf("%d predictions, want %d", len(ps), len(files)*n)
	}
	for i, p := range ps {
		f, row := files[i/n].Path, i%n
		if p.File != f || p.Row != row {
			return fmt.Errorf("prediction %d is %s row %d, want %s row %d", i, p.File, p.Row, f, row)
		}
		if p.Error == "" && string(p.Outputs[0]) != fmt.Sprintf("%q", fmt.Sprintf("%s-%d", f, row)) {
			return fmt.Errorf("prediction %d: outputs %s", i, p.Outputs[0])
		}
	}
	return nil
}

// TestBatchScoreFamilyScoresEachFileOnce: the parent and a child claim
// the files of one plan at once; each file is scored once, the child ends
// when nothing is left to claim, the parent when all are done, and the
// merge holds every row once, in order. A later attempt finds nothing
// left.
func TestBatchScoreFamilyScoresEachFileOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 50
	files := writeFiles(t, dir, n, "a.csv", "b.csv", "c.csv", "d.csv", "e.csv")
	f := newFamily(t, dir, files)
	parent, child := f.run("p", 1, 0), f.run("c", 1, 1)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []*batchScoreRun{parent, child} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.loop(ctx, scoreTarget{}) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if f.calls[file.Path] != 1 {
			t.Errorf("%s scored %d times, want once", file.Path, f.calls[file.Path])
		}
	}
	ps, rows, failed := merged(t, parent)
	if err := checkOrder(ps, files, n); err != nil {
		t.Fatal(err)
	}
	if rows != len(files)*n || failed != 0 {
		t.Fatalf("merge counts %d rows, %d failed", rows, failed)
	}
	if !f.run("p", 2, 0).allDone(ctx) {
		t.Fatal("a later attempt finds files left")
	}
}

// TestBatchScoreChildStopsWhenJobEnded: a child whose job has ended (failed
// for good, or canceled) claims no more files: no one would merge them.
func TestBatchScoreChildStopsWhenJobEnded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files := writeFiles(t, dir, 5, "a.csv", "b.csv", "c.csv")
	f := newFamily(t, dir, files)
	child := f.run("c", 1, 1)
	checks := 0
	child.parentEnded = func(context.Context) bool { checks++; return checks > 1 } // ends after the first file
	if err := child.loop(ctx, scoreTarget{}); err != nil {
		t.Fatal(err)
	}
	scored := 0
	for _, file := range files {
		scored += f.calls[file.Path]
	}
	if scored != 1 {
		t.Fatalf("the child scored %d files after its job ended, want 1 (the one before)", scored)
	}
}

// TestBatchScoreTakesOver: a file claimed by an earlier attempt of the
// parent is taken at once by its next attempt; one claimed by a child whose
// lease lapses is taken by the parent once it lapses; a file whose claim is
// taken over while it is scored is dropped by the one that lost it and
// written by the other.
func TestBatchScoreTakesOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 20
	files := writeFiles(t, dir, n, "a.csv", "b.csv", "c.csv")
	f := newFamily(t, dir, files)
	// Attempt 1 of the parent died holding a.csv; a child holds b.csv for
	// a short lease and dies.
	if i, _, err := f.st.ClaimBatchScoreFile(ctx, "p", 3, "p:1", time.Hour, time.Hour); err != nil || i != 0 {
		t.Fatalf("claim: %d %v", i, err)
	}
	if i, _, err := f.st.ClaimBatchScoreFile(ctx, "p", 3, "c:1", 200*time.Millisecond, time.Hour); err != nil || i != 1 {
		t.Fatalf("claim: %d %v", i, err)
	}
	if err := f.run("p", 2, 0).loop(ctx, scoreTarget{}); err != nil {
		t.Fatal(err)
	}
	ps, _, _ := merged(t, f.run("p", 2, 0))
	if err := checkOrder(ps, files, n); err != nil {
		t.Fatal(err)
	}

	// Lost while scoring: p:3 takes c.csv over from p:2 (a later
	// attempt); p:2 stops, writes nothing and marks nothing.
	dir2 := t.TempDir()
	files2 := writeFiles(t, dir2, n, "x.csv")
	g := newFamily(t, dir2, files2)
	loser := g.run("p", 2, 0)
	started := make(chan struct{})
	loser.score = func(ctx context.Context, _ scoreTarget, _ string, _ io.Reader, _ *api.BatchScore, _ io.Writer) (int, int, error) {
		close(started)
		<-ctx.Done()
		return 0, 0, context.Cause(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- loser.scoreOne(ctx, scoreTarget{}, claimOne(t, g, "p:2")) }()
	<-started
	if i := claimOne(t, g, "p:3"); i != 0 {
		t.Fatalf("p:3 claims %d, want 0", i)
	}
	if err := <-done; err != nil {
		t.Fatalf("the loser's scoreOne: %v, want nil (left to the other)", err)
	}
	if _, err := g.arts.Stat(ctx, artifact.BatchScoreKey("p", 0)); !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("the loser wrote results: %v", err)
	}
	if d, _ := g.st.BatchScoreDoneFiles(ctx, "p"); len(d) != 0 {
		t.Fatalf("the loser marked the file done: %v", d)
	}
	if err := g.run("p", 3, 0).scoreOne(ctx, scoreTarget{}, 0); err != nil {
		t.Fatal(err)
	}
	ps, _, _ = merged(t, g.run("p", 3, 0))
	if err := checkOrder(ps, files2, n); err != nil {
		t.Fatal(err)
	}
}

func claimOne(t *testing.T, f *family, owner string) int {
	t.Helper()
	i, _, err := f.st.ClaimBatchScoreFile(context.Background(), "p", len(f.files), owner, time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestBatchScoreErrorThreshold: the failed rows of the done files are
// summed; past error_threshold the loop stops early and the parent fails
// with the counts, the predictions of the files done merged; -1 tolerates
// any.
func TestBatchScoreErrorThreshold(t *testing.T) {
	ctx := context.Background()
	const n = 10
	for _, tc := range []struct {
		name      string
		threshold int
		wantErr   string
		wantFiles int
	}{
		{"within", 20, "", 4},
		{"any", -1, "", 4},
		{"over", 15, "20 of 30 rows failed, over error_threshold 15 (3 of 4 files scored)", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := writeFiles(t, dir, n, "a.csv", "bad1.csv", "bad2.csv", "z.csv")
			f := newFamily(t, dir, files)
			run := f.run("p", 1, 0)
			run.b.ErrorThreshold = tc.threshold
			if err := run.loop(ctx, scoreTarget{}); err != nil {
				t.Fatal(err)
			}
			w := New(Config{ID: "w"}, f.rdb, f.st, f.arts, nil, nil, slog.Default())
			outDir := t.TempDir()
			err := w.finishBatchScore(ctx, run, &api.Job{ID: "p", Workspace: "default"}, outDir)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (!errors.Is(err, errBatchErrors) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want batch errors %q", err, tc.wantErr)
			}
			b, err := os.ReadFile(filepath.Join(outDir, "out", "predictions.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Count(b, []byte("\n")); got != tc.wantFiles*n {
				t.Fatalf("predictions: %d lines, want %d", got, tc.wantFiles*n)
			}
		})
	}
}
