package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// TestBatchScoreFIFOSwappedInFailsFast: a planned file turned into a FIFO
// before it is read (the model server of a download-mode job can write its
// inputs folder) fails the attempt at once, naming the file; before, the
// worker blocked in open(2) for ever, past any cancel or timeout.
func TestBatchScoreFIFOSwappedInFailsFast(t *testing.T) {
	dir := t.TempDir()
	files := writeFiles(t, dir, 3, "a.csv")
	p := filepath.Join(dir, "a.csv")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFamily(t, dir, files)
	run := f.run("p", 1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run.scoreOne(ctx, scoreTarget{}, 0) }()
	select {
	case err := <-done:
		if !errors.Is(err, errInputUnavailable) || !strings.Contains(err.Error(), "a.csv") {
			t.Fatalf("scoring a FIFO: %v, want input unavailable naming it", err)
		}
	case <-time.After(10 * time.Second):
		cancel()
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("scoreOne still blocked on a FIFO after 10 s (and a cancel does not end it)")
	}
}

// TestErrorMessageBounded: a target's error answer is cut short whatever
// its form; before, {"error": "<64 MiB>"} became the error of every row
// (held in memory for the window, written to the predictions once a row).
func TestErrorMessageBounded(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for name, body := range map[string]string{
		"string": `{"error":"` + big + `"}`,
		"object": `{"error":{"m":"` + big + `"}}`,
		"text":   big,
	} {
		if got := errorMessage([]byte(body)); len(got) > 1024 {
			t.Errorf("%s: errorMessage is %d bytes, want at most 1024", name, len(got))
		}
	}
	if got := errorMessage([]byte(`{"error":"bad input"}`)); got != "bad input" {
		t.Errorf("a short error: %q", got)
	}
}

// TestScoreFileRefusesRedirect: a model server (the job's own code) that
// answers a redirect does not send the worker's POST on to another address;
// before, Go's client followed 307/308 with the body (and, to the same
// host on another port, the Authorization header).
func TestScoreFileRefusesRedirect(t *testing.T) {
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, `{"outputs":[{"name":"y","datatype":"FP32","shape":[1,1],"data":[1]}]}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	b := &api.BatchScore{MiniBatchSize: 1, MaxConcurrency: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, _ = scoreFile(ctx, scoreTarget{url: srv.URL + "/v2/models/m/infer", backoff: time.Millisecond}, "a.csv", strings.NewReader("x\n1\n"), b, io.Discard)
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect was followed: the other server got %d requests", n)
	}
	// The HTTP batch's client to the router refuses them too.
	client, tr := (&Worker{}).batchClient(1)
	defer tr.CloseIdleConnections()
	resp, err := client.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the HTTP batch's client followed the redirect: the other server got %d requests", n)
	}
}

// TestSplitAnswerDeepNestingBounded: an answer's data nested deep (valid
// JSON, one element, shape [1, n]) costs memory in its size, not its size
// times its depth; before, each level copied all below it.
func TestSplitAnswerDeepNestingBounded(t *testing.T) {
	const depth, n = 1000, 128 << 10
	var b strings.Builder
	b.WriteString(`{"outputs":[{"name":"y","datatype":"FP32","shape":[1,` + fmt.Sprint(n) + `],"data":`)
	b.WriteString(strings.Repeat("[", depth))
	b.WriteString(strings.TrimSuffix(strings.Repeat("1,", n), ","))
	b.WriteString(strings.Repeat("]", depth))
	b.WriteString(`}]}`)
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	outs, err := splitAnswer(body, 1)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || len(outs[0]) != 1 {
		t.Fatalf("outputs %d", len(outs))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("splitting a %d-byte answer nested %d deep allocated %d MiB, want at most 64", len(body), depth, alloc>>20)
	}
}

var _ = store.BatchScoreFile{}

// gatedArts is an artifact store whose Put waits for release (entered
// says it began): a slow write of a file's results.
type gatedArts struct {
	artifact.Dir
	entered chan struct{}
	release chan struct{}
}

func (g gatedArts) Put(ctx context.Context, key string, r io.Reader) error {
	close(g.entered)
	<-g.release
	return g.Dir.Put(ctx, key, r)
}

// TestBatchScoreClaimRenewedThroughPut: the claim of a file is renewed
// while its results are written (a large file's results, a slow artifact
// store), not only while it is scored; before, the renewal stopped before
// the Put, so a Put longer than the lease let another partition take the
// file and score it all again.
func TestBatchScoreClaimRenewedThroughPut(t *testing.T) {
	dir := t.TempDir()
	f := newFamily(t, dir, writeFiles(t, dir, 3, "a.csv"))
	ga := gatedArts{Dir: f.arts, entered: make(chan struct{}), release: make(chan struct{})}
	run := f.run("c", 1, 1)
	run.arts = ga
	if i := claimOne(t, f, "c:1"); i != 0 {
		t.Fatalf("claimed %d", i)
	}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- run.scoreOne(ctx, scoreTarget{}, 0) }()
	<-ga.entered
	claim := func() string {
		v, err := f.rdb.HGet(ctx, "{jobgate}:bscore:p:claims", "0").Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := claim()
	deadline := time.Now().Add(5 * time.Second)
	for claim() == first && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	renewed := claim() != first
	close(ga.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !renewed {
		t.Fatalf("the claim was not renewed while the file's results were written (still %q after 5 s; renewals every %s)", first, run.renewEvery)
	}
	if d, _ := f.st.BatchScoreDoneFiles(ctx, "p"); d[0].Rows != 3 {
		t.Fatalf("done marks %+v", d)
	}
}

// endless is a file of one line that never ends (a sparse file of
// terabytes reads so); started says the first Read came.
type endless struct {
	started chan struct{}
	once    bool
}

func (e *endless) Read(p []byte) (int, error) {
	if !e.once {
		e.once = true
		close(e.started)
	}
	for i := range p {
		p[i] = '1'
	}
	return len(p), nil
}

// TestScoreFileStopsWithCtxInALongLine: a cancel (or the job's timeout)
// ends the scoring of a file while a line is being read past, however
// long; before, the line was read to its end first (a sparse 16 TB file
// is hours of reading that no cancel stops, its claim renewed all along).
func TestScoreFileStopsWithCtxInALongLine(t *testing.T) {
	in := &endless{started: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := scoreFile(ctx, scoreTarget{url: "http://127.0.0.1:1/"}, "a.jsonl", in, &api.BatchScore{}, io.Discard)
		done <- err
	}()
	<-in.started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("scoreFile: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scoreFile still reading a line 10 s after its ctx was canceled")
	}
}
